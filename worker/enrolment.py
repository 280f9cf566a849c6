"""Enrolling a voice (issue 21, `POST /v1/speakers`): the reference clip's speech embedded and
stored under its name for the key; the clip is removed whatever happens. The API waits on the
outcome (`shared/state/voices.py`)."""

from __future__ import annotations

import logging

import numpy as np

from shared.config import get_settings
from shared.errors import VerbatimError
from shared.media.opening import MediaSource
from shared.media.storage import media_store
from shared.queue import ENROL_TASK
from shared.state.voices import VoiceStore
from worker.audio import SAMPLE_RATE, pcm_blocks, to_float
from worker.celery_app import app
from worker.job_state import job_store
from worker.speech import speech_regions
from worker.voices import get_embedder

log = logging.getLogger(__name__)

# Speech embedded from a reference clip at most: more adds time, not a steadier voice.
MAX_REFERENCE_SPEECH_SECONDS = 30.0


@app.task(name=ENROL_TASK, ignore_result=True)
def enrol(enrolment_id: str, owner: str | None, name: str, clip: str,
          ttl: int | None = None) -> None:
    """Embed the clip's speech and store it as `owner`'s voice `name` (for `ttl` seconds, if
    given), answering the API."""
    settings, store = get_settings(), VoiceStore(job_store().redis)
    media = media_store(settings)
    try:
        speech = _speech(media.source(clip), settings.max_audio_seconds)
        seconds = speech.size / SAMPLE_RATE
        if seconds == 0:
            outcome = {"code": "no_speech", "message": "No speech was heard in the clip."}
        elif seconds < settings.min_reference_seconds:
            outcome = {"code": "reference_too_short", "message":
                       f"The clip holds {seconds:.1f} s of speech; a voice needs at least "
                       f"{settings.min_reference_seconds:.0f} s."}
        else:
            embedding = [float(x) for x in get_embedder().embed(to_float(speech))]
            stored = store.enrol(owner, name, embedding, settings.max_voices_per_key, ttl)
            outcome = {"code": "ok"} if stored else {"code": "too_many_voices", "message":
                       f"The key has {settings.max_voices_per_key} voices, the most it may "
                       "have; delete one first."}
    except VerbatimError as exc:
        outcome = {"code": "decode_error", "message": exc.message}
    finally:
        media.remove(clip)
    log.info("voice enrolment: %s", outcome["code"], extra={"event": "enrolment"})
    store.answer(enrolment_id, outcome)


def _speech(clip: MediaSource, max_seconds: float) -> np.ndarray:
    """The clip's speech regions, joined, up to MAX_REFERENCE_SPEECH_SECONDS."""
    samples = np.concatenate([*pcm_blocks(clip, max_seconds), np.zeros(0, np.int16)])
    regions = speech_regions(samples) if samples.size else []
    joined = np.concatenate([samples[a:b] for a, b in regions] or [np.zeros(0, np.int16)])
    return joined[: int(MAX_REFERENCE_SPEECH_SECONDS * SAMPLE_RATE)]
