"""The `local` media store: uploads and windows as files under `VERBATIM_DATA_DIR` (a directory
the API and the workers share).

An upload is written as `partial-{job_id}{suffix}` and renamed to `{job_id}{suffix}` once its job
record exists, so a file with a job's own name always belongs to a job that was created. The
process writing a partial file holds an exclusive `flock` on it until the rename: the kernel
drops the lock when that process dies, however it dies, so a sweep that can take the lock knows
that nobody is writing the file any more (`shared/media/sweep.py`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO

from shared.media.storage.names import PARTIAL_PREFIX, stored_name


def upload_path(upload_dir: Path, job_id: str, filename: str) -> Path:
    """The file an upload is stored in (`names.stored_name`)."""
    return upload_dir / stored_name(job_id, filename)


def writable(upload_dir: Path) -> bool:
    """Whether a file can be written to `upload_dir` now: a real write, so that a read-only or
    missing mount, or a full disk, shows (a scrape of `verbatim_storage_up` asks)."""
    try:
        with tempfile.TemporaryFile(dir=upload_dir, prefix=".probe-") as probe:
            probe.write(b"\0")
            probe.flush()
    except OSError:
        return False
    return True


def remove_upload(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


class PartialUpload:
    """An upload being received: written to its partial name under an exclusive lock, then
    `commit()`ed to its final name, or `discard()`ed."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.path = final.with_name(PARTIAL_PREFIX + final.name)
        self._file: IO[bytes] | None = None

    @property
    def location(self) -> str:
        """What the job record keeps: the final path."""
        return str(self.final)

    @property
    def source(self) -> Path:
        """What the probe opens: the file as written so far."""
        return self.path

    def write(self, data: bytes) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("xb")
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file.write(data)

    def finish(self) -> None:
        """Make what was written readable by other opens (the probe) and keep the lock."""
        if self._file is not None:
            self._file.flush()

    def commit(self) -> None:
        """Rename the upload to its final name and release the lock."""
        os.replace(self.path, self.final)
        self.path = self.final
        self._close()

    def discard(self) -> None:
        self._close()
        remove_upload(self.path)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def held_by_a_writer(path: Path) -> bool:
    """Whether a live process holds the lock of this unfinished upload."""
    try:
        with path.open("rb") as file:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    return False


class LocalStore:
    """Media as files under the data directory: a location is a path."""

    kind = "local"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.upload_dir = data_dir / "uploads"

    def prepare(self) -> None:
        self.upload_dir.mkdir(parents=True, exist_ok=True)

    def check(self) -> None:
        """Nothing to reach: the directory is made at start-up."""

    def ready(self) -> bool:
        return writable(self.upload_dir)

    def upload_location(self, job_id: str, filename: str) -> str:
        return str(upload_path(self.upload_dir, job_id, filename))

    def receive(self, location: str) -> PartialUpload:
        return PartialUpload(Path(location))

    def resume(self, location: str) -> PartialUpload | None:
        """Receive again what an earlier attempt began: None while its writer lives."""
        upload = PartialUpload(Path(location))
        if upload.path.exists():
            if held_by_a_writer(upload.path):
                return None
            upload.path.unlink(missing_ok=True)  # its writer died mid-way
        return upload

    def source(self, location: str) -> Path:
        return Path(location)

    def exists(self, location: str) -> bool:
        return Path(location).is_file()

    def remove(self, location: str | None) -> None:
        remove_upload(Path(location) if location else None)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self.data_dir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def get_bytes(self, key: str) -> bytes:
        return (self.data_dir / key).read_bytes()

    def remove_prefix(self, prefix: str) -> None:
        """Remove the folder `prefix` names (`windows/{job}/`)."""
        shutil.rmtree(self.data_dir / prefix, ignore_errors=True)
