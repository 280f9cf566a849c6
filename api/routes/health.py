"""Liveness and readiness for process supervisors and load balancers."""

from __future__ import annotations

from typing import Literal

import redis
from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import JobStoreDep, SettingsDep, run_sync
from api.errors import error_responses
from shared.errors import NotReady
from shared.media.storage import media_store
from shared.state.heartbeats import Heartbeats, WorkerBeat
from shared.state.jobs import JobStore

router = APIRouter(tags=["health"])


class Readiness(BaseModel):
    status: Literal["ready"]
    storage: Literal["local", "s3"]
    """The media store (`VERBATIM_STORAGE`), which answered."""
    workers: list[WorkerBeat]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The API process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(NotReady))
async def readyz(store: JobStoreDep, settings: SettingsDep) -> Readiness:
    """Jobs can be done: Redis and the media store answer, and a worker with its model loaded
    has reported in."""
    timeout = settings.heartbeat_timeout_seconds
    workers = await run_sync(_live_workers, store, timeout)
    media = media_store(settings)
    if not await run_sync(media.ready):
        raise NotReady(f"Not ready: the media store ({settings.storage}) cannot be written to.")
    if not workers:
        raise NotReady(
            f"Not ready: no worker with a loaded model has reported in the last {timeout:g} s."
        )
    return Readiness(status="ready", storage=settings.storage, workers=workers)


def _live_workers(store: JobStore, timeout: float) -> list[WorkerBeat]:
    try:
        return Heartbeats(store.redis).live(timeout)
    except redis.RedisError:
        raise NotReady("Not ready: Redis is unreachable.") from None
