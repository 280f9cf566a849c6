"""Removing upload files that no job owns, without touching one that is still being written.

Two kinds of file are orphans (names as in `shared/media/storage/`):

- a finished upload `{job_id}{suffix}` whose job record does not exist: its job expired while
  the upload was kept (`delete_upload_when_done=false`) or was deleted as the file was renamed;
- an unfinished upload `partial-{job_id}{suffix}` whose lock no process holds: the API that
  received it died mid-upload.

Either is removed only once it has not been modified for `grace_seconds`, which also covers
filesystems whose locks other hosts do not see. The sweep lists the directory and asks Redis
one `EXISTS` per old finished upload, pipelined in batches: it never scans the keyspace.

In the `s3` store the orphans are objects under `uploads/` or `windows/{job_id}/` whose job
record does not exist, and multipart uploads under `uploads/` never completed (their API
process died); each is removed once older than `grace_seconds`. Both prefixes are listed a
page at a time: the sweep never lists the whole bucket in one call.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import redis

from shared.config import Settings
from shared.media.storage import (
    LocalStore,
    held_by_a_writer,
    media_store,
    parse_upload_name,
)
from shared.media.storage.names import UPLOAD_PREFIX, WINDOWS
from shared.state.jobs import JobStore

if TYPE_CHECKING:
    from shared.media.storage.s3 import S3Store

log = logging.getLogger(__name__)

BATCH = 500


@dataclass
class Swept:
    orphans: int = 0
    """Finished uploads whose job record is gone."""
    abandoned: int = 0
    """Unfinished uploads that no live process was writing."""


T = TypeVar("T")


def sweep_media(settings: Settings, client: redis.Redis) -> Swept:
    """Remove the orphaned media of the store `settings` name; what was removed."""
    store = media_store(settings)
    if isinstance(store, LocalStore):
        return sweep_uploads(store.upload_dir, client, settings.upload_sweep_grace_seconds)
    from shared.media.storage.s3 import S3Store  # boto3 is loaded only where the store is `s3`

    assert isinstance(store, S3Store)
    return sweep_objects(store, client, settings.upload_sweep_grace_seconds)


def sweep_uploads(upload_dir: Path, client: redis.Redis, grace_seconds: float) -> Swept:
    """Remove the orphaned uploads in `upload_dir`; what was removed."""
    swept = Swept()
    finished = _old_uploads(upload_dir, time.time() - grace_seconds, swept)
    for path in _without_jobs(finished, client):
        path.unlink(missing_ok=True)
        swept.orphans += 1
    _report(swept)
    return swept


def sweep_objects(store: S3Store, client: redis.Redis, grace_seconds: float) -> Swept:
    """Remove the orphaned objects and unfinished multipart uploads of the `s3` store."""
    swept = Swept()
    before = datetime.now(UTC) - timedelta(seconds=grace_seconds)
    for key, upload_id, started in store.unfinished(UPLOAD_PREFIX):
        if started < before:
            store.abort(key, upload_id)
            swept.abandoned += 1
    old = ((job_id, key) for key, modified in store.listed(UPLOAD_PREFIX)
           if modified < before and (job_id := _object_job(key)) is not None)
    for key in _without_jobs(old, client):
        store.remove(key)
        swept.orphans += 1
    windows = ((key.split("/")[1], key) for key, modified in store.listed(WINDOWS)
               if modified < before)
    for key in _without_jobs(windows, client):
        store.remove(key)
        swept.orphans += 1
    _report(swept)
    return swept


def _object_job(key: str) -> str | None:
    parsed = parse_upload_name(key.removeprefix(UPLOAD_PREFIX))
    return parsed[0] if parsed else None


def _without_jobs(found: Iterable[tuple[str, T]], client: redis.Redis) -> Iterator[T]:
    """The items of `(job_id, item)` pairs whose job record does not exist: one pipelined
    `EXISTS` per item, `BATCH` at a time."""
    pairs = iter(found)
    while batch := list(islice(pairs, BATCH)):
        with client.pipeline(transaction=False) as pipe:
            for job_id, _ in batch:
                pipe.exists(JobStore.job_key(job_id))
            exists = pipe.execute()
        yield from (item for (_, item), seen in zip(batch, exists, strict=True) if not seen)


def _report(swept: Swept) -> None:
    if swept.orphans or swept.abandoned:
        log.info("swept orphaned uploads", extra={"orphans": swept.orphans,
                                                  "abandoned": swept.abandoned})


def _old_uploads(upload_dir: Path, before: float, swept: Swept) -> Iterator[tuple[str, Path]]:
    """The finished uploads modified before `before`, as (job id, path); on the way, removes
    the unfinished ones that nobody holds."""
    try:
        entries = os.scandir(upload_dir)
    except FileNotFoundError:
        return
    with entries:
        for entry in entries:
            parsed = parse_upload_name(entry.name)
            if parsed is None or not _modified_before(entry, before):
                continue
            job_id, unfinished = parsed
            if not unfinished:
                yield job_id, Path(entry.path)
            elif _abandoned(Path(entry.path)):
                swept.abandoned += 1


def _modified_before(entry: os.DirEntry[str], before: float) -> bool:
    try:
        return entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < before
    except FileNotFoundError:  # removed meanwhile (a job deleted, a worker done)
        return False


def _abandoned(path: Path) -> bool:
    """Remove an unfinished upload whose writer is gone; whether it was removed."""
    try:
        if held_by_a_writer(path):
            return False
        path.unlink()
    except FileNotFoundError:  # committed or discarded meanwhile
        return False
    return True
