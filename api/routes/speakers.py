"""Named speakers (issue 21): `POST /v1/speakers` enrols a voice for the caller's key from a
reference clip, `GET` lists the key's voices, `DELETE` removes one. A worker embeds the clip
(`worker/enrolment.py`) while the request waits; only the embedding is kept.

`PATCH /v1/jobs/{id}/speakers` saves names for a finished job's speakers, as the page's rename
fields do (`shared/state/speaker_names.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from api.auth import Identity, owner_of
from api.deps import ExistingJob, JobStoreDep, QueueDep, SettingsDep, run_sync
from api.enrolment import enrol, paced
from api.errors import error_responses
from api.rendering import off_loop, saved_names
from api.submission import discarded_on_error
from api.uploads import receive_upload
from shared.errors import (
    EmptyFile,
    InvalidRequest,
    JobNotFound,
    JobNotReady,
    NoSpeech,
    PayloadTooLarge,
    RateLimited,
    ReferenceTooShort,
    ServiceUnavailable,
    TooManyVoices,
    Unauthorized,
    UnknownSpeaker,
    UnsupportedMedia,
    VoiceNotFound,
)
from shared.media.probe import probe_duration
from shared.media.storage import media_store
from shared.schemas import MAX_SPEAKERS, Job, JobStatus
from shared.state.jobs import new_job_id
from shared.state.voices import NAME, Voice, VoiceStore

router = APIRouter(prefix="/v1", tags=["speakers"])

# A saved name is one line of text in every format: no control characters, nor line or
# paragraph separators, which would break the lines of txt, srt, vtt or tsv.
MAX_NAME_LENGTH = 60
SpeakerName = Annotated[str, StringConstraints(
    strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH,
    pattern=r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$")]
SpeakerLabel = Annotated[str, StringConstraints(pattern=r"^S[1-9][0-9]?$")]
# Far above 20 names of 60 characters: a body past it is refused unread.
MAX_NAMES_BYTES = 16 * 1024


class Voices(BaseModel):
    speakers: list[Voice]


class SpeakerNames(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: dict[SpeakerLabel, SpeakerName | None] = Field(
        min_length=1, max_length=MAX_SPEAKERS, json_schema_extra={"additionalProperties": False},
        description=f"Names by label, `{{\"S1\": \"Ann\"}}`: 1 to {MAX_NAME_LENGTH} "
        "characters, no control characters; `null` clears a name (the label shows). Labels "
        "not given keep their names.")


# The body is read here rather than by FastAPI, which answers a body that is not UTF-8 with a
# 400 of its own: every bad body is then one `validation_error`.
_NAMES_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": SpeakerNames.model_json_schema()}}}}

_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["name", "file"], "properties": {
        "name": {"type": "string", "pattern": NAME.pattern,
                 "description": "The name transcripts will show for this voice."},
        "file": {"type": "string", "format": "binary",
                 "description": "A clip of the speaker alone: a few seconds of speech."}}}}}}}


@router.post("/speakers", status_code=201, openapi_extra=_FORM, responses=error_responses(
    EmptyFile, InvalidRequest, PayloadTooLarge, ReferenceTooShort, NoSpeech, TooManyVoices,
    UnsupportedMedia, ServiceUnavailable, Unauthorized, RateLimited))
async def enrol_speaker(request: Request, settings: SettingsDep, store: JobStoreDep,
                        celery: QueueDep, key: Identity) -> Voice:
    """Enrol a voice under a name for the caller's key, from a clip of that speaker alone."""
    await paced(request, key)  # before the clip is read: a refusal saves the upload
    enrolment, media = new_job_id(), media_store(settings)
    upload = await receive_upload(
        request, lambda name: media.receive(media.upload_location(enrolment, name)),
        settings.max_upload_bytes)
    with discarded_on_error(upload):
        name = _name(upload.fields.get("name", ""))
        if await run_sync(probe_duration, upload.file.source) < settings.min_reference_seconds:
            raise ReferenceTooShort(f"The clip is shorter than the "
                                    f"{settings.min_reference_seconds:.0f} s a voice needs.")
        await run_sync(upload.file.commit)
    await enrol(store, celery, owner_of(key), name, upload.file.location)
    voices = await run_sync(VoiceStore(store.redis).names, owner_of(key))
    return next(voice for voice in voices if voice.name == name)


@router.get("/speakers", responses=error_responses(Unauthorized))
async def list_speakers(store: JobStoreDep, key: Identity) -> Voices:
    """The voices the caller's key has enrolled."""
    return Voices(speakers=await run_sync(VoiceStore(store.redis).names, owner_of(key)))


@router.delete("/speakers/{name}", status_code=204,
               responses=error_responses(VoiceNotFound, Unauthorized))
async def delete_speaker(name: str, store: JobStoreDep, key: Identity) -> Response:
    """Forget one of the caller's key's voices."""
    if not await run_sync(VoiceStore(store.redis).delete, owner_of(key), name):
        raise VoiceNotFound(f"No voice named {name!r} is enrolled for this key.")
    return Response(status_code=204)


@router.patch("/jobs/{job_id}/speakers", openapi_extra=_NAMES_BODY, responses=error_responses(
    JobNotFound, JobNotReady, UnknownSpeaker, InvalidRequest, PayloadTooLarge, Unauthorized))
async def name_speakers(request: Request, job: ExistingJob, settings: SettingsDep) -> Job:
    """Save names for a finished job's speakers: every later download, the job and its
    transcript show them (labels stay; events and webhooks are not sent again)."""
    body = await _speaker_names(request)
    if job.status not in (JobStatus.completed, JobStatus.failed):
        raise JobNotReady(f"The job is {job.status}; its speakers are not known yet.")
    labels = {speaker.label for speaker in job.speakers or []}
    if unknown := [label for label in body.names if label not in labels]:
        raise UnknownSpeaker(f"This job's transcript has no speaker {', '.join(unknown)}.",
                             param="names")
    saved = await off_loop(request, saved_names, settings.redis_url, job.id, body.names)
    if saved is None:
        raise JobNotFound(f"No job with id {job.id!r}.")
    return job.model_copy(update={"speakers": saved})


async def _speaker_names(request: Request) -> SpeakerNames:
    """The request's body as `SpeakerNames`: `validation_error` naming what is wrong, or
    `payload_too_large` past MAX_NAMES_BYTES."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_NAMES_BYTES:
            raise PayloadTooLarge(f"The body is larger than {MAX_NAMES_BYTES} bytes.")
    try:
        return SpeakerNames.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidRequest("; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()),
            param="names") from None


def _name(text: str) -> str:
    name = text.strip()
    if not NAME.match(name):
        raise InvalidRequest("name: 1 to 40 letters, digits, spaces, dots, apostrophes or "
                             "hyphens, starting with a letter or digit.", param="name")
    return name
