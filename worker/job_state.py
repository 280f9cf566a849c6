"""What every task of a job shares in its process: the job store, events, requeue marks and
audio allowance (one client each, made on first use), and how a job that ends in failure or is
deleted under a task is recorded. The transcription task (`worker/tasks.py`), the window tasks
(`worker/spread.py`) and the live session task (`worker/live_task.py`) build on it.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache

import redis

from shared.config import Settings, get_settings
from shared.errors import QuotaExceeded, VerbatimError
from shared.media.storage import media_store
from shared.schemas import Transcript
from shared.state.allowance import WHOLE, AudioAllowance
from shared.state.job_events import JobEvents
from shared.state.jobs import JobStore
from shared.state.requeue import Deliveries
from worker import heartbeat, metrics
from worker.transcriber import DecodedCallback

# Named as the tasks' own: a job's log lines come from one logger however its task ended.
log = logging.getLogger("worker.tasks")

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
# How long a task that lost the media store waits for it before giving its message back: a
# store restart then costs no attempt beyond the one it broke, however many tasks it broke.
STORE_WAIT_SECONDS = 60.0
STORE_POLL_SECONDS = 0.5


def wait_for_store() -> None:
    """Until the media store answers again, or `STORE_WAIT_SECONDS`."""
    store = media_store(get_settings())
    deadline = time.monotonic() + STORE_WAIT_SECONDS
    while not store.ready() and time.monotonic() < deadline:
        time.sleep(STORE_POLL_SECONDS)


class JobDeleted(Exception):
    """The job was deleted while it ran; its result is dropped."""


@lru_cache
def job_store() -> JobStore:
    settings = get_settings()
    return JobStore.from_url(settings.redis_url, retry_seconds=settings.redis_retry_seconds)


@lru_cache
def deliveries() -> Deliveries:
    return Deliveries(job_store())


@lru_cache
def job_events() -> JobEvents:
    """Where the job's events go as it runs (`GET /v1/jobs/{id}/events` relays them)."""
    return JobEvents.on(job_store().redis, get_settings())


@lru_cache
def allowance() -> AudioAllowance:
    return AudioAllowance(job_store().redis)


def charged(job_id: str, part: str = WHOLE) -> DecodedCallback:
    """What charges the job's key for each decoded block; it answers `QuotaExceeded` once
    the key's day is spent (`shared/state/allowance.py`)."""

    def on_decoded(seconds: float) -> VerbatimError | None:
        try:
            allowance().charge(job_id, seconds, part)
        except QuotaExceeded as exc:
            return exc
        return None

    return on_decoded


def failed(job_id: str, error: VerbatimError, store: JobStore, settings: Settings,
            transcript: Transcript | None = None) -> None:
    if not store.fail(job_id, error, settings.result_ttl_seconds, transcript):
        log_deleted()
        return
    job_events().failed(job_id, error)
    metrics.job_failed(error.code)
    heartbeat.job_done()
    log.warning("job failed: %s", error.message, extra={"event": "failed", "code": error.code})


def log_deleted() -> None:
    log.info("job deleted while running; result dropped", extra={"event": "deleted"})
