"""Labelling a clip on disk (issue 25, `POST /v1/audio/classify`): the clip handed to a worker
(`worker/classification.py`), which has the sound classifier, the request waiting for its word.
The API never loads the model stack."""

from __future__ import annotations

import json

from celery import Celery

from api.deps import run_sync
from shared.errors import ClipTooLong, ServiceUnavailable, UnsupportedMedia, VerbatimError
from shared.queue import CLASSIFY_TASK, QUEUE
from shared.schemas import ClipLabels
from shared.state.clip_answers import answer_key
from shared.state.jobs import JobStore, new_job_id

# Seconds the request waits for a worker, in blocking pops shorter than the store client's
# socket timeout.
CLASSIFY_WAIT_SECONDS = 60
POP_SECONDS = 5
_OUTCOMES: dict[str, type[VerbatimError]] = {
    "clip_too_long": ClipTooLong, "decode_error": UnsupportedMedia}


async def classify(store: JobStore, celery: Celery, clip: str, max_seconds: float) -> ClipLabels:
    """Have a worker label `clip` (which it then removes), at most `max_seconds` of it;
    raises the worker's refusal."""
    request = new_job_id()
    celery.send_task(CLASSIFY_TASK, args=[request, clip, max_seconds], queue=QUEUE)
    for _ in range(CLASSIFY_WAIT_SECONDS // POP_SECONDS):
        answer = await run_sync(store.redis.blpop, [answer_key(request)], POP_SECONDS)
        if answer is not None:
            outcome = json.loads(answer[1])
            if (error := _OUTCOMES.get(outcome["code"])) is not None:
                raise error(outcome["message"], param="file")
            return ClipLabels.model_validate(outcome["labels"])
    raise ServiceUnavailable("No worker took the clip in time; try again later.")
