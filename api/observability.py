"""One ASGI middleware for every HTTP request: request id, access log line, request metrics.

The request id is the client's `X-Request-ID` when it is sane, else a new one; it is echoed in
the response, bound to every log record of the request, and sent with a submitted job so the
worker's lines for that job carry it too.

The status logged and counted is the one the client was sent: it is recorded only once the
server has taken the response head. A head the server refuses (uvicorn closes the connection
without an answer) is recorded as a 500 with `error` naming why, never as the status the app
meant to send.
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics
from shared.logs import bind, new_request_id, valid_request_id

log = logging.getLogger("api.access")

REQUEST_ID_HEADER = "X-Request-ID"


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or new_request_id()
        # For the 500 handler, which runs outside this middleware (Starlette's outermost one).
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500  # what the client gets when the app raises before answering
        refused: str | None = None
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, refused
            if message["type"] != "http.response.start":
                await send(message)
                return
            MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            try:
                await send(message)
            except Exception as exc:
                refused = f"the response could not be sent: {exc}"
                raise
            status = message["status"]

        with bind(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                _record(scope, status, time.perf_counter() - started, refused)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return valid_request_id(value.decode("latin-1"))
    return None


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/v1/jobs/{job_id}`); never the raw path, whose
    ids would make a new metric series per job."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else metrics.UNMATCHED_ROUTE


def _record(scope: Scope, status: int, seconds: float, refused: str | None) -> None:
    route = route_template(scope)
    metrics.observe_request(scope["method"], route, status, seconds)
    job_id = scope.get("path_params", {}).get("job_id")
    log.log(
        logging.ERROR if refused else logging.INFO,
        "%s %s %d",
        scope["method"],
        scope["path"],
        status,
        extra={
            "method": scope["method"],
            "route": route,
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            **({"job_id": job_id} if job_id else {}),  # POST /v1/jobs binds its new id
            **({"error": refused} if refused else {}),
        },
    )
