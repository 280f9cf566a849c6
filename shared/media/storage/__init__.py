"""Where media lives: the one module that knows paths and buckets (issue 23).

`VERBATIM_STORAGE` picks the store: `local` keeps uploads and a spread job's windows as files
under `VERBATIM_DATA_DIR`, which the API and the workers must share; `s3` keeps them as objects
in an S3-compatible bucket, so that hosts share nothing but Redis and the store. A job record
keeps its upload's location (a path, or an object key); every reader, writer and remover goes
through `media_store(settings)`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from shared.errors import StorageSettingsError
from shared.media.storage.local import (
    LocalStore,
    PartialUpload,
    held_by_a_writer,
    remove_upload,
    upload_path,
    writable,
)
from shared.media.storage.names import (
    MEDIA_SUFFIXES,
    PARTIAL_PREFIX,
    clean_filename,
    parse_upload_name,
    stored_name,
    window_prefix,
)

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.media.storage.s3 import S3Object

log = logging.getLogger(__name__)

__all__ = [
    "MEDIA_SUFFIXES",
    "PARTIAL_PREFIX",
    "LocalStore",
    "MediaStore",
    "PartialUpload",
    "Receiver",
    "StorageSettingsError",
    "clean_filename",
    "held_by_a_writer",
    "media_store",
    "parse_upload_name",
    "prepare_store",
    "remove_upload",
    "stored_name",
    "upload_path",
    "window_prefix",
    "writable",
]


class Receiver(Protocol):
    """An upload being written: `write` its bytes, `finish`, probe its `source`, then `commit`
    it once its job exists or `discard` it."""

    @property
    def location(self) -> str: ...
    @property
    def source(self) -> Path | S3Object: ...
    def write(self, data: bytes) -> None: ...
    def finish(self) -> None: ...
    def commit(self) -> None: ...
    def discard(self) -> None: ...


class MediaStore(Protocol):
    kind: str

    def prepare(self) -> None:
        """At start-up: make what is missing, or raise `StorageSettingsError`."""
        ...

    def check(self) -> None: ...
    def ready(self) -> bool: ...
    def upload_location(self, job_id: str, filename: str) -> str: ...
    def receive(self, location: str) -> Receiver: ...
    def resume(self, location: str) -> Receiver | None: ...
    def source(self, location: str) -> Path | S3Object: ...
    def exists(self, location: str) -> bool: ...
    def remove(self, location: str | None) -> None: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def remove_prefix(self, prefix: str) -> None: ...


_stores: dict[tuple[object, ...], MediaStore] = {}


def media_store(settings: Settings) -> MediaStore:
    """The store `settings` name, made once per process (boto3 clients are thread-safe, but
    a forked pool process must not share its parent's connections: the pid is in the key)."""
    key = (os.getpid(), settings.storage, settings.data_dir, settings.s3_endpoint_url,
           settings.s3_bucket, settings.s3_region, settings.s3_access_key_id,
           settings.s3_secret_access_key)
    if key not in _stores:
        if settings.storage == "s3":
            from shared.media.storage.s3 import S3Store  # a worker imports boto3 only for `s3`

            _stores[key] = S3Store(settings)
        else:
            _stores[key] = LocalStore(settings.data_dir)
    return _stores[key]


def prepare_store(settings: Settings) -> None:
    """At a process's start-up: the store ready, or the process ends with a message naming the
    setting to fix (a Celery signal handler's exception would only be logged)."""
    try:
        media_store(settings).prepare()
    except StorageSettingsError as exc:
        log.critical("media store unusable: %s", exc)
        raise SystemExit(f"media store unusable: {exc}") from None
