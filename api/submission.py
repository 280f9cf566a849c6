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
from shared.errors import DurationExceeded, InvalidRequest, ServiceUnavailable
from shared.logs import add_fields, bound_fields
from shared.media.probe import probe_duration
from shared.media.storage import upload_path
from shared.queue import enqueue_transcription
from shared.schemas import Job, JobOptions, JobStatus
from shared.state.job_events import JobEvents
from shared.state.jobs import JobStore, new_job_id
from shared.state.keys import ApiKey
from shared.state.listing import prune_list

log = logging.getLogger(__name__)


def parse_options(fields: dict[str, Any]) -> JobOptions:
    try:
        return JobOptions.model_validate({k: v for k, v in fields.items() if v != ""})
    except ValidationError as exc:
        parts = [f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in exc.errors()]
        raise InvalidRequest("; ".join(parts)) from None


async def receive_job_upload(
    request: Request, settings: Settings, store: JobStore, key: ApiKey | None
) -> tuple[str, Upload]:
    """A new job id and the request's upload, streamed to that job's file, once the caller's
    key is within its rate and active-job limits."""
    await admit(request, store, key)
    job_id = new_job_id()
    upload = await receive_upload(
        request, lambda name: upload_path(settings.upload_dir, job_id, name),
        settings.max_upload_bytes,
    )
    return job_id, upload


async def admit(request: Request, store: JobStore, key: ApiKey | None) -> None:
    """Refuse a request before its upload is read (not after a long one) when Redis is down
    or the caller's key is over its rate or active-job limit."""
    await run_sync(store.ping)
    quotas: Quotas = request.app.state.quotas
    await run_sync(quotas.admit, key)


@contextmanager
def discarded_on_error(upload: Upload) -> Iterator[None]:
    """Remove the upload when the block raises: a refused upload never stays on disk."""
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
        duration = await run_sync(probe_duration, upload.path)
        if duration > settings.max_audio_seconds:
            raise DurationExceeded(
                f"The recording lasts {duration:.0f} s; the limit is "
                f"{settings.max_audio_seconds:.0f} s."
            )
        owner = key.id if key else None
        job, priority = await run_sync(
            store.create, job_id, upload.filename, options, duration, upload.file.final,
            owner, key.limits if key else None, extra, keep_upload=settings.keep_audio,
        )
        await run_sync(upload.file.commit)  # now the file has its job, and its job's name
        await run_sync(JobEvents.on(store.redis, settings).status, job_id, JobStatus.queued)
        await _enqueue(job_id, options.model or settings.default_model, store, celery, priority)
    await run_sync(prune_list, store, owner)
    metrics.job_submitted(upload.size)
    add_fields(job_id=job_id)  # the request's own log line names the job it created
    log.info("job queued", extra={"event": "queued", "audio_seconds": round(duration, 3),
                                  "upload_bytes": upload.size, "priority": priority})
    return job


async def _enqueue(
    job_id: str, model: str, store: JobStore, celery: Celery, priority: int
) -> None:
    try:
        request_id = bound_fields().get("request_id")  # for the worker's lines on this job
        await run_sync(enqueue_transcription, celery, job_id, model, request_id, priority)
    except Exception as exc:
        with suppress(Exception):
            await run_sync(store.delete, job_id)
        raise ServiceUnavailable("The job queue is unreachable; try again later.") from exc
