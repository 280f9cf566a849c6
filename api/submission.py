"""Turning a received upload into a queued job: validate, probe, record, enqueue."""

from __future__ import annotations

from contextlib import suppress

from celery import Celery
from pydantic import ValidationError

from api.deps import run_sync
from api.media import probe_duration
from api.uploads import Upload
from shared.config import Settings
from shared.errors import DurationExceeded, InvalidRequest, ServiceUnavailable
from shared.jobs import JobStore
from shared.queue import enqueue_transcription
from shared.schemas import Job, JobOptions
from shared.storage import remove_upload


def parse_options(fields: dict[str, str]) -> JobOptions:
    try:
        return JobOptions.model_validate({k: v for k, v in fields.items() if v != ""})
    except ValidationError as exc:
        parts = [f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in exc.errors()]
        raise InvalidRequest("; ".join(parts)) from None


async def submit(
    job_id: str, upload: Upload, settings: Settings, store: JobStore, celery: Celery
) -> Job:
    """Create and enqueue the job; on any refusal the upload is removed and nothing queued."""
    try:
        options = parse_options(upload.fields)
        duration = await run_sync(probe_duration, upload.path)
        if duration > settings.max_audio_seconds:
            raise DurationExceeded(
                f"The recording lasts {duration:.0f} s; the limit is "
                f"{settings.max_audio_seconds:.0f} s."
            )
        job = await run_sync(store.create, job_id, upload.filename, options, duration, upload.path)
        await _enqueue(job_id, store, celery)
    except BaseException:
        remove_upload(upload.path)
        raise
    return job


async def _enqueue(job_id: str, store: JobStore, celery: Celery) -> None:
    try:
        await run_sync(enqueue_transcription, celery, job_id)
    except Exception as exc:
        with suppress(Exception):
            await run_sync(store.delete, job_id)
        raise ServiceUnavailable("The job queue is unreachable; try again later.") from exc
