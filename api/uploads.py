"""Streams a multipart upload straight into the media store, enforcing the size limit as bytes
arrive.

FastAPI's `UploadFile` would spool the whole body before the route runs; parsing the request
stream ourselves lets an oversized upload be refused after `max_bytes`, not after a gigabyte.
On `local` the file is written under its partial name and stays locked until the job is
created; on `s3` it streams in as a multipart upload (`shared/media/storage/`), so a sweep never
takes it for an orphan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from shared.errors import EmptyFile, InvalidRequest, PayloadTooLarge
from shared.media.storage import Receiver, clean_filename

FLUSH_BYTES = 1 << 20
# Room for OpenAI's `known_speaker_references[]` (issue 21): up to four clips of a few seconds
# each, as base64 data URLs, arrive as form fields.
MAX_FIELDS_BYTES = 2 * 1024 * 1024
# What each form part besides `file` counts against MAX_FIELDS_BYTES beyond its value, so
# that a body of many empty parts cannot grow the field lists without limit: at most 512 parts.
PART_OVERHEAD_BYTES = 4096


@dataclass
class Upload:
    file: Receiver
    filename: str
    size: int
    values: dict[str, list[str]]
    """Every value of every field besides `file`, in order (`a[]=1&a[]=2` arrives twice)."""
    sha256: str = ""
    """The file's SHA-256, computed as it streamed (for `Idempotency-Key` fingerprints)."""

    @property
    def fields(self) -> dict[str, str]:
        """One value per field: the last one sent."""
        return {name: values[-1] for name, values in self.values.items()}


@dataclass
class _Form:
    """Parser callbacks' state: the file part goes to `pending`, other parts to `values`."""

    start: Callable[[str], Receiver]
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_name: bytes = b""
    header_value: bytes = b""
    name: str = ""
    in_file: bool = False
    file: Receiver | None = None
    filename: str = ""
    size: int = 0
    pending: bytearray = field(default_factory=bytearray)
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    values: dict[str, list[str]] = field(default_factory=dict)
    field_bytes: int = 0
    ended: bool = False

    def on_part_begin(self) -> None:
        self.headers, self.header_name, self.header_value = {}, b"", b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_name.lower()] = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = params.get(b"name", b"").decode("utf-8", "replace")
        self.in_file = self.name == "file"
        if self.in_file:
            if self.file is not None:
                raise InvalidRequest("Send exactly one `file` field.", param="file")
            self.filename = clean_filename(params.get(b"filename", b"").decode("utf-8", "replace"))
            self.file = self.start(self.filename)
        else:
            self._count_field_bytes(PART_OVERHEAD_BYTES + len(self.name))
            self.values.setdefault(self.name, []).append("")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.size += end - start
            self.pending += data[start:end]
            self.digest.update(data[start:end])
            return
        self._count_field_bytes(end - start)
        self.values[self.name][-1] += data[start:end].decode("utf-8", "replace")

    def _count_field_bytes(self, count: int) -> None:
        self.field_bytes += count
        if self.field_bytes > MAX_FIELDS_BYTES:
            raise InvalidRequest("The form fields besides `file` are too large.")

    def on_end(self) -> None:
        self.ended = True


async def receive_upload(
    request: Request, start: Callable[[str], Receiver], max_bytes: int
) -> Upload:
    """Write the `file` part into `start(filename)` (which the caller commits once the job
    exists); on any error leave nothing behind."""
    return _finished(await _receive(request, start, max_bytes))


async def receive_form(
    request: Request, start: Callable[[str], Receiver], max_bytes: int
) -> Upload | dict[str, list[str]]:
    """As `receive_upload`; a complete form with no `file` part but a `url` field is answered
    with its fields instead (a job from a URL, `api/intake.py`)."""
    form = await _receive(request, start, max_bytes)
    if form.file is None and form.ended and "url" in form.values:
        return form.values
    return _finished(form)


async def _receive(request: Request, start: Callable[[str], Receiver], max_bytes: int) -> _Form:
    boundary = _boundary(request)
    declared = int(request.headers.get("content-length") or 0)
    if declared > max_bytes + MAX_FIELDS_BYTES:
        raise PayloadTooLarge(_too_large(max_bytes))
    form = _Form(start)
    parser = MultipartParser(boundary, callbacks=_callbacks(form))  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            _parse(parser, chunk)
            if form.size > max_bytes:
                raise PayloadTooLarge(_too_large(max_bytes))
            await _flush(form, FLUSH_BYTES)
        parser.finalize()
        await _flush(form, 0)
        if form.file is not None:
            await anyio.to_thread.run_sync(form.file.finish)
    except BaseException:
        _discard(form)
        raise
    return form


def _parse(parser: MultipartParser, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except FormParserError as exc:
        raise InvalidRequest(f"The multipart body is malformed: {exc}") from None


def _finished(form: _Form) -> Upload:
    if not form.ended:
        _discard(form)
        raise InvalidRequest("The multipart body ended before its closing boundary.")
    if form.file is None:
        raise InvalidRequest(
            "The form has no `file` field: send the audio as `file`.", param="file"
        )
    if form.size == 0:
        _discard(form)
        raise EmptyFile("The uploaded file is empty.")
    return Upload(form.file, form.filename, form.size, form.values, form.digest.hexdigest())


def _discard(form: _Form) -> None:
    if form.file is not None:
        form.file.discard()


async def _flush(form: _Form, threshold: int) -> None:
    """Write buffered file bytes off the event loop once `threshold` bytes are waiting."""
    if form.file is None or (threshold and len(form.pending) < threshold):
        return
    data, form.pending = bytes(form.pending), bytearray()
    await anyio.to_thread.run_sync(form.file.write, data)


def _boundary(request: Request) -> bytes:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise InvalidRequest("Send the upload as multipart/form-data with the audio in `file`.")
    return params[b"boundary"]


def _callbacks(form: _Form) -> dict[str, Callable[..., None]]:
    names = ("part_begin", "header_field", "header_value", "header_end", "headers_finished",
             "part_data", "end")
    return {f"on_{name}": getattr(form, f"on_{name}") for name in names}


def _too_large(max_bytes: int) -> str:
    return f"The upload exceeds the limit of {max_bytes} bytes."
