"""The I/O worker's tasks: thin wrappers over `courier/fetching.py`, and its webhook sender."""

from __future__ import annotations

import logging
from functools import lru_cache

import redis

from courier import heartbeat
from courier.celery_app import app
from courier.fetching import fetch
from courier.sender import Sender
from courier.shares import FetchClaims
from shared.config import get_settings
from shared.logs import bind
from shared.state.jobs import JobStore
from shared.state.requeue import Deliveries
from shared.state.webhooks import DELIVER_TASK, FETCH_TASK, Events

log = logging.getLogger(__name__)


@lru_cache
def events() -> Events:
    settings = get_settings()
    store = JobStore.from_url(settings.redis_url, retry_seconds=settings.redis_retry_seconds)
    return Events(store, settings)


@lru_cache
def claims() -> FetchClaims:
    return FetchClaims(events().store, get_settings().fetches_per_key)


@lru_cache
def sender() -> Sender:
    return Sender(events(), heartbeat.worker_id())


def mark_received(job_id: str) -> None:
    try:
        Deliveries.of_fetches(events().store).mark_received(job_id, heartbeat.worker_id())
    except redis.RedisError as exc:  # the fetch still runs; only its requeue on a crash is lost
        log.warning("fetch not marked as received: %s", exc, extra={"job_id": job_id})


@app.task(name=DELIVER_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_webhook(job_id: str, attempt: int) -> None:
    """A delivery message of an earlier version: its event goes to the schedule, due now
    (webhook attempts are no longer messages: `courier/sender.py`)."""
    with bind(job_id=job_id):
        events().retry_in(job_id, 0)


@app.task(name=FETCH_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def fetch_media(job_id: str, generation: int = 0) -> None:
    """Download the job's media URL, probe it and queue it for transcription."""
    with bind(job_id=job_id):
        fetch(events(), claims(), job_id, generation, heartbeat.worker_id(), app)
