"""The worker's Celery application: `celery -A worker.celery_app:app worker`."""

from __future__ import annotations

from shared.config import get_settings
from shared.queue import make_celery

app = make_celery(get_settings(), main="verbatim-worker")
app.conf.update(
    include=["worker.tasks"],
    # Without this Redis restores a crashed worker's message only after the visibility
    # timeout; with it a dead pool process's job goes back to the queue at once.
    task_reject_on_worker_lost=True,
    task_acks_late=True,
    worker_send_task_events=False,
)
