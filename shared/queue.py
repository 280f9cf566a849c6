"""The Celery transport shared by the API (producer) and the workers (consumers).

Celery only carries job ids; state lives in the job store. The API sends the task by name,
so it never imports the worker or its model stack.

Each model of the catalogue has a queue of its own, `verbatim.model.{name}` (`queue_for`), and
a worker consumes the queues of the models it serves (`VERBATIM_WORKER_MODELS`) alone, so a
job only ever reaches a worker that has its model. A deployment with groups of workers per
model starts each group with `VERBATIM_WORKER_MODELS` set to that group's models (or with
Celery's `--queues` set to their queues).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
from celery import Celery, Signature
from kombu import Queue
from kombu.transport.redis import Channel

from shared import broker_transport
from shared.config import Settings
from shared.models import DEFAULT_CATALOGUE
from shared.priorities import LOWEST_PRIORITY, NEW_JOB_PRIORITY, PRIORITY_STEPS, REQUEUED_PRIORITY
from shared.redis_connect import broker

TRANSCRIBE_TASK = "verbatim.transcribe"
# One window of a recording spread over workers (`worker/spread.py`).
WINDOW_TASK = "verbatim.transcribe_window"
# Enrolling a voice for a key's named speakers (`worker/enrolment.py`).
ENROL_TASK = "verbatim.enrol_voice"
# Labelling a short clip's sounds for `POST /v1/audio/classify` (`worker/classification.py`).
CLASSIFY_TASK = "verbatim.classify_clip"
QUEUE = "verbatim"
MODEL_QUEUE_PREFIX = f"{QUEUE}.model."
# The task message header carrying the id of the HTTP request that submitted the job (for the
# worker's log lines); Celery hands custom headers to the task as `self.request.<name>`.
REQUEST_ID_TASK_HEADER = "verbatim_request_id"
# The job's generation the message was sent for: raised by every requeue, so that the older
# message of a requeued job is known to be stale (`shared/state/requeue.py`).
GENERATION_TASK_HEADER = "verbatim_generation"

DEFAULT_MODELS = tuple(DEFAULT_CATALOGUE)

def queue_for(model: str) -> str:
    """The queue of the jobs (and spread windows) of `model`, a catalogue name."""
    return f"{MODEL_QUEUE_PREFIX}{model}"


def model_queues(settings: Settings) -> list[Queue]:
    """The queues a transcription worker consumes unless `--queues` says otherwise: those of
    the models it serves, and where it serves the default model, `verbatim`, the one queue of
    every job before models had queues (so jobs queued before an upgrade still run)."""
    queues = [Queue(queue_for(name)) for name in settings.served_models]
    return queues + ([Queue(QUEUE)] if settings.default_model in settings.served_models else [])


def make_celery(settings: Settings, main: str = "verbatim") -> Celery:
    """The Celery app of `main`, on the Redis broker of `settings`; its channels outlive a lost
    broker connection holding unacknowledged messages (`shared/broker_transport.py`)."""
    broker_transport.install()
    url, sentinel_options = broker(settings.redis_url)
    app = Celery(main, broker=url)
    app.conf.update(
        task_default_queue=QUEUE,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        # A crashed worker leaves its message unacknowledged; Redis hands it out again after
        # this timeout, which must outlast the longest job or it would run twice.
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds,
            "priority_steps": PRIORITY_STEPS,
            **sentinel_options,
        },
        broker_connection_retry_on_startup=True,
        # Stopping (SIGTERM remapped to SIGQUIT) lets a running job finish for this long, then
        # cancels it; the Redis transport puts its unacknowledged message back on the queue at
        # once, where a killed worker's message would wait out the visibility timeout.
        worker_soft_shutdown_timeout=settings.worker_shutdown_grace_seconds,
        # Fail fast when Redis is down so the API can answer 503 instead of hanging.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
    )
    return app


def enqueue_transcription(
    app: Celery, job_id: str, model: str, request_id: str | None = None,
    priority: int = NEW_JOB_PRIORITY, generation: int = 0,
) -> None:
    """Send the job's id to the workers of `model`; a lower `priority` number is taken
    sooner."""
    if not REQUEUED_PRIORITY <= priority <= LOWEST_PRIORITY:
        raise ValueError(f"priority {priority} is outside {PRIORITY_STEPS}")
    headers: dict[str, object] = {GENERATION_TASK_HEADER: generation}
    if request_id:
        headers[REQUEST_ID_TASK_HEADER] = request_id
    app.send_task(
        TRANSCRIBE_TASK, args=[job_id], queue=queue_for(model), headers=headers,
        priority=priority,
    )


def window_signature(
    app: Celery, job_id: str, model: str, plan: int, index: int, priority: int
) -> Signature:
    """The message of one window of a spread recording of `model` (`worker/spread.py`)."""
    return app.signature(WINDOW_TASK, args=[job_id, plan, index], queue=queue_for(model),
                         priority=priority)


def queue_depths_by_model(
    client: redis.Redis, models: Sequence[str] = DEFAULT_MODELS
) -> dict[str, dict[int, int]]:
    """Messages waiting in the queue of each of `models` (those of the default catalogue unless
    given), by priority. Kombu's Redis transport keeps one list per priority step: the queue's
    own name for priority 0, `{queue}\\x06\\x16{step}` for the others."""
    names = [[queue_for(model)] + [f"{queue_for(model)}{Channel.sep}{step}"
                                   for step in PRIORITY_STEPS[1:]] for model in models]
    with client.pipeline(transaction=False) as pipe:
        for name in (name for steps in names for name in steps):
            pipe.llen(name)
        lengths = pipe.execute()
    width = len(PRIORITY_STEPS)
    return {model: dict(zip(PRIORITY_STEPS, lengths[index * width:(index + 1) * width],
                            strict=True))
            for index, model in enumerate(models)}


def queue_depths(
    client: redis.Redis, models: Sequence[str] = DEFAULT_MODELS
) -> dict[int, int]:
    """Messages waiting in the queues of `models`, by priority (every model's together)."""
    by_model = queue_depths_by_model(client, models).values()
    return {step: sum(depths[step] for depths in by_model) for step in PRIORITY_STEPS}


def queue_depth(client: redis.Redis, models: Sequence[str] = DEFAULT_MODELS) -> int:
    """Messages waiting in the queues of `models`, whatever their priority."""
    return sum(queue_depths(client, models).values())
