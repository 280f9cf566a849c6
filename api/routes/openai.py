"""OpenAI-compatible transcription: `POST /v1/audio/transcriptions` and `/translations`.

Each call is an ordinary job (visible at `/v1/jobs/{id}`) that the request waits for, up to
`openai_wait_seconds`; a job still running then is answered 202 with its id and `Location`.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from celery import Celery
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api import openai_compat
from api.auth import Identity, owner_of
from api.deps import JobStoreDep, QueueDep, SettingsDep, run_sync
from api.enrolment import enrol, paced
from api.errors import openai_error
from api.intake import REPLAYED_HEADER, IdempotencyKey, once
from api.openai_compat import (
    GRANULARITIES,
    RESPONSE_FORMATS,
    DiarizedTranscription,
    OpenAIError,
    Task,
    Transcription,
    VerboseTranscription,
)
from api.openai_stream import transcript_events
from api.rendering import off_loop, openai_answer
from api.sse import JobStreams, JobStreamsDep, Slot
from api.submission import discarded_on_error, receive_job_upload, submit
from shared.config import Settings
from shared.errors import JobNotFound
from shared.languages import codes_pattern
from shared.media.storage import MediaStore, media_store
from shared.schemas import ErrorInfo, Job, JobStatus
from shared.state.idempotency import fingerprint
from shared.state.jobs import JobStore
from shared.state.keys import ApiKey
from shared.state.voices import job_scope

router = APIRouter(prefix="/v1/audio", tags=["openai"])

FIRST_POLL_SECONDS = 0.2
MAX_POLL_SECONDS = 1.0
JOB_HEADER = "X-Verbatim-Job-Id"


def _form(task: Task) -> dict[str, Any]:
    """The multipart form in OpenAPI (the route streams the body itself)."""
    language = {"language": {
        "type": "string", "pattern": codes_pattern(),
        "description": "ISO 639-1 code of the speech; several comma-separated (`ko,en`) "
                       "detect it among those; unset detects it."},
        "multilingual": {"type": "boolean", "description":
                         "Verbatim's code-switching mode: each stretch in its own language."},
        "script": {"type": "string", "enum": ["simplified", "traditional"],
                   "description": "Verbatim: Chinese in Simplified or Traditional characters."},
        "known_speaker_names[]": {
            "type": "array", "maxItems": 4, "items": {"type": "string"},
            "description": "`diarized_json`: names of speakers to find, with a clip of each."},
        "known_speaker_references[]": {
            "type": "array", "maxItems": 4, "items": {"type": "string", "pattern": "^data:"},
            "description": "`diarized_json`: a data URL of audio of each known speaker alone "
                           "(`data:audio/wav;base64,...`), in the order of the names."}}
    properties = {
        "file": {"type": "string", "format": "binary", "description": "Audio or video."},
        "model": {"type": "string", "examples": ["whisper-1", "tiny.en"], "description":
                  "A model of `GET /v1/models`; `whisper-1` means the server's default."},
        **(language if task == "transcribe" else {}),
        "prompt": {"type": "string", "maxLength": 2000,
                   "description": "Text that sets style and vocabulary (`initial_prompt`)."},
        "response_format": {"type": "string", "default": "json", "enum": [
            f for f in RESPONSE_FORMATS if task == "transcribe" or f != "diarized_json"]},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1, "default": 0,
                        "description": "0 starts at 0 and raises it when decoding fails."},
        "timestamp_granularities[]": {
            "type": "array", "items": {"type": "string", "enum": list(GRANULARITIES)},
            "description": "`word` adds word timings; only with `verbose_json`."},
    }  # fmt: skip
    schema = {"type": "object", "required": ["file"], "properties": properties}
    return {"requestBody": {"required": True,
                            "content": {"multipart/form-data": {"schema": schema}}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "model": OpenAIError}


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The transcript: JSON for `json`/`verbose_json`/`diarized_json` (speakers "
                       "told apart by voice), text for the others.",
        "model": Transcription | VerboseTranscription | DiarizedTranscription,
        "content": {"text/plain": {"schema": {"type": "string"}},
                    "application/x-subrip": {"schema": {"type": "string"}},
                    "text/vtt": {"schema": {"type": "string"}}},
    },
    202: {"description": "Still running after the wait: the job, with `Location`.", "model": Job},
    400: _error("`validation_error`, `empty_file`, or a job failed with `decode_error`"),
    401: _error("`unauthorized`: no API key, or an unknown or revoked one"),
    404: _error("`job_not_found`: the job was deleted while the request waited"),
    413: _error("`payload_too_large`, `duration_exceeded`"),
    415: _error("`unsupported_media`"),
    429: _error("`rate_limited`, `too_many_active_jobs`, `quota_exceeded`, `too_many_streams` "
                "(type `rate_limit_error`, with `Retry-After`)"),
    500: _error("the job failed: `transcription_error`, `too_many_attempts`"),
    503: _error("`service_unavailable`, or the job failed with `model_unavailable`"),
}


@router.post("/transcriptions", openapi_extra=_form("transcribe"), responses=_RESPONSES)
async def create_transcription(
    request: Request, settings: SettingsDep, store: JobStoreDep, celery: QueueDep,
    key: Identity, streams: JobStreamsDep, idempotency_key: IdempotencyKey = None,
) -> Response:
    """Transcribe audio, as OpenAI's `audio.transcriptions.create` (`stream=true` too)."""
    job, form, replayed, slot = await _submit(
        request, "transcribe", settings, store, celery, key, idempotency_key, streams
    )
    if form.stream:
        headers = {JOB_HEADER: job.id}
        events = transcript_events(streams, store, job.id, slot)
        return _replayed(streams.response(events, headers), replayed)
    return _replayed(await _answer(request, job, form, settings, store), replayed)


@router.post("/translations", openapi_extra=_form("translate"), responses=_RESPONSES)
async def create_translation(
    request: Request, settings: SettingsDep, store: JobStoreDep, celery: QueueDep,
    key: Identity, idempotency_key: IdempotencyKey = None,
) -> Response:
    """Translate speech into English text, as OpenAI's `audio.translations.create`."""
    job, form, replayed, _ = await _submit(
        request, "translate", settings, store, celery, key, idempotency_key, None
    )
    return _replayed(await _answer(request, job, form, settings, store), replayed)


async def _submit(
    request: Request, task: Task, settings: Settings, store: JobStore, celery: Celery,
    caller: ApiKey | None, key: str | None, streams: JobStreams | None,
) -> tuple[Job, openai_compat.AudioRequest, bool, Slot | None]:
    """Stream the upload to disk, read the form, and queue the job (as `POST /v1/jobs`) as
    the `caller`'s; with an `Idempotency-Key` seen before, the job it created (replayed). A
    streamed answer is refused before the job exists when `streams` has no room; its slot
    comes back with the job."""
    job_id, upload = await receive_job_upload(request, settings, store, caller)
    slot = None
    with discarded_on_error(upload):
        form = openai_compat.parse_form(upload.values, task)
        await paced(request, caller, len(form.references))  # the job itself was counted
        if form.stream and streams is not None:
            slot = await streams.admit(owner_of(caller))
    digest = fingerprint(request.url.path, upload.sha256, upload.filename, upload.values)

    async def create() -> Job:
        with discarded_on_error(upload):
            await _enrol_references(form, job_id, settings, store, celery)
        return await submit(job_id, upload, settings, store, celery, caller, form.options)

    try:
        job, replayed = await once(
            settings, store, caller, key, digest, job_id, create, upload.file.discard
        )
    except BaseException:
        if streams is not None:
            await streams.release(slot)
        raise
    return job, form, replayed, slot


async def _enrol_references(form: openai_compat.AudioRequest, job_id: str, settings: Settings,
                            store: JobStore, celery: Celery) -> None:
    """The request's `known_speaker_references[]`, enrolled for this job alone (kept as long
    as its result) before the job is queued; a clip refused refuses the request."""
    media = media_store(settings)
    for index, (name, clip) in enumerate(form.references):
        location = media.upload_location(f"{job_id}-reference{index}", "clip")
        await run_sync(_store_clip, media, location, clip)
        try:
            await enrol(store, celery, job_scope(job_id), name, location,
                        ttl=settings.result_ttl_seconds, param="known_speaker_references")
        finally:
            await run_sync(media.remove, location)  # the worker removes it too, once read


def _store_clip(media: MediaStore, location: str, clip: bytes) -> None:
    receiver = media.receive(location)
    receiver.write(clip)
    receiver.finish()
    receiver.commit()


def _replayed(response: Response, replayed: bool) -> Response:
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


async def _answer(
    request: Request, job: Job, form: openai_compat.AudioRequest, settings: Settings,
    store: JobStore,
) -> Response:
    job = await _wait(request, store, job.id, settings.openai_wait_seconds)
    headers = {JOB_HEADER: job.id}
    if job.status is JobStatus.failed:
        return _failed(job, headers)
    if job.status is JobStatus.completed:
        answer = await off_loop(request, openai_answer, settings.redis_url, job.id, form)
        if answer is None:
            raise JobNotFound(f"The transcript of job {job.id} has expired.")
        return Response(answer[0], media_type=answer[1], headers=headers)
    headers["Location"] = str(request.url_for("get_job", job_id=job.id).path)
    return JSONResponse(job.model_dump(mode="json"), status_code=202, headers=headers)


async def _wait(request: Request, store: JobStore, job_id: str, seconds: float) -> Job:
    """Poll the store (off the event loop) until the job ends, `seconds` pass or the client
    goes away; the job as last seen."""
    deadline = time.monotonic() + seconds
    delay = FIRST_POLL_SECONDS
    while True:
        job = await run_sync(store.get, job_id)
        if job is None:
            raise JobNotFound(f"Job {job_id} was deleted before it finished.")
        left = deadline - time.monotonic()
        if job.status.terminal or left <= 0 or await request.is_disconnected():
            return job
        await anyio.sleep(min(delay, left))
        # Short jobs answer quickly; many long waits do not poll Redis at 5 Hz each.
        delay = min(delay * 1.5, MAX_POLL_SECONDS)


# A job that failed in the worker: the input's fault (400) or the service's.
_FAILED_STATUS = {"decode_error": 400, "model_unavailable": 503}


def _failed(job: Job, headers: dict[str, str]) -> JSONResponse:
    """OpenAI's error for a failed job, with the job's error code. The failure is recorded, so
    `x-should-retry: false` stops OpenAI's SDKs from uploading the same file again."""
    error = job.error or ErrorInfo(code="transcription_error", message="The job failed.")
    status = _FAILED_STATUS.get(error.code, 500)
    message = f"{error.message} (job {job.id})"
    return openai_error(status, error.code, message, headers=headers | {"x-should-retry": "false"})
