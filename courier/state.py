"""What the I/O worker's tasks and threads share in its process, each made on first use: the
webhook events (and their job store), the per-key fetch claims, the webhook sender, and the
received mark of a fetch's message."""

from __future__ import annotations

import logging
from functools import lru_cache

import redis

from courier import heartbeat
from courier.sender import Sender
from courier.shares import FetchClaims
from shared.config import get_settings
from shared.state.jobs import JobStore
from shared.state.requeue import Deliveries
from shared.state.webhooks import Events

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
