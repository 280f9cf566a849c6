"""The HTTP client of a Verbatim server: submit a file, read a job, download a transcript."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
# Uploads are probed by the server before it answers, so reads may take a while.
TIMEOUT = httpx.Timeout(120.0, connect=5.0)


class ApiError(Exception):
    """A refusal or failure reported by the server, with its stable `code` and its message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} [{code}]")
        self.code = code
        self.message = message


class ServerUnreachable(ApiError):
    """No HTTP answer at all: nothing listens there, or the connection broke."""


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
    """One server; safe to share between threads (httpx pools its connections)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=TIMEOUT)

    def check(self) -> None:
        """Raise `ServerUnreachable` unless a Verbatim server answers its liveness probe."""
        try:
            self._request("GET", "/healthz")
        except ServerUnreachable:
            raise
        except ApiError as exc:
            message = f"no Verbatim server at {self.base_url}: {exc.message}"
            raise ServerUnreachable(exc.code, message) from exc

    def submit(
        self, path: Path, fields: dict[str, str], on_upload: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Upload `path` with the job `fields`; the created job record."""
        with _CountingFile(path, on_upload or (lambda _: None)) as file:
            files = {"file": (path.name, file)}
            return dict(self._request("POST", "/v1/jobs", files=files, data=fields).json())

    def status(self, job_id: str) -> dict[str, Any]:
        """The job record: `status`, `progress` 0..1 and, once failed, `error`."""
        return dict(self._request("GET", f"/v1/jobs/{job_id}").json())

    def download(self, job_id: str, fmt: str) -> bytes:
        """The transcript of a completed job, rendered by the server as `fmt`."""
        return self._request("GET", f"/v1/jobs/{job_id}/transcript.{fmt}").content

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            message = f"cannot reach the Verbatim server at {self.base_url}: {reason}"
            raise ServerUnreachable("server_unreachable", message) from exc
        if response.is_error:
            raise _api_error(response)
        return response

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
    try:
        error = response.json()["error"]
        return ApiError(str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return ApiError(f"http_{response.status_code}", f"HTTP {response.status_code}: {text}")
