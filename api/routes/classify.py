"""`POST /v1/audio/classify` (issue 25): the sounds of a short clip, for callers that route
audio before transcribing it. A worker classifies the clip (`api/classification.py`) while
the request waits; nothing is kept. Errors come in OpenAI's shape, as everywhere under
`/v1/audio/` (`api/errors.py`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.auth import Identity
from api.classification import classify
from api.deps import JobStoreDep, QueueDep, SettingsDep, run_sync
from api.openai_compat import OpenAIError
from api.submission import admit, discarded_on_error
from api.uploads import receive_upload
from shared.errors import (
    ClipTooLong,
    EmptyFile,
    InvalidRequest,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    ServiceUnavailable,
    TooManyActiveJobs,
    Unauthorized,
    UnsupportedMedia,
    VerbatimError,
)
from shared.media.probe import probe_duration
from shared.media.storage import media_store
from shared.schemas import ClipLabels
from shared.state.jobs import new_job_id

router = APIRouter(prefix="/v1", tags=["sounds"])

_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "A short clip: at most `VERBATIM_MAX_CLASSIFY_SECONDS` "
                                "(30 s by default)."}}}}}}}




def _errors(*errors: type[VerbatimError]) -> dict[int | str, dict[str, Any]]:
    """The route's errors for OpenAPI, in OpenAI's shape (whose 400 is the envelope's 422)."""
    codes: dict[int | str, list[str]] = {}
    for error in errors:
        codes.setdefault(400 if error.status_code == 422 else error.status_code, []).append(
            f"`{error.code}`")
    return {status: {"description": " or ".join(names), "model": OpenAIError}
            for status, names in codes.items()}


@router.post("/audio/classify", openapi_extra=_FORM, responses=_errors(
    EmptyFile, InvalidRequest, PayloadTooLarge, ClipTooLong, UnsupportedMedia, RateLimited,
    TooManyActiveJobs, QuotaExceeded, ServiceUnavailable, Unauthorized))
async def classify_clip(request: Request, settings: SettingsDep, store: JobStoreDep,
                        celery: QueueDep, key: Identity) -> ClipLabels:
    """Label a short clip: its best AudioSet classes and the sounds heard in it."""
    await admit(request, store, key)
    clip, media = new_job_id(), media_store(settings)
    upload = await receive_upload(
        request, lambda name: media.receive(media.upload_location(clip, name)),
        settings.max_upload_bytes)
    with discarded_on_error(upload):
        if await run_sync(probe_duration, upload.file.source) > settings.max_classify_seconds:
            raise ClipTooLong(f"A clip may last {settings.max_classify_seconds:g} s; send a "
                              "longer recording as a job with sounds=true.", param="file")
        await run_sync(upload.file.commit)
    return await classify(store, celery, upload.file.location, settings.max_classify_seconds)
