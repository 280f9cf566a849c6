"""The browser page: one HTML file with its script and style sheet, served as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"

# The page only talks to its own origin (no CDN, no inline script); blob: plays back a recording.
# No other site may frame it (clickjacking), and it submits no forms or <base> elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
_HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY}

router = APIRouter(include_in_schema=False)


class _Revalidated(StaticFiles):
    """Static files that browsers revalidate (ETag), so an upgrade never runs a stale script."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(_HEADERS)
        return response


@router.get("/")
async def index() -> FileResponse:
    """The transcription page."""
    return FileResponse(STATIC / "index.html", headers=_HEADERS)


def install(app: FastAPI) -> None:
    """Serve the page at `/` and its assets under `/static`."""
    app.include_router(router)
    app.mount("/static", _Revalidated(directory=STATIC), name="static")
