"""Error responses: one handler per kind of failure, one place that picks the body's shape.

Everywhere the body is `{"error": {"code": ..., "message": ...}}`. Under `/v1/audio/` (the
OpenAI-compatible routes) it is OpenAI's `{"error": {"message", "type", "param", "code"}}`,
so that OpenAI's SDKs raise their usual errors with the service's stable `code`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount

from api.observability import REQUEST_ID_HEADER
from shared.errors import VerbatimError

log = logging.getLogger(__name__)

HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")

OPENAI_PREFIX = "/v1/audio/"

# Errors about the upload itself: OpenAI names the `file` field as their `param`.
_FILE_CODES = frozenset({"empty_file", "payload_too_large", "duration_exceeded",
                         "unsupported_media"})


def envelope(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def openai_error(
    status: int, code: str, message: str, param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """OpenAI's error body; a malformed request is 400 there, as OpenAI answers it."""
    status = 400 if status == 422 else status
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 429:  # OpenAI's SDKs retry these, after `Retry-After`
        kind = "rate_limit_error"
    if param is None and code in _FILE_CODES:
        param = "file"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _respond(
    request: Request, status: int, code: str, message: str, param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The one place that chooses the shape: OpenAI's under `/v1/audio/`, else the envelope."""
    if request.url.path.startswith(OPENAI_PREFIX):
        return openai_error(status, code, message, param, headers)
    return envelope(status, code, message, headers)


def error_responses(*errors: type[VerbatimError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the errors a route may answer with (codes that share a
    status share its entry)."""
    codes: dict[int | str, list[str]] = {}
    for error in errors:
        codes.setdefault(error.status_code, []).append(f"`{error.code}`")
    return {status: {"description": " or ".join(names)} for status, names in codes.items()}


async def _verbatim(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VerbatimError)
    return _respond(request, exc.status_code, exc.code, exc.message, exc.param, exc.headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors]
    param = str(errors[0]["loc"][-1]) if errors and errors[0]["loc"] else None
    return _respond(request, 422, "validation_error", "; ".join(parts), param)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})  # e.g. 405's Allow
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        headers["Allow"] = allowed
    return _respond(request, exc.status_code, code, str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method that some route serves at the request's path. (Starlette's 405 names only
    the first route whose path matches, so `/v1/jobs/{id}` would not list DELETE.) Mounted
    apps (`/static`) say their own `Allow`."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    allowed = [
        method for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
               for route in routes)
    ]
    return ", ".join(allowed)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("backend unavailable: %s", exc)
    message = "The job store or queue is unreachable."
    return _respond(request, 503, "service_unavailable", message)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return _respond(request, 500, "internal_error", "An unexpected error occurred.",
                    headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VerbatimError, _verbatim)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    for unavailable in (redis.ConnectionError, redis.TimeoutError, OperationalError):
        app.add_exception_handler(unavailable, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
