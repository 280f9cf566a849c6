"""Where uploads live on disk (a directory shared by the API and the workers)."""

from __future__ import annotations

import re
from pathlib import Path

_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


def upload_path(upload_dir: Path, job_id: str, filename: str) -> Path:
    """The file an upload is stored in; keeps a sane extension as a hint for decoders."""
    suffix = Path(filename).suffix
    return upload_dir / f"{job_id}{suffix if _SUFFIX.match(suffix) else ''}"


def remove_upload(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)
