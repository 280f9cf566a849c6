"""When a job ends in a worker: schedule its webhook event, if it has one (`announce_end`).

`announce_end` is the one call for every way a job ends in a worker: completed or failed by its
transcription task, by the last window of a spread job (`worker/spread.py`), by too many
attempts, or at the end of a live session. A Celery signal calls it after each transcription
and window task, so that no end in those tasks is missed; it claims the job's one event
(`shared/state/webhooks.py`), so a job announced twice (a redelivered task, a window finishing after
the job failed, a second caller) still sends one event. The worker only schedules the event;
the I/O worker delivers it.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from celery import Task, signals

from shared.config import get_settings
from shared.queue import TRANSCRIBE_TASK, WINDOW_TASK
from shared.state.webhooks import Events
from worker.job_state import job_store

log = logging.getLogger(__name__)

# The tasks a job can end in; each takes the job's id first.
ENDING_TASKS = frozenset({TRANSCRIBE_TASK, WINDOW_TASK})


@lru_cache
def events() -> Events:
    return Events(job_store(), get_settings())


def announce_end(job_id: str) -> bool:
    """Schedule the webhook event of `job_id` if it has ended and has a webhook, once per job
    however often it is called; True when this call scheduled it. Never raises: the job's
    outcome stands, only its event would be lost."""
    try:
        return events().announce(job_id)
    except Exception:
        log.exception("webhook event not scheduled", extra={"job_id": job_id})
        return False


@signals.task_postrun.connect
def _announce(task: Task, args: tuple[Any, ...] | None = None, **_: Any) -> None:
    if task.name in ENDING_TASKS and args:
        announce_end(str(args[0]))
