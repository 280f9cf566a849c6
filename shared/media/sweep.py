"""Removing upload files that no job owns, without touching one that is still being written.

Two kinds of file are orphans (names as in `shared/media/storage.py`):

- a finished upload `{job_id}{suffix}` whose job record does not exist: its job expired while
  the upload was kept (`delete_upload_when_done=false`) or was deleted as the file was renamed;
- an unfinished upload `partial-{job_id}{suffix}` whose lock no process holds: the API that
  received it died mid-upload.

Either is removed only once it has not been modified for `grace_seconds`, which also covers
filesystems whose locks other hosts do not see. The sweep lists the directory and asks Redis
one `EXISTS` per old finished upload, pipelined in batches: it never scans the keyspace.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import redis

from shared.media.storage import held_by_a_writer, parse_upload_name
from shared.state.jobs import JobStore

log = logging.getLogger(__name__)

BATCH = 500


@dataclass
class Swept:
    orphans: int = 0
    """Finished uploads whose job record is gone."""
    abandoned: int = 0
    """Unfinished uploads that no live process was writing."""


def sweep_uploads(upload_dir: Path, client: redis.Redis, grace_seconds: float) -> Swept:
    """Remove the orphaned uploads in `upload_dir`; what was removed."""
    swept = Swept()
    finished = _old_uploads(upload_dir, time.time() - grace_seconds, swept)
    while batch := list(islice(finished, BATCH)):
        with client.pipeline(transaction=False) as pipe:
            for job_id, _ in batch:
                pipe.exists(JobStore.job_key(job_id))
            exists = pipe.execute()
        for (_, path), found in zip(batch, exists, strict=True):
            if not found:
                path.unlink(missing_ok=True)
                swept.orphans += 1
    if swept.orphans or swept.abandoned:
        log.info("swept orphaned uploads", extra={"orphans": swept.orphans,
                                                  "abandoned": swept.abandoned})
    return swept


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
