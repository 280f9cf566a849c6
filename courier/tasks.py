"""The I/O worker's tasks: thin wrappers over `courier/delivery.py` and `courier/fetching.py`."""

from __future__ import annotations

from functools import lru_cache

from courier.celery_app import app
from courier.delivery import deliver
from courier.fetching import fetch
from shared.config import get_settings
from shared.logs import bind
from shared.state.jobs import JobStore
from shared.state.webhooks import DELIVER_TASK, FETCH_TASK, Events


@lru_cache
def events() -> Events:
    settings = get_settings()
    store = JobStore.from_url(settings.redis_url, retry_seconds=settings.redis_retry_seconds)
    return Events(store, settings)


@app.task(name=DELIVER_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_webhook(job_id: str, attempt: int) -> None:
    """One attempt at the job's webhook event; schedules the next one when it fails."""
    with bind(job_id=job_id):
        deliver(events(), job_id, attempt, app)


@app.task(name=FETCH_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def fetch_media(job_id: str) -> None:
    """Download the job's media URL, probe it and queue it for transcription."""
    with bind(job_id=job_id):
        fetch(events(), job_id, app)
