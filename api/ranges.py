"""Serving a stored object with HTTP Range, as Starlette's `FileResponse` serves a file: a
kept recording in the `s3` store is read from the bucket a range at a time (never whole into
memory) and browsers seek in it as in a local file (RFC 9110, section 14)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

if TYPE_CHECKING:  # boto3 is loaded only where the store is `s3`
    from shared.media.storage.s3 import S3Store

CHUNK_BYTES = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range (first, last byte) `header` asks for; None for the whole object (no
    header, or several ranges, which a server may answer whole); `ValueError` when
    unsatisfiable."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last `last` bytes
        return max(0, size - int(last)), size - 1
    start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError
    return start, end


def object_response(store: S3Store, key: str, range_header: str | None, media_type: str,
                    filename: str, headers: dict[str, str]) -> Response:
    """200 with the whole object, 206 with the range asked for, or 416."""
    size = store.size(key)
    disposition = f"inline; filename*=utf-8''{quote(filename)}"
    common = {"Accept-Ranges": "bytes", "Content-Disposition": disposition, **headers}
    try:
        wanted = byte_range(range_header, size)
    except ValueError:
        return Response(status_code=416, headers={**common, "Content-Range": f"bytes */{size}"})
    start, end = wanted or (0, size - 1)
    common["Content-Length"] = str(end - start + 1)
    if wanted is not None:
        common["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(_chunks(store, key, start, end), status_code=206 if wanted else 200,
                             media_type=media_type, headers=common)


def _chunks(store: S3Store, key: str, start: int, end: int) -> Iterator[bytes]:
    while start <= end:
        last = min(end, start + CHUNK_BYTES - 1)
        yield store.get_range(key, start, last)
        start = last + 1
