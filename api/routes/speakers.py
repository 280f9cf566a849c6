"""Named speakers (issue 21): `POST /v1/speakers` enrols a voice for the caller's key from a
reference clip, `GET` lists the key's voices, `DELETE` removes one. A worker embeds the clip
(`worker/enrolment.py`) while the request waits; only the embedding is kept."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from api.auth import Identity, owner_of
from api.deps import JobStoreDep, QueueDep, SettingsDep, run_sync
from api.enrolment import enrol
from api.errors import error_responses
from api.submission import discarded_on_error
from api.uploads import receive_upload
from shared.errors import (
    EmptyFile,
    InvalidRequest,
    NoSpeech,
    PayloadTooLarge,
    ReferenceTooShort,
    ServiceUnavailable,
    TooManyVoices,
    Unauthorized,
    UnsupportedMedia,
    VoiceNotFound,
)
from shared.media.probe import probe_duration
from shared.media.storage import media_store
from shared.state.jobs import new_job_id
from shared.state.voices import NAME, Voice, VoiceStore

router = APIRouter(prefix="/v1", tags=["speakers"])

class Voices(BaseModel):
    speakers: list[Voice]


_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["name", "file"], "properties": {
        "name": {"type": "string", "pattern": NAME.pattern,
                 "description": "The name transcripts will show for this voice."},
        "file": {"type": "string", "format": "binary",
                 "description": "A clip of the speaker alone: a few seconds of speech."}}}}}}}


@router.post("/speakers", status_code=201, openapi_extra=_FORM, responses=error_responses(
    EmptyFile, InvalidRequest, PayloadTooLarge, ReferenceTooShort, NoSpeech, TooManyVoices,
    UnsupportedMedia, ServiceUnavailable, Unauthorized))
async def enrol_speaker(request: Request, settings: SettingsDep, store: JobStoreDep,
                        celery: QueueDep, key: Identity) -> Voice:
    """Enrol a voice under a name for the caller's key, from a clip of that speaker alone."""
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


def _name(text: str) -> str:
    name = text.strip()
    if not NAME.match(name):
        raise InvalidRequest("name: 1 to 40 letters, digits, spaces, dots, apostrophes or "
                             "hyphens, starting with a letter or digit.", param="name")
    return name
