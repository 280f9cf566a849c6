"""The I/O worker reports itself in Redis and requeues the fetches of I/O workers that are gone.

As a transcription worker does (`worker/heartbeat.py`), with the same beat loop
(`shared/state/heartbeats.py`) in the I/O workers' own group, which `/readyz` does not count,
and the same reaper (`shared/state/requeue.py`) over `fetching` jobs: after each beat, a fetch
begun by an I/O worker that stopped beating `heartbeat_timeout_seconds` ago, and one whose
message such a worker had received but not started, are sent again under a new generation. The
webhook attempts of a gone I/O worker need no reaper: their schedule in Redis gives them to
another (`shared/state/webhooks.py`). `start()` runs from `worker_init` (the thread pool's one
process); on a clean exit `stop()` withdraws the beat.
"""

from __future__ import annotations

import os
import socket
import threading

from celery import Celery

from shared.config import Settings
from shared.state.heartbeats import (
    CONNECT_TIMEOUT_SECONDS,
    IO,
    SOCKET_TIMEOUT_SECONDS,
    Heartbeats,
    beat_client,
    beat_until,
    withdraw_quietly,
)
from shared.state.jobs import JobStore
from shared.state.requeue import Deliveries, requeue_orphans
from shared.state.webhooks import FETCH_TASK, IO_QUEUE

STOP_TIMEOUT_SECONDS = CONNECT_TIMEOUT_SECONDS + SOCKET_TIMEOUT_SECONDS + 1

_stop = threading.Event()
_thread: threading.Thread | None = None


def worker_id() -> str:
    """This I/O worker, as its beats, received marks and held fetches name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def start(settings: Settings, celery: Celery) -> None:
    global _thread
    _stop.clear()
    _thread = threading.Thread(target=_run, args=(settings, celery), name="verbatim-io-beat",
                               daemon=True)
    _thread.start()


def stop() -> None:
    _stop.set()
    if _thread is not None:
        _thread.join(timeout=STOP_TIMEOUT_SECONDS)


def _run(settings: Settings, celery: Celery) -> None:
    beats = Heartbeats(beat_client(settings.redis_url), IO)
    fetches = Deliveries.of_fetches(JobStore(beats.redis))
    timeout = settings.heartbeat_timeout_seconds

    def send(job_id: str, generation: int) -> None:
        celery.send_task(FETCH_TASK, args=[job_id, generation], queue=IO_QUEUE)

    def reap() -> None:
        live = beats.live_ids(timeout)  # an I/O worker is its own node: one process
        requeue_orphans(fetches, live, live, send, timeout)

    def fields() -> dict[str, object]:
        return {"hostname": socket.gethostname(), "pid": os.getpid()}

    try:
        beat_until(beats, worker_id(), settings, fields, reap, lambda: not _stop.is_set(),
                   _stop.wait)
        withdraw_quietly(beats, worker_id())
    finally:
        beats.redis.close()
