"""A live worker's process at start: its model warmed up, and the reaper of lost sessions.

`worker_process_init` (`worker/celery_app.py`) must return within 4 seconds, so both run in
threads: one loads the model and makes the first (slowest) decode, so that a session's first
caption does not pay for it; the other ends, every heartbeat interval, the sessions of live
workers that are gone, as transcription workers do after each heartbeat (`worker/reaper.py`).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import redis

from shared.config import Settings
from shared.errors import VerbatimError
from worker import metrics
from worker.job_state import job_store
from worker.live_decoder import RATE, whisper_decode
from worker.model import get_model
from worker.reaper import end_lost_sessions

log = logging.getLogger(__name__)


def warm_up(settings: Settings) -> None:
    """In a live worker: load the model and make the first decode in a thread
    (`worker_process_init` must return within 4 seconds); then, in another, end the sessions
    of live workers that are gone, as transcription workers do after each heartbeat."""
    threading.Thread(target=_warm_up, args=(settings,), name="live-warm-up", daemon=True).start()
    threading.Thread(target=_reap, args=(settings,), name="live-reaper", daemon=True).start()


def _reap(settings: Settings) -> None:
    store = job_store()
    while True:  # a daemon thread: it ends with the process
        time.sleep(settings.heartbeat_interval_seconds)
        try:
            end_lost_sessions(store, settings)
        except redis.RedisError as exc:
            log.warning("live sessions of lost workers not checked: %s", exc)


def _warm_up(settings: Settings) -> None:
    """Load the model and decode a second of silence: a model's first decode is several times
    slower than the next ones, and a session's first caption should not pay for it."""
    try:
        model = get_model(settings, settings.served_models[0])
        whisper_decode(model, "transcribe", settings)(np.zeros(RATE, dtype=np.float32), "en", "")
        log.info("live worker warmed up", extra={"event": "live_ready"})
        metrics.live_ready()
    except VerbatimError as exc:
        log.error("live worker: model not loaded: %s", exc.message)
