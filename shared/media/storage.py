"""Where uploads live on disk (a directory shared by the API and the workers), and their names.

An upload is written as `partial-{job_id}{suffix}` and renamed to `{job_id}{suffix}` once its job
record exists, so a file with a job's own name always belongs to a job that was created. The
process writing a partial file holds an exclusive `flock` on it until the rename: the kernel
drops the lock when that process dies, however it dies, so a sweep that can take the lock knows
that nobody is writing the file any more (`shared/media/sweep.py`).
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import IO

# Extensions kept on stored uploads: audio and video ones alone, so that no stored name says
# `.html` or `.svg` to a server or a person that goes by names (issue 26).
MEDIA_SUFFIXES = frozenset({
    ".3g2", ".3gp", ".aac", ".ac3", ".aif", ".aifc", ".aiff", ".amr", ".ape", ".asf", ".au",
    ".avi", ".caf", ".dts", ".eac3", ".f4v", ".flac", ".flv", ".m2ts", ".m4a", ".m4b", ".m4v",
    ".mka", ".mkv", ".mov", ".mp2", ".mp3", ".mp4", ".mpeg", ".mpg", ".mts", ".oga", ".ogg",
    ".ogv", ".opus", ".spx", ".ts", ".tta", ".w64", ".wav", ".wave", ".weba", ".webm", ".wma",
    ".wmv", ".wv",
})
PARTIAL_PREFIX = "partial-"
# A finished upload, or an unfinished one: the job id, then a sane extension or none.
_UPLOAD_NAME = re.compile(r"^(?P<partial>partial-)?(?P<job_id>[0-9a-f]{32})(\.[A-Za-z0-9]{1,10})?$")
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
MAX_FILENAME_CHARS = 200


def upload_path(upload_dir: Path, job_id: str, filename: str) -> Path:
    """The file an upload is stored in; keeps an audio or video extension as a hint for
    decoders, and no other."""
    suffix = Path(filename).suffix.lower()
    return upload_dir / f"{job_id}{suffix if suffix in MEDIA_SUFFIXES else ''}"


def parse_upload_name(name: str) -> tuple[str, bool] | None:
    """`(job_id, unfinished)` for a name this module gives uploads; None for any other file."""
    match = _UPLOAD_NAME.match(name)
    return (match["job_id"], match["partial"] is not None) if match else None


def clean_filename(raw: str) -> str:
    """The name a client gave its upload as stored and shown: its last path component, without
    control characters (which no HTTP header may carry), at most 200 characters."""
    name = Path(raw.replace("\\", "/")).name
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _CONTROL_CATEGORIES)
    return name.strip()[-MAX_FILENAME_CHARS:] or "upload"


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

    def commit(self) -> Path:
        """Rename the upload to its final name and release the lock; the final path."""
        os.replace(self.path, self.final)
        self.path = self.final
        self._close()
        return self.final

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
