"""One error envelope for every failure: `{"error": {"code": ..., "message": ...}}`."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from starlette.exceptions import HTTPException

from shared.errors import VerbatimError

log = logging.getLogger(__name__)

HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def envelope(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def error_responses(*errors: type[VerbatimError]) -> dict[int | str, dict[str, str]]:
    """OpenAPI `responses=` entries for the errors a route may answer with."""
    return {e.status_code: {"description": f"`{e.code}`"} for e in errors}


async def _verbatim(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VerbatimError)
    return envelope(exc.status_code, exc.code, exc.message)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return envelope(422, "validation_error", "; ".join(parts))


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return envelope(exc.status_code, code, str(exc.detail), exc.headers)  # e.g. 405's Allow


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("backend unavailable: %s", exc)
    return envelope(503, "service_unavailable", "The job store or queue is unreachable.")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return envelope(500, "internal_error", "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VerbatimError, _verbatim)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    for unavailable in (redis.ConnectionError, redis.TimeoutError, OperationalError):
        app.add_exception_handler(unavailable, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
