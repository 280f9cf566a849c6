"""The I/O worker's Celery application: `celery -A courier.celery_app:app worker -Q verbatim.io`.

Its tasks wait on other hosts (webhook receivers, media servers), so it runs a thread pool and
consumes only the I/O queue; a transcription worker never takes these tasks, and a slow
receiver never holds up a transcription. It needs the API's dependencies (httpx, PyAV for the
probe), never the model stack. Beside the pool (media fetches) it runs threads of its own:
its heartbeat and reaper (`courier/heartbeat.py`) and its webhook threads (`courier/sender.py`).
"""

from __future__ import annotations

from typing import Any

from celery import signals
from celery.worker.request import Request

from courier import heartbeat, metrics, state
from shared.config import get_settings
from shared.logs import configure_logging
from shared.media.storage import prepare_store
from shared.queue import make_celery
from shared.state.webhooks import FETCH_TASK, IO_QUEUE

app = make_celery(get_settings(), main="verbatim-io")
app.conf.update(
    include=["courier.tasks"],
    task_default_queue=IO_QUEUE,
    # Retries wait as ETA messages the worker holds unacknowledged: acknowledged late, a
    # restart gives them back to the queue instead of losing them.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_send_task_events=False,
)


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(get_settings())


@signals.worker_init.connect
def _start(**_: Any) -> None:
    settings = get_settings()
    prepare_store(settings)
    metrics.start_server(settings.io_metrics_port)
    heartbeat.start(settings, app)
    state.sender().start()


@signals.worker_shutdown.connect
def _stop(**_: Any) -> None:
    state.sender().stop(get_settings().webhook_timeout_seconds)
    heartbeat.stop()


@signals.task_received.connect
def _mark_received(request: Request, **_: object) -> None:
    """In the I/O worker, as soon as it holds a fetch's message (one waiting its turn
    included): note that it does, so the fetch is sent again should this worker die."""
    if request.name == FETCH_TASK and request.args:
        state.mark_received(str(request.args[0]))
