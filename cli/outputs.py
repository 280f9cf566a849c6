"""Where transcripts go, and writing them so that a partial file never looks finished."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from shared.output.formatters import FORMATS


def output_paths(
    source: Path, formats: Iterable[str], out_dir: Path | None = None, root: Path | None = None
) -> dict[str, Path]:
    """Each format's file: beside `source` (`talk.mp3` -> `talk.srt`), or under `out_dir`,
    mirroring where `source` sits under `root` when one is given."""
    folder = source.parent
    if out_dir is not None:
        folder = out_dir / source.parent.relative_to(root) if root is not None else out_dir
    return {fmt: folder / f"{source.stem}.{FORMATS[fmt].extension}" for fmt in formats}


def write_atomic(path: Path, data: bytes) -> None:
    """Write a temporary file beside `path`, then rename it: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with temporary.open("xb") as file:  # `open` honours the umask, unlike mkstemp
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            temporary.unlink()
        raise
