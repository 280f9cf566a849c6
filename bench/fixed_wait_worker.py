"""The real Celery worker with its decoding step replaced by a fixed wait (capacity_bench.py).

    celery -A fixed_wait_worker:app worker --pool threads ...   (bench/ on PYTHONPATH)

Everything else is the worker's own code: the task, its received mark, attempt count, status
writes, events, completion, upload removal and heartbeats. Only the model is left out: no model
is loaded, and the transcription of a job is `VERBATIM_BENCH_DECODE_SECONDS` of sleep and a
one-segment transcript. So what it measures is the queue and the store, not the model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import worker.heartbeat
import worker.tasks
from shared.config import Settings
from shared.schemas import JobOptions, Segment, Transcript
from worker.celery_app import app

__all__ = ["app"]

DECODE_SECONDS = float(os.environ.get("VERBATIM_BENCH_DECODE_SECONDS", "0.2"))


def no_model(settings: Settings, *_: Any) -> Any:
    return None


def fixed_wait(model: Any, audio: Path, options: JobOptions, settings: Settings,
               on_progress: Any, expected_seconds: float | None = None, *_: Any,
               **__: Any) -> Transcript:
    """A fixed wait in place of decoding, with one progress report as the real one makes."""
    time.sleep(DECODE_SECONDS / 2)
    on_progress(0.5)
    time.sleep(DECODE_SECONDS / 2)
    seconds = expected_seconds or 1.0
    segment = Segment(id=0, start=0.0, end=seconds, text=" fixed wait")
    return Transcript(language="en", language_probability=1.0, duration=seconds,
                      text="fixed wait", segments=[segment])


worker.tasks.get_model = no_model  # type: ignore[assignment]
worker.tasks.run_whisper = fixed_wait  # type: ignore[assignment]
worker.heartbeat.prepare = no_model  # type: ignore[assignment]
