"""Live transcription: `WS /v1/live` (protocol: docs/guides/live.md, `api/live_relay.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, WebSocket

from api.auth import ACCESS_TOKEN_PARAM
from api.live_relay import LiveRelay

router = APIRouter(prefix="/v1", tags=["live"])


@router.websocket("/live")
async def live(
    websocket: WebSocket,
    access_token: Annotated[str | None, Query(alias=ACCESS_TOKEN_PARAM, max_length=128)] = None,
) -> None:
    """Transcribe audio as it is streamed: `start`, binary audio frames, `stop`."""
    relay: LiveRelay = websocket.app.state.live
    await relay.serve(websocket, access_token)
