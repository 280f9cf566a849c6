"""The Celery transport shared by the API (producer) and the workers (consumers).

Celery only carries job ids; state lives in the job store. The API sends the task by name,
so it never imports the worker or its model stack.
"""

from __future__ import annotations

from celery import Celery

from shared.config import Settings

TRANSCRIBE_TASK = "verbatim.transcribe"
QUEUE = "verbatim"


def make_celery(settings: Settings, main: str = "verbatim") -> Celery:
    app = Celery(main, broker=settings.redis_url)
    app.conf.update(
        task_default_queue=QUEUE,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        # A crashed worker leaves its message unacknowledged; Redis hands it out again after
        # this timeout, which must outlast the longest job or it would run twice.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_seconds},
        broker_connection_retry_on_startup=True,
        # Fail fast when Redis is down so the API can answer 503 instead of hanging.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
    )
    return app


def enqueue_transcription(app: Celery, job_id: str) -> None:
    app.send_task(TRANSCRIBE_TASK, args=[job_id], queue=QUEUE)
