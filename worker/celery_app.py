"""The worker's Celery application: `celery -A worker.celery_app:app worker`."""

from __future__ import annotations

import os
from typing import Any

from celery import concurrency, signals
from celery.concurrency import solo, thread

from shared.config import get_settings
from shared.logs import configure_logging
from shared.media.storage import prepare_store
from shared.queue import make_celery, model_queues
from shared.state.live_sessions import LIVE_QUEUE, is_live_queue, live_queue_for
from worker import heartbeat, live_worker, metrics, model
from worker.concurrency import default_concurrency, share_cores
from worker.pool import ThreadPool

app = make_celery(get_settings(), main="verbatim-worker")
app.conf.update(
    include=["worker.tasks", "worker.spread", "worker.webhooks", "worker.live_task",
             "worker.enrolment", "worker.classification"],
    # Without this Redis restores a crashed worker's message only after the visibility
    # timeout; with it a dead pool process's job goes back to the queue at once.
    task_reject_on_worker_lost=True,
    task_acks_late=True,
    worker_send_task_events=False,
    # One queue per model served (`VERBATIM_WORKER_MODELS`): a job reaches only a worker that
    # has its model.
    task_queues=model_queues(get_settings()),
    # Unless `--concurrency` says otherwise: one job per core on CPU, up to 4; one on a GPU.
    worker_concurrency=default_concurrency(get_settings()),
)


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Our handler and format for every logger, Celery's own included (Celery then installs
    none of its own)."""
    configure_logging(get_settings())


@signals.celeryd_init.connect
def _early_logging(instance: Any, **_: Any) -> None:
    """Logging set up before Celery's start-up warnings (about running as root, say), and no
    banner in JSON mode: it is printed, not logged, and would be the only non-JSON output."""
    configure_logging(get_settings())
    if get_settings().log_format == "json":
        instance.quiet = True


@signals.worker_init.connect
def _start(sender: Any, **_: Any) -> None:
    """Metrics in the main process; the jobs at once, which share the cores (a prefork pool's
    processes are forked after this, and inherit it); and in a `threads` pool (which fires no
    `worker_process_init`), the model, with one replica per job at once, and the heartbeat."""
    _serve_live_models()
    prepare_store(get_settings())
    metrics.start_server(get_settings())
    pool = concurrency.get_implementation(sender.pool_cls)
    # `--concurrency auto` is resolved after this signal: it counts the CPUs.
    jobs = sender.concurrency if isinstance(sender.concurrency, int) else None
    jobs = 1 if issubclass(pool, solo.TaskPool) else jobs or len(os.sched_getaffinity(0))
    share_cores(jobs)
    if not _live_worker():  # a live worker reports when warm
        metrics.slots(jobs)
    if issubclass(pool, thread.TaskPool):
        # Resolved right after this signal; ours can stop its jobs (`worker/pool.py`).
        sender.pool_cls = ThreadPool
        model.use_replicas(jobs)
        heartbeat.start(get_settings(), app, own_node=True)


def _live_worker() -> bool:
    """Whether this worker holds live sessions (it was started with `--queues live`)."""
    return any(is_live_queue(name) for name in app.amqp.queues.consume_from)


def _serve_live_models() -> None:
    """A live worker started on `live` consumes, instead, the live queue of each model it
    serves (`VERBATIM_WORKER_MODELS`): a session only reaches a live worker that has its model.
    (Celery's consumer starts after `worker_init`, so it reads the queues chosen here.)"""
    queues = app.amqp.queues
    if LIVE_QUEUE not in queues.consume_from:
        return
    for name in get_settings().served_models:
        queues.select_add(live_queue_for(name))
    queues.deselect(LIVE_QUEUE)


@signals.worker_shutdown.connect
def _stop(**_: Any) -> None:
    heartbeat.stop()  # a `threads` pool's; a prefork main process has none to stop
    live_worker.stop()  # a live worker's beat
    metrics.stop_server()


@signals.worker_process_init.connect
def _warm_up(**_: Any) -> None:
    if _live_worker():  # a live worker (`verbatim live-worker`)
        live_worker.warm_up(get_settings())  # not a transcription worker of /readyz
        return
    heartbeat.start(get_settings(), app)


@signals.worker_process_shutdown.connect
def _withdraw(**_: Any) -> None:
    # The process's live gauges go at the next scrape (`worker/metrics.py` `_LiveProcesses`).
    heartbeat.stop()
