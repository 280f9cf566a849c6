"""The API's periodic sweep of orphaned uploads (`shared/media/sweep.py`): at start-up, then every
`upload_sweep_interval_seconds`, in a thread. Every API process sweeps; two sweeping at once
only repeat each other's checks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import anyio

from api.deps import run_sync
from shared.config import Settings
from shared.media.sweep import sweep_media
from shared.state.jobs import JobStore

log = logging.getLogger(__name__)


async def _sweep_forever(settings: Settings, store: JobStore) -> None:
    while True:
        try:
            await run_sync(sweep_media, settings, store.redis)
        except Exception as exc:  # Redis down, a disk error: try again next time
            log.warning("upload sweep failed: %s", exc)
        await anyio.sleep(settings.upload_sweep_interval_seconds)


@asynccontextmanager
async def sweeping(settings: Settings, store: JobStore) -> AsyncIterator[None]:
    """Sweep in the background for as long as the block runs."""
    task = asyncio.create_task(_sweep_forever(settings, store), name="upload-sweep")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
