"""Turning a received upload into a queued job: validate, probe, record, enqueue."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from celery import Celery
from pydantic import ValidationError
from starlette.requests import Request

from api import metrics
from api.deps import run_sync
from api.model_choice import choose_model
from api.quotas import Quotas
from api.uploads import Upload, receive_upload
from shared.config import Settings
from shared.errors import (
    DurationExceeded,
    InvalidRequest,
    InvalidSpeakers,
    NotMultichannel,
    ServiceUnavailable,
    UnknownSpeaker,
    VerbatimError,
)
from shared.logs import add_fields, bound_fields
from shared.media.opening import MediaSource
from shared.media.probe import probe_channels, probe_duration
from shared.media.storage import media_store
from shared.queue import enqueue_transcription
from shared.schemas import SPEAKERS_ERROR, Job, JobOptions, JobStatus
from shared.state.job_events import JobEvents
from shared.state.jobs import JobStore, new_job_id
from shared.state.keys import ApiKey
from shared.state.listing import prune_list
from shared.state.voices import VoiceStore, job_scope, known_names

log = logging.getLogger(__name__)


def parse_options(fields: dict[str, Any]) -> JobOptions:
    try:
        return JobOptions.model_validate({k: v for k, v in fields.items() if v != ""})
    except ValidationError as exc:
        raise options_error(exc) from None


def options_error(exc: ValidationError) -> VerbatimError:
    """The error answering bad job options: `invalid_speakers` for speaker options, else
    `validation_error`, naming each field at fault."""
    parts = [f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in exc.errors()]
    speakers = any(e["type"] == SPEAKERS_ERROR for e in exc.errors())
    return (InvalidSpeakers if speakers else InvalidRequest)("; ".join(parts))


async def check_known_speakers(store: JobStore, options: JobOptions, owner: str | None,
                               job_id: str) -> None:
    """Refuse `known_speakers` naming a voice the caller's key has not enrolled (nor the
    request given for this job)."""
    if options.known_speakers is None or (names := known_names(options.known_speakers)) is None:
        return
    voices = VoiceStore(store.redis)
    enrolled = {voice.name for scope in (owner, job_scope(job_id))
                for voice in await run_sync(voices.names, scope)}
    if missing := [name for name in names if name not in enrolled]:
        raise UnknownSpeaker(f"No voice named {', '.join(map(repr, missing))} is enrolled for "
                             "this key.", param="known_speakers")


def check_channels(source: MediaSource, options: JobOptions, settings: Settings) -> None:
    """Refuse `diarize=channels` (the job's or the server's default) on a one-channel
    recording, before a job exists."""
    if (options.diarize or settings.diarize) == "channels":
        if probe_channels(source) < 2:
            raise NotMultichannel("diarize=channels needs a recording with a channel per "
                                  "speaker; this one has one channel.", param="diarize")


async def receive_job_upload(
    request: Request, settings: Settings, store: JobStore, key: ApiKey | None
) -> tuple[str, Upload]:
    """A new job id and the request's upload, streamed to that job's file, once the caller's
    key is within its rate and active-job limits."""
    await admit(request, store, key)
    job_id = new_job_id()
    media = media_store(settings)
    upload = await receive_upload(
        request, lambda name: media.receive(media.upload_location(job_id, name)),
        settings.max_upload_bytes,
    )
    return job_id, upload


async def admit(request: Request, store: JobStore, key: ApiKey | None) -> None:
    """Refuse a request before its upload is read (not after a long one) when Redis is down
    or the caller's key is over its rate or active-job limit."""
    quotas: Quotas = request.app.state.quotas
    await run_sync(_admit, store, quotas, key)


def _admit(store: JobStore, quotas: Quotas, key: ApiKey | None) -> None:
    store.ping()
    quotas.admit(key)


@contextmanager
def discarded_on_error(upload: Upload) -> Iterator[None]:
    """Remove the upload when the block raises: a refused upload is never kept."""
    try:
        yield
    except BaseException:
        upload.file.discard()
        raise


async def submit(
    job_id: str, upload: Upload, settings: Settings, store: JobStore, celery: Celery,
    key: ApiKey | None, options: JobOptions | None = None, extra: dict[str, Any] | None = None,
) -> Job:
    """Create and enqueue the job as the caller `key`'s (None: auth is off); on any refusal
    the upload is removed and nothing queued.

    `options` default to the upload's form fields read as `JobOptions`; `extra` are more
    fields of the record (`shared/extras.py`)."""
    with discarded_on_error(upload):
        if options is None:
            options = parse_options(upload.fields)
        options = await choose_model(options, settings, store.redis)
        await check_known_speakers(store, options, key.id if key else None, job_id)
        request_id = bound_fields().get("request_id")  # for the worker's lines on this job
        job, priority, duration = await run_sync(
            _record, job_id, upload, settings, store, celery, key, options, extra, request_id)
    owner = key.id if key else None
    await run_sync(prune_list, store, owner)
    metrics.job_submitted(upload.size)
    add_fields(job_id=job_id)  # the request's own log line names the job it created
    log.info("job queued", extra={"event": "queued", "audio_seconds": round(duration, 3),
                                  "upload_bytes": upload.size, "priority": priority})
    return job


def _record(
    job_id: str, upload: Upload, settings: Settings, store: JobStore, celery: Celery,
    key: ApiKey | None, options: JobOptions, extra: dict[str, Any] | None, request_id: str | None,
) -> tuple[Job, int, float]:
    """Probe, record the job, give the upload its name, publish its first event and enqueue it,
    in one trip to a worker thread: each trip costs the event loop a hand-off to a thread and
    back, a large share of the API's CPU per job as separate trips (bench/README.md)."""
    duration = probe_duration(upload.file.source)
    check_channels(upload.file.source, options, settings)
    if duration > settings.max_audio_seconds:
        raise DurationExceeded(
            f"The recording lasts {duration:.0f} s; the limit is "
            f"{settings.max_audio_seconds:.0f} s."
        )
    job, priority = store.create(
        job_id, upload.filename, options, duration, upload.file.location,
        key.id if key else None, key.limits if key else None, extra,
        keep_upload=settings.keep_audio,
    )
    upload.file.commit()  # now the file has its job, and its job's name
    JobEvents.on(store.redis, settings).status(job_id, JobStatus.queued)
    _enqueue(job_id, options.model or settings.default_model, store, celery, priority,
             request_id)
    return job, priority, duration


def _enqueue(
    job_id: str, model: str, store: JobStore, celery: Celery, priority: int,
    request_id: str | None,
) -> None:
    try:
        enqueue_transcription(celery, job_id, model, request_id, priority)
    except Exception as exc:
        with suppress(Exception):
            store.delete(job_id)
        raise ServiceUnavailable("The job queue is unreachable; try again later.") from exc
