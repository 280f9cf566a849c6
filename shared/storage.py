"""Where uploads live on disk (a directory shared by the API and the workers)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
MAX_FILENAME_CHARS = 200


def upload_path(upload_dir: Path, job_id: str, filename: str) -> Path:
    """The file an upload is stored in; keeps a sane extension as a hint for decoders."""
    suffix = Path(filename).suffix
    return upload_dir / f"{job_id}{suffix if _SUFFIX.match(suffix) else ''}"


def clean_filename(raw: str) -> str:
    """The name a client gave its upload as stored and shown: its last path component, without
    control characters (which no HTTP header may carry), at most 200 characters."""
    name = Path(raw.replace("\\", "/")).name
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _CONTROL_CATEGORIES)
    return name.strip()[-MAX_FILENAME_CHARS:] or "upload"


def remove_upload(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)
