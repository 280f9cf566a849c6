"""After each transcription task: queue the job's webhook event if it has one and has ended.

A Celery signal rather than a line in the task, so that every way a job ends (completed,
failed, too many attempts) announces it, once (`shared/state/webhooks.py` claims the event). The
transcription worker only queues the delivery; the I/O worker makes it.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from celery import Task, signals

from shared.config import get_settings
from shared.queue import TRANSCRIBE_TASK
from shared.state.webhooks import Events
from worker.tasks import job_store

log = logging.getLogger(__name__)


@lru_cache
def events() -> Events:
    return Events(job_store(), get_settings())


@signals.task_postrun.connect
def _announce(task: Task, args: tuple[Any, ...] | None = None, **_: Any) -> None:
    if task.name != TRANSCRIBE_TASK or not args:
        return
    try:
        events().announce(str(args[0]), task.app)
    except Exception:  # the job's outcome stands; only its webhook is lost
        log.exception("webhook event not queued", extra={"job_id": str(args[0])})
