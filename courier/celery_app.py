"""The I/O worker's Celery application: `celery -A courier.celery_app:app worker -Q verbatim.io`.

Its tasks wait on other hosts (webhook receivers, media servers), so it runs a thread pool and
consumes only the I/O queue; a transcription worker never takes these tasks, and a slow
receiver never holds up a transcription. It needs the API's dependencies (httpx, PyAV for the
probe), never the model stack.
"""

from __future__ import annotations

from typing import Any

from celery import signals

from courier import metrics
from shared.config import get_settings
from shared.logs import configure_logging
from shared.queue import make_celery
from shared.state.webhooks import IO_QUEUE

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
def _start_metrics(**_: Any) -> None:
    metrics.start_server(get_settings().io_metrics_port)
