"""The names stored media take, in every store: `{job_id}{ext}` for an upload, with an audio or
video extension as a hint for decoders and no other, and the names clients give their files."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

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
# Where uploads are kept in the `s3` store's bucket (the orphan sweep lists this prefix alone).
UPLOAD_PREFIX = "uploads/"
# A finished upload, or an unfinished one: the job id, then a sane extension or none.
_UPLOAD_NAME = re.compile(r"^(?P<partial>partial-)?(?P<job_id>[0-9a-f]{32})(\.[A-Za-z0-9]{1,10})?$")
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
MAX_FILENAME_CHARS = 200
WINDOWS = "windows/"


def stored_name(job_id: str, filename: str) -> str:
    """The name an upload is stored under: the job id and the client's extension, if it is an
    audio or video one."""
    suffix = Path(filename).suffix.lower()
    return f"{job_id}{suffix if suffix in MEDIA_SUFFIXES else ''}"


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


def window_prefix(job_id: str) -> str:
    """Where a spread job's windows are kept, in any store (`worker/spread.py`)."""
    return f"{WINDOWS}{job_id}/"
