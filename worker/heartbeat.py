"""Each pool process loads its model as soon as it starts, then reports itself in Redis.

`start()` runs from `worker_process_init` in each prefork pool process, or from `worker_init`
in a `threads` pool's one process (which is then its own node, and runs several jobs under one
beat). Either must return quickly (the first within 4 seconds), so the load
happens in a background thread; a job that arrives meanwhile waits in `get_model` for that
same load. While it loads, the process beats as `STARTING`, which the reapers count alive and
`/readyz` does not: a load slower than `heartbeat_timeout_seconds` (a large model, a busy
host) must not get the job it holds taken from it and run a second time elsewhere. A load
that fails is tried again every `heartbeat_interval_seconds` until it succeeds (a job's own
load may succeed first: the model is cached, so the next try finds it).
Once the model is loaded the thread beats every `heartbeat_interval_seconds`
(`shared/state/heartbeats.py`), which is what `/readyz` counts. On a clean exit `stop()` ends the
thread, which withdraws the beat itself, after its last one; a killed process's beat expires
after `heartbeat_timeout_seconds`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from celery import Celery

from shared.config import Settings
from shared.errors import ModelUnavailable
from shared.state.heartbeats import (
    CONNECT_TIMEOUT_SECONDS,
    SOCKET_TIMEOUT_SECONDS,
    STARTING,
    Heartbeats,
    WorkerBeat,
    beat_client,
    beat_until,
    withdraw_quietly,
)
from shared.state.jobs import JobStore
from shared.state.requeue import Deliveries
from shared.state.spread_plans import Spreads
from worker.model import loaded_models, prepare, resolve_device, unload_idle
from worker.reaper import end_lost_sessions, requeue_orphans, requeue_windows

log = logging.getLogger(__name__)

# How long `stop()` gives the thread to finish a beat under way and withdraw: longer than one
# Redis command can block.
STOP_TIMEOUT_SECONDS = CONNECT_TIMEOUT_SECONDS + SOCKET_TIMEOUT_SECONDS + 1

_stop = threading.Event()
_jobs_done = 0
_counting = threading.Lock()
_thread: threading.Thread | None = None


def worker_id() -> str:
    """This process, as heartbeats and running jobs name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def node_id(pid: int | None = None) -> str:
    """The Celery worker a process belongs to (its main process, which receives messages)."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def start(settings: Settings, celery: Celery, own_node: bool = False) -> None:
    """Load the model and start beating, in a thread of this pool process (of this worker's
    main process where `own_node`: a `threads` pool); after each beat, requeue the jobs of
    workers that are gone (`worker/reaper.py`) through `celery`."""
    global _thread
    _stop.clear()
    parent = None if own_node else os.getppid()
    _thread = threading.Thread(
        target=_run, args=(settings, celery, parent), name="verbatim-heartbeat", daemon=True,
    )
    _thread.start()


def job_done() -> None:
    """Count a finished job (completed or failed) for the next beat; the jobs of a `threads`
    pool finish in threads of their own."""
    global _jobs_done
    with _counting:
        _jobs_done += 1


def stop() -> None:
    """Stop beating and withdraw this process's beat, so `/readyz` stops counting it now."""
    _stop.set()
    if _thread is not None:
        _thread.join(timeout=STOP_TIMEOUT_SECONDS)
        if _thread.is_alive():
            log.warning("heartbeat thread still busy at exit; its last beat will expire")


def _running(parent: int | None) -> bool:
    # A pool process orphaned by a killed main process takes no jobs: it must not beat.
    return not _stop.is_set() and (parent is None or os.getppid() == parent)


def _run(settings: Settings, celery: Celery, parent: int | None) -> None:
    beats = Heartbeats(beat_client(settings.redis_url))
    starting = Heartbeats(beats.redis, STARTING)
    try:
        if _load_while_starting(settings, starting, parent):
            _beat(beats, settings, celery, parent, starting)
        if _stop.is_set():  # a clean exit; an orphan's beats just expire
            withdraw_quietly(beats, worker_id())
            withdraw_quietly(starting, worker_id())
    finally:
        beats.redis.close()


def _load_while_starting(settings: Settings, starting: Heartbeats, parent: int | None) -> bool:
    """Load the model (`_load_model`) while another thread beats as `STARTING`. That beat is
    withdrawn after the first beat as a loaded worker (`_beat`), so the process is never
    missing from both groups."""
    loaded = threading.Event()

    def fields() -> dict[str, object]:
        return {"hostname": socket.gethostname(), "pid": os.getpid(),
                "model": settings.served_models[0], "device": "", "compute_type": "",
                "jobs_done": 0, "node": node_id(parent)}

    thread = threading.Thread(
        target=beat_until, name="verbatim-starting-beat",
        args=(starting, worker_id(), settings, fields, lambda: None,
              lambda: not loaded.is_set() and _running(parent), loaded.wait), daemon=True)
    thread.start()
    try:
        return _load_model(settings, parent)
    finally:
        loaded.set()
        thread.join(timeout=STOP_TIMEOUT_SECONDS)


def alive(beats: Heartbeats, timeout_seconds: float) -> list[WorkerBeat]:
    """The transcription worker processes the reapers count alive: those that beat as loaded,
    and those still loading their model (`STARTING`)."""
    return (beats.live(timeout_seconds)
            + Heartbeats(beats.redis, STARTING).live(timeout_seconds))


def _load_model(settings: Settings, parent: int | None) -> bool:
    """Try to load the model every interval until it loads (True) or the process stops."""
    while _running(parent):
        try:
            prepare(settings)
            return True
        except ModelUnavailable as exc:
            log.error("model not loaded; this process does not report ready and tries again "
                      "in %g s: %s", settings.heartbeat_interval_seconds, exc.message)
        except Exception:
            log.exception("model not loaded; this process does not report ready and tries "
                          "again in %g s", settings.heartbeat_interval_seconds)
        _stop.wait(settings.heartbeat_interval_seconds)
    return False


def _beat(
    beats: Heartbeats, settings: Settings, celery: Celery, parent: int | None,
    starting: Heartbeats,
) -> None:
    first = settings.served_models[0]
    device, compute_type = resolve_device(settings, first)
    deliveries = Deliveries(JobStore(beats.redis))
    spreads = Spreads(deliveries.store)
    timeout = settings.heartbeat_timeout_seconds

    def fields() -> dict[str, object]:
        return {"hostname": socket.gethostname(), "pid": os.getpid(), "model": first,
                "device": device, "compute_type": compute_type, "jobs_done": _jobs_done,
                "node": node_id(parent), "models": ",".join(settings.served_models),
                "loaded": ",".join(loaded_models())}

    starting_withdrawn = False

    def reap() -> None:
        nonlocal starting_withdrawn
        if not starting_withdrawn:  # the first beat as loaded is in: starting is over
            withdraw_quietly(starting, worker_id())
            starting_withdrawn = True
        live = alive(beats, timeout)
        nodes = {beat.node for beat in live if beat.node}
        default = settings.default_model
        requeue_orphans(deliveries, {beat.id for beat in live}, nodes, celery, timeout, default)
        requeue_windows(spreads, {beat.id for beat in live} | nodes, celery, timeout, default)
        unload_idle(settings)
        end_lost_sessions(deliveries.store, settings)

    beat_until(beats, worker_id(), settings, fields, reap, lambda: _running(parent), _stop.wait)
