"""Each pool process loads its model as soon as it starts, then reports itself in Redis.

`start()` runs from `worker_process_init`, which must return within 4 seconds, so the load
happens in a background thread; a job that arrives meanwhile waits in `get_model` for that
same load. Once the model is loaded the thread beats every `heartbeat_interval_seconds`
(`shared/heartbeats.py`), which is what `/readyz` counts; `stop()` withdraws the beat on a
clean exit, and a killed process's beat expires after `heartbeat_timeout_seconds`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import redis

from shared.config import Settings
from shared.errors import ModelUnavailable
from shared.heartbeats import Heartbeats
from worker import metrics
from worker.model import get_model, resolve_device

log = logging.getLogger(__name__)

_stop = threading.Event()
_jobs_done = 0
_thread: threading.Thread | None = None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def start(settings: Settings) -> None:
    """Load the model and start beating, in a thread of this pool process."""
    global _thread
    _stop.clear()
    _thread = threading.Thread(
        target=_run, args=(settings, os.getppid()), name="verbatim-heartbeat", daemon=True
    )
    _thread.start()


def job_done() -> None:
    """Count a finished job (completed or failed) for the next beat. Jobs run one at a time
    per process, so a plain global is enough."""
    global _jobs_done
    _jobs_done += 1


def stop(settings: Settings) -> None:
    """Stop beating and withdraw this process's beat, so `/readyz` stops counting it now."""
    _stop.set()
    if _thread is not None:
        _thread.join(timeout=2)
    try:
        _heartbeats(settings).withdraw(worker_id())
    except redis.RedisError as exc:
        log.warning("heartbeat not withdrawn: %s", exc)


def _heartbeats(settings: Settings) -> Heartbeats:
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    return Heartbeats(client)


def _run(settings: Settings, parent: int) -> None:
    started = time.perf_counter()
    try:
        get_model(settings)
    except ModelUnavailable as exc:
        log.error("model not loaded; this process will not report ready: %s", exc.message)
        return
    metrics.model_loaded(time.perf_counter() - started)
    device, compute_type = resolve_device(settings)
    beats = _heartbeats(settings)
    failing = False
    # A pool process orphaned by a killed main process takes no jobs: it must not beat.
    while not _stop.is_set() and os.getppid() == parent:
        try:
            beats.beat(
                worker_id(), settings.heartbeat_timeout_seconds, hostname=socket.gethostname(),
                pid=os.getpid(), model=settings.model, device=device,
                compute_type=compute_type, jobs_done=_jobs_done,
            )
            failing = False
        except redis.RedisError as exc:
            if not failing:  # once per outage, not once per beat
                log.warning("heartbeat failed: %s", exc)
            failing = True
        _stop.wait(settings.heartbeat_interval_seconds)
    beats.redis.close()
