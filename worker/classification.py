"""Labelling a short clip for `POST /v1/audio/classify` (issue 25): the clip the API stored is
decoded, classified (`worker/sounds.py`) and removed whatever happens; the API waits on the
answer (`shared/state/clip_answers.py`)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from shared.config import get_settings
from shared.errors import DurationExceeded, VerbatimError
from shared.media.storage import media_store
from shared.queue import CLASSIFY_TASK
from shared.state.clip_answers import answer
from worker.audio import pcm_blocks
from worker.celery_app import app
from worker.job_state import job_store
from worker.sounds import clip_labels

log = logging.getLogger(__name__)


@app.task(name=CLASSIFY_TASK, ignore_result=True)
def classify_clip(request_id: str, clip: str, max_seconds: float) -> None:
    """Classify the clip's audio, at most `max_seconds` of it, and answer the API."""
    media = media_store(get_settings())
    outcome: dict[str, Any]
    try:
        blocks = pcm_blocks(media.source(clip), max_seconds)
        audio = np.concatenate([*blocks, np.zeros(0, np.int16)])
        outcome = {"code": "ok", "labels": clip_labels(audio).model_dump(mode="json")}
    except DurationExceeded:
        outcome = {"code": "clip_too_long",
                   "message": f"The clip is longer than the {max_seconds:g} s classified."}
    except VerbatimError as exc:
        outcome = {"code": "decode_error", "message": exc.message}
    finally:
        media.remove(clip)
    log.info("clip classified: %s", outcome["code"], extra={"event": "classified"})
    answer(job_store().redis, request_id, outcome)
