"""A live worker's process at start: each model it serves warmed up, its beat, and the reaper of
lost sessions.

`worker_process_init` (`worker/celery_app.py`) must return within 4 seconds, so all of it runs
in threads. One loads each model the live worker serves (`VERBATIM_WORKER_MODELS`, in the order
given) and makes its first (slowest) decode, so that a session's first caption does not pay for
it; then it beats, every heartbeat interval, into the live workers' group
(`shared/state/heartbeats.py` `LIVE`), naming those models: the API refuses a session for a
model that live workers are up but none serves (`model_unavailable`, `api/model_choice.py`),
and lists them in `GET /v1/models`. The other thread ends, every heartbeat interval, the
sessions of live workers that are gone, as transcription workers do after each heartbeat
(`worker/reaper.py`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import numpy as np
import redis

from shared.config import Settings
from shared.errors import VerbatimError
from shared.state.heartbeats import LIVE, Heartbeats, beat_client, beat_until, withdraw_quietly
from worker import metrics
from worker.heartbeat import STOP_TIMEOUT_SECONDS, worker_id
from worker.job_state import job_store
from worker.live_decoder import RATE, whisper_decode
from worker.model import get_model, loaded_models, resolve_device
from worker.reaper import end_lost_sessions

log = logging.getLogger(__name__)

_stop = threading.Event()
_thread: threading.Thread | None = None
_sessions_done = 0


def warm_up(settings: Settings) -> None:
    """In a live worker: warm up its models, then beat, in a thread (`worker_process_init`
    must return within 4 seconds); in another, end the sessions of live workers that are
    gone, as transcription workers do after each heartbeat."""
    global _thread
    _stop.clear()
    _thread = threading.Thread(target=_serve, args=(settings,), name="live-warm-up",
                               daemon=True)
    _thread.start()
    threading.Thread(target=_reap, args=(settings,), name="live-reaper", daemon=True).start()


def session_done() -> None:
    """Count a session this process held, for its next beat."""
    global _sessions_done
    _sessions_done += 1  # the solo pool: one session at a time, in one thread


def stop() -> None:
    """Stop beating and withdraw the beat, so the API stops routing sessions here now."""
    _stop.set()
    if _thread is not None:
        _thread.join(timeout=STOP_TIMEOUT_SECONDS)


def _reap(settings: Settings) -> None:
    store = job_store()
    while True:  # a daemon thread: it ends with the process
        time.sleep(settings.heartbeat_interval_seconds)
        try:
            end_lost_sessions(store, settings)
        except redis.RedisError as exc:
            log.warning("live sessions of lost workers not checked: %s", exc)


def _serve(settings: Settings) -> None:
    if not _warm_up(settings):
        return
    beats = Heartbeats(beat_client(settings.redis_url), LIVE)
    first = settings.served_models[0]
    device, compute_type = resolve_device(settings, first)

    def fields() -> dict[str, object]:
        return {"hostname": socket.gethostname(), "pid": os.getpid(), "model": first,
                "device": device, "compute_type": compute_type, "jobs_done": _sessions_done,
                "models": ",".join(settings.served_models), "loaded": ",".join(loaded_models())}

    try:
        try:  # before the log line that says it is ready: the API then knows its models
            beats.beat(worker_id(), settings.heartbeat_timeout_seconds, **fields())
        except redis.RedisError as exc:
            log.warning("live worker heartbeat failed: %s", exc)
        log.info("live worker warmed up", extra={"event": "live_ready",
                                                 "models": settings.served_models})
        metrics.live_ready()
        beat_until(beats, worker_id(), settings, fields, lambda: None,
                   lambda: not _stop.is_set(), _stop.wait)
        withdraw_quietly(beats, worker_id())
    finally:
        beats.redis.close()


def _warm_up(settings: Settings) -> bool:
    """Load each model served and decode a second of silence with it (a model's first decode
    is several times slower than the next ones, and a session's first caption should not pay
    for it); a model that does not load is tried again every heartbeat interval. False when
    the process stops first."""
    while not _stop.is_set():
        try:
            for name in settings.served_models:
                model = get_model(settings, name)
                silence = np.zeros(RATE, dtype=np.float32)
                whisper_decode(model, "transcribe", settings)(silence, "en", "")
            return True
        except VerbatimError as exc:
            log.error("live worker: model not loaded; it does not beat until it is, and "
                      "tries again in %g s: %s", settings.heartbeat_interval_seconds, exc.message)
        _stop.wait(settings.heartbeat_interval_seconds)
    return False
