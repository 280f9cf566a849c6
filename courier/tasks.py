"""The I/O worker's tasks: thin wrappers over `courier/fetching.py`, and its webhook sender."""

from __future__ import annotations

import logging

from courier import heartbeat
from courier.celery_app import app
from courier.fetching import fetch
from courier.state import claims, events
from shared.logs import bind
from shared.state.webhooks import DELIVER_TASK, FETCH_TASK

log = logging.getLogger(__name__)


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
