"""Enrolling a voice from a reference clip on disk (issue 21): the clip handed to a worker
(`worker/enrolment.py`), the request waiting for its word. Used by `POST /v1/speakers` and by
OpenAI's `known_speaker_references[]`."""

from __future__ import annotations

import json

from celery import Celery
from starlette.requests import Request

from api.deps import run_sync
from api.quotas import Quotas
from shared.errors import (
    NoSpeech,
    ReferenceTooShort,
    ServiceUnavailable,
    TooManyVoices,
    UnsupportedMedia,
    VerbatimError,
)
from shared.queue import ENROL_TASK, QUEUE
from shared.state.jobs import JobStore, new_job_id
from shared.state.keys import ApiKey
from shared.state.voices import result_key

# Seconds the request waits for a worker to embed the clip, in blocking pops shorter than the
# store client's socket timeout.
ENROL_WAIT_SECONDS = 60
POP_SECONDS = 5
_OUTCOMES: dict[str, type[VerbatimError]] = {
    "reference_too_short": ReferenceTooShort, "no_speech": NoSpeech,
    "too_many_voices": TooManyVoices, "decode_error": UnsupportedMedia,
}


async def paced(request: Request, key: ApiKey | None, clips: int = 1) -> None:
    """Count `clips` enrolments against the caller's key's rate, the one its jobs count against
    (`api/quotas.py`), before any clip goes to a worker; raises `RateLimited`."""
    quotas: Quotas = request.app.state.quotas
    await run_sync(quotas.pace, key, clips)


async def enrol(store: JobStore, celery: Celery, owner: str | None, name: str, clip: str,
                ttl: int | None = None, param: str | None = None) -> None:
    """Have a worker embed `clip` (which it then removes) as `owner`'s voice `name` (kept for
    `ttl` seconds, else for good); raises the worker's refusal, naming `param`."""
    enrolment = new_job_id()
    celery.send_task(ENROL_TASK, args=[enrolment, owner, name, clip, ttl], queue=QUEUE)
    for _ in range(ENROL_WAIT_SECONDS // POP_SECONDS):
        answer = await run_sync(store.redis.blpop, [result_key(enrolment)], POP_SECONDS)
        if answer is not None:
            outcome = json.loads(answer[1])
            if (error := _OUTCOMES.get(outcome["code"])) is not None:
                raise error(outcome["message"], param=param)
            return
    raise ServiceUnavailable("No worker took the clip in time; try again later.")
