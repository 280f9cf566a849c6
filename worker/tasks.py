"""The transcription task: thin, idempotent, and the only writer of a job's progress."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from celery import Task

from shared.config import Settings, get_settings
from shared.errors import TooManyAttempts, TranscriptionError, VerbatimError
from shared.jobs import JobStore, utcnow
from shared.queue import TRANSCRIBE_TASK
from shared.schemas import Job, JobStatus
from shared.storage import remove_upload
from worker.celery_app import app
from worker.model import get_model
from worker.transcriber import transcribe as run_whisper

log = logging.getLogger(__name__)


class JobDeleted(Exception):
    """The job was deleted while it ran; its result is dropped."""


@lru_cache
def job_store() -> JobStore:
    return JobStore.from_url(get_settings().redis_url)


@app.task(
    name=TRANSCRIBE_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def transcribe(self: Task, job_id: str) -> None:
    """Transcribe one job: load → skip if finished → count the attempt → run → store."""
    settings, store = get_settings(), job_store()
    found = store.get_with_upload(job_id)
    if found is None or found[0].status.terminal:
        log.info("job %s skipped: %s", job_id, "deleted" if found is None else found[0].status)
        return
    job, upload = found
    attempts = store.begin_attempt(job_id)
    if attempts is None:
        return
    try:
        if attempts > settings.max_attempts:
            raise TooManyAttempts(f"The job was delivered {attempts} times without finishing.")
        _run(job, upload, store, settings)
    except JobDeleted:
        log.info("job %s deleted while running; result dropped", job_id)
    except VerbatimError as exc:
        log.warning("job %s failed: %s: %s", job_id, exc.code, exc.message)
        store.fail(job_id, exc, settings.result_ttl_seconds)
    except Exception:
        log.exception("job %s failed unexpectedly", job_id)
        error = TranscriptionError("Transcription failed inside the worker.")
        store.fail(job_id, error, settings.result_ttl_seconds)
    if settings.delete_upload_when_done:
        remove_upload(upload)


def _run(job: Job, upload: Path, store: JobStore, settings: Settings) -> None:
    if not store.update(job.id, status=JobStatus.processing, started_at=utcnow(), progress=0.0):
        raise JobDeleted
    model = get_model(settings)

    def on_progress(fraction: float) -> None:
        if not store.update(job.id, progress=round(fraction, 4)):
            raise JobDeleted

    transcript = run_whisper(model, upload, job.options, settings, on_progress)
    if not store.complete(job.id, transcript, settings.result_ttl_seconds):
        raise JobDeleted
    log.info("job %s completed: %d segments", job.id, len(transcript.segments))
