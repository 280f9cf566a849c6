"""The HTTP client of a Verbatim server: submit a file, read a job, download a transcript."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from threading import Lock
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

DEFAULT_URL = "http://127.0.0.1:8000"
SUBTITLE_FORMATS = frozenset({"srt", "vtt", "ass"})
# Uploads are probed by the server before it answers, so reads may take a while.
TIMEOUT = httpx.Timeout(120.0, connect=5.0)
# Cancelling on Ctrl-C is best effort: a user who pressed it will not wait long.
CANCEL_TIMEOUT = httpx.Timeout(3.0)
# An event stream carries a heartbeat every 15 s; one silent for longer has been lost.
EVENTS_TIMEOUT = httpx.Timeout(60.0, connect=5.0)


class ApiError(Exception):
    """A refusal or failure reported by the server, with its stable `code`, its message and,
    when there was an HTTP answer, its `status`."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{message} [{code}]")
        self.code = code
        self.message = message
        self.status = status

    @property
    def transient(self) -> bool:
        """Likely to pass: no answer, or a gateway or the API saying it is briefly down (5xx
        from 502 up); a refusal (4xx) is final."""
        return self.status is None or self.status >= 502

    @property
    def resendable(self) -> bool:
        """Transient, and the request surely made no job, so sending the upload again cannot
        make a second one: the API answered 503 (it checks Redis before reading the body) or
        a gateway 502. A 504 or a broken connection may come after the job was made."""
        return self.status in (502, 503)


class ServerUnreachable(ApiError):
    """No HTTP answer at all: nothing listens there, or the connection broke."""

    def __init__(
        self, code: str, message: str, status: int | None = None, connected: bool = True
    ) -> None:
        super().__init__(code, message, status)
        self.connected = connected

    @property
    def resendable(self) -> bool:
        return not self.connected  # the request never left this machine


class _CountingFile(io.FileIO):
    """A file that reports how many bytes have been read from it (the upload's progress)."""

    def __init__(self, path: Path, on_read: Callable[[int], None]) -> None:
        super().__init__(path, "rb")
        self._on_read = on_read

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self._on_read(self.tell())
        return chunk or b""


class Client:
    """One server; safe to share between threads (httpx pools its connections).

    It remembers the jobs it created until they are `settle`d, so that an interrupted run
    can `cancel_unsettled` them rather than leave them transcribing for nobody.
    """

    def __init__(
        self, base_url: str, transport: httpx.BaseTransport | None = None,
        api_key: str | None = None, subtitles: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.subtitles = subtitles or {}
        """Query parameters for the subtitle downloads (srt, vtt, ass)."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._http = httpx.Client(base_url=self.base_url, timeout=TIMEOUT, transport=transport,
                                  headers=headers)
        self._has_key = bool(api_key)
        self._unsettled: set[str] = set()
        self._lock = Lock()

    def check(self) -> None:
        """Raise `ServerUnreachable` unless a Verbatim server answers its liveness probe."""
        try:
            self._request("GET", "/healthz")
        except ServerUnreachable:
            raise
        except ApiError as exc:
            message = f"no Verbatim server at {self.base_url}: {exc.message}"
            raise ServerUnreachable(exc.code, message, exc.status) from exc

    def check_key(self) -> None:
        """Raise `ApiError` (401) when the server wants an API key that was not given, or
        refuses the one given; a cheap request, made before any upload."""
        try:
            self._request("GET", "/v1/jobs", params={"limit": 1})
        except ApiError as exc:
            if exc.status != 401:
                return  # an older server without the job list: the uploads will tell
            given = ("the server refused the API key" if self._has_key else
                     "the server requires an API key: pass --api-key or set VERBATIM_API_KEY")
            raise ApiError(exc.code, f"{given} ({exc.message})", 401) from None

    def submit(
        self, path: Path, fields: dict[str, str], on_upload: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Upload `path` with the job `fields`; the created job record, unsettled."""
        with _CountingFile(path, on_upload or (lambda _: None)) as file:
            files = {"file": (path.name, file)}
            job = self._json(self._request("POST", "/v1/jobs", files=files, data=fields))
        with self._lock:
            self._unsettled.add(str(job["id"]))
        return job

    def status(self, job_id: str) -> dict[str, Any]:
        """The job record: `status`, `progress` 0..1 and, once failed, `error`."""
        return self._json(self._request("GET", f"/v1/jobs/{job_id}"))

    def download(self, job_id: str, fmt: str) -> bytes:
        """The transcript of a completed job, rendered by the server as `fmt`."""
        params = self.subtitles if fmt in SUBTITLE_FORMATS else None
        return self._request("GET", f"/v1/jobs/{job_id}/transcript.{fmt}", params=params).content

    def events(
        self, job_id: str, last_event_id: str | None = None
    ) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(id, name, data) of each of the job's events as it happens, after `last_event_id`,
        until the server ends the stream (docs/guides/events.md)."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        url = f"/v1/jobs/{job_id}/events"
        try:
            with connect_sse(self._http, "GET", url, headers=headers,
                             timeout=EVENTS_TIMEOUT) as source:
                if not source.response.is_success:
                    source.response.read()
                    raise _api_error(source.response)
                for sse in source.iter_sse():
                    if sse.data:  # httpx-sse dispatches a heartbeat as an empty message
                        yield sse.id, sse.event, json.loads(sse.data)
        except httpx.TransportError as exc:
            message = f"lost the event stream of job {job_id}: {exc or type(exc).__name__}"
            raise ServerUnreachable("server_unreachable", message, connected=True) from exc
        except (SSEError, ValueError) as exc:
            raise ApiError("bad_response", f"the event stream of job {job_id}: {exc}") from exc

    def settle(self, job_id: str) -> None:
        """Forget a submitted job: its outcome is in hand, or no longer wanted."""
        with self._lock:
            self._unsettled.discard(job_id)

    def cancel_unsettled(self) -> tuple[int, int]:
        """Delete on the server every job submitted and not settled; (deleted, not deleted).

        Best effort with a short timeout: it runs after Ctrl-C, on the way out.
        """
        with self._lock:
            jobs, self._unsettled = sorted(self._unsettled), set()
        deleted = 0
        for job_id in jobs:
            try:
                self._request("DELETE", f"/v1/jobs/{job_id}", timeout=CANCEL_TIMEOUT)
            except ApiError as exc:
                if exc.status == 404:  # already gone: nothing left running
                    deleted += 1
            else:
                deleted += 1
        return deleted, len(jobs) - deleted

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            message = f"cannot reach the Verbatim server at {self.base_url}: {reason}"
            connected = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            raise ServerUnreachable(
                "server_unreachable", message, connected=connected
            ) from exc
        if response.is_redirect:
            raise _redirect_error(response)
        if not response.is_success:
            raise _api_error(response)
        return response

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        """The response's JSON object, or `bad_response` when the body is something else."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _bad_response(response)
        return body

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _api_error(response: httpx.Response) -> ApiError:
    """The server's `{"error": {"code", "message"}}` envelope, or the bare HTTP status."""
    status = response.status_code
    try:
        error = response.json()["error"]
        return ApiError(str(error["code"]), str(error["message"]), status)
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return ApiError(f"http_{status}", f"HTTP {status}: {text}", status)


def _redirect_error(response: httpx.Response) -> ApiError:
    """A redirect is not followed: the upload would be lost on the way, or sent in clear."""
    status = response.status_code
    target = response.headers.get("location", "elsewhere")
    message = (f"the server answered {status} {response.reason_phrase} to "
               f"{response.request.url}, redirecting to {target}: use the final URL")  # fmt: skip
    return ApiError(f"http_{status}", message, status)


def _bad_response(response: httpx.Response) -> ApiError:
    kind = response.headers.get("content-type") or "no content type"
    text = response.text.strip()[:80]
    message = (f"the server's answer to {response.request.method} {response.request.url} is "
               f"not the JSON a Verbatim server sends ({kind}): {text!r}")  # fmt: skip
    return ApiError("bad_response", message, response.status_code)
