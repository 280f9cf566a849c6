"""What every task of a job shares in its process: the job store, events, requeue marks and
audio allowance (one client each, made on first use), how a job that ends in failure or is
deleted under a task is recorded, and how a task that lost Redis puts its job back. The
transcription task (`worker/tasks.py`), the window tasks (`worker/spread.py`) and the live
session task (`worker/live_task.py`) build on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from shared.config import Settings, get_settings
from shared.errors import QuotaExceeded, VerbatimError
from shared.media.storage import media_store
from shared.priorities import REQUEUED_PRIORITY
from shared.queue import enqueue_transcription
from shared.schemas import Transcript
from shared.state.allowance import WHOLE, AudioAllowance
from shared.state.job_events import JobEvents
from shared.state.jobs import JobStore
from shared.state.requeue import Deliveries
from worker import heartbeat, metrics
from worker.pool import check_stopping
from worker.reaper import model_of
from worker.transcriber import DecodedCallback

# Named as the tasks' own: a job's log lines come from one logger however its task ended.
log = logging.getLogger("worker.tasks")

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
# How long a task that lost the media store waits for it before giving its message back: a
# store restart then costs no attempt beyond the one it broke, however many tasks it broke.
STORE_WAIT_SECONDS = 60.0
STORE_POLL_SECONDS = 0.5
# How long a task that lost Redis keeps trying to put its job back (`when_redis_answers`). Redis
# is the broker too: until it answers, this process has nothing else it could run.
REQUEUE_WAIT_SECONDS = 3600.0
# Connection errors of the broker, as Celery raises them when it cannot send a message.
BROKER_DOWN = (*REDIS_DOWN, OperationalError)

T = TypeVar("T")


def wait_for_store() -> None:
    """Until the media store answers again, or `STORE_WAIT_SECONDS`."""
    store = media_store(get_settings())
    deadline = time.monotonic() + STORE_WAIT_SECONDS
    while not store.ready() and time.monotonic() < deadline:
        time.sleep(STORE_POLL_SECONDS)


def when_redis_answers(step: Callable[[], T], seconds: float = REQUEUE_WAIT_SECONDS) -> T:
    """`step()`, tried again every `STORE_POLL_SECONDS` while Redis (the broker too) does not
    answer, for up to `seconds`; then its `BROKER_DOWN` error. `Stopped` when a `threads` pool
    stops meanwhile."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return step()
        except BROKER_DOWN:
            if time.monotonic() > deadline:
                raise
            check_stopping()
            time.sleep(STORE_POLL_SECONDS)


def requeue_held(job_id: str, generation: int, celery: Celery) -> None:
    """Put the job this process holds, by a message of `generation`, back on the queue under a
    new generation, through connections made now, once Redis answers (`when_redis_answers`).

    Not by rejecting the message: it came by a broker connection that was lost with Redis, and
    Celery does not move it to the new one, so the reject fails (kombu logs "Couldn't reject")
    and the message waits out the visibility timeout, its job `processing` on a live worker
    that no reaper takes over. The old message, when it comes back, is stale and skipped."""
    model = when_redis_answers(lambda: model_of(job_store(), job_id, get_settings().default_model))
    new = when_redis_answers(
        lambda: deliveries().requeue_if_held(job_id, heartbeat.worker_id(), generation))
    if new:  # else another message runs it, or it ended, or it is gone: nothing to put back
        when_redis_answers(lambda: enqueue_transcription(
            celery, job_id, model, priority=REQUEUED_PRIORITY, generation=new))
        log.warning("job requeued once Redis answered", extra={"event": "requeued"})


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
