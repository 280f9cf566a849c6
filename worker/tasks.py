"""The transcription task: thin, idempotent, and the only writer of a job's progress."""

from __future__ import annotations

import logging
import time
from contextlib import suppress

from celery import Task, signals
from celery.exceptions import Reject
from celery.worker.request import Request

from shared.config import Settings, get_settings
from shared.errors import StorageUnavailable, TooManyAttempts, TranscriptionError, VerbatimError
from shared.logs import add_fields, bind
from shared.media.opening import MediaSource
from shared.media.storage import media_store
from shared.queue import GENERATION_TASK_HEADER, REQUEST_ID_TASK_HEADER, TRANSCRIBE_TASK
from shared.schemas import Job, JobStatus, Segment
from shared.state.jobs import JobStore, utcnow
from shared.state.requeue import STALE
from worker import heartbeat, metrics
from worker.celery_app import app
from worker.diarization import transcribe as run_whisper
from worker.job_state import (
    BROKER_DOWN,
    REDIS_DOWN,
    JobDeleted,
    charged,
    deliveries,
    failed,
    job_events,
    job_store,
    log_deleted,
    requeue_held,
    wait_for_store,
)
from worker.model import get_model
from worker.pool import Stopped, check_stopping
from worker.spread import dispatch, splits
from worker.transcriber import PartlyDone

log = logging.getLogger(__name__)

@app.task(
    name=TRANSCRIBE_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def transcribe(self: Task, job_id: str) -> None:
    """Transcribe one job, its log lines naming it and the request that submitted it."""
    request_id = getattr(self.request, REQUEST_ID_TASK_HEADER, None)
    generation = int(getattr(self.request, GENERATION_TASK_HEADER, None) or 0)
    with bind(job_id=job_id, request_id=request_id), metrics.in_flight():
        try:
            _deliver(job_id, generation)
        except REDIS_DOWN as exc:
            # Redis stayed away past `redis_retry_seconds`: the job cannot be recorded either
            # way, so it goes back on the queue once Redis answers, under a new message (see
            # `requeue_held`), and this one is acknowledged. Should Redis stay away longer
            # still, the message is rejected, which reaches Redis only if the broker
            # connection it came by outlived the outage.
            log.error("Redis unreachable; the job goes back on the queue once it answers",
                      extra={"event": "requeued"})
            try:
                requeue_held(job_id, generation, app)
            except (*BROKER_DOWN, Stopped) as still:
                raise Reject(still, requeue=True) from exc
        except StorageUnavailable as exc:
            # The media store is down: not the job's fault, so it goes back on the queue once
            # the store answers, and this delivery does not count against `max_attempts` (up to
            # GIVEN_BACK_ATTEMPTS times, so that it cannot loop for ever).
            log.error("media store unreachable; the job goes back on the queue once it answers",
                      extra={"event": "requeued"})
            wait_for_store()
            with suppress(*REDIS_DOWN):
                deliveries().give_back_attempt(job_id)
            raise Reject(exc, requeue=True) from exc
        except Stopped as exc:  # a `threads` pool out of shutdown grace (`worker/pool.py`)
            log.warning("worker stopping; the job goes back on the queue",
                        extra={"event": "requeued"})
            raise Reject(exc, requeue=True) from exc


@signals.task_received.connect
def _mark_received(request: Request, **_: object) -> None:
    """In the worker's main process, as soon as it holds a job's message: note that it does,
    so the job is requeued should this worker die before starting it (`worker/reaper.py`)."""
    if request.name != TRANSCRIBE_TASK or not request.args:
        return
    job_id = str(request.args[0])
    try:
        deliveries().mark_received(job_id, heartbeat.node_id())
    except REDIS_DOWN as exc:  # the job still runs; only its requeue on a crash is lost
        log.warning("job not marked as received: %s", exc, extra={"job_id": job_id})


def _deliver(job_id: str, generation: int) -> None:
    """Load → skip if finished or stale → count the attempt → run → store."""
    settings, store = get_settings(), job_store()
    found = store.get_with_upload(job_id)
    if found is None or found[0].status.terminal:
        reason = "deleted" if found is None else found[0].status
        log.info("job skipped: %s", reason, extra={"event": "skipped"})
        return
    job, upload = found
    add_fields(key_id=store.owner(job_id))  # the worker's lines name the job's key, as the API's
    attempts = deliveries().begin_attempt(job_id, generation)
    if attempts is None:
        return
    if attempts == STALE:
        log.info("job skipped: a newer message was sent for it", extra={"event": "skipped"})
        return
    if attempts > 1:
        log.warning("job redelivered", extra={"event": "redelivered", "attempt": attempts})
        job_events().restart(job_id, attempts)
    completed = False
    try:
        if attempts > settings.max_attempts:
            raise TooManyAttempts(f"The job was delivered {attempts} times without finishing.")
        _run(job, media_store(settings).source(upload), store, settings, attempts)
        completed = True
    except (*REDIS_DOWN, Stopped, StorageUnavailable):
        raise  # not the job's fault: it is kept, with its upload, for another delivery
    except JobDeleted:
        log_deleted()
    except PartlyDone as exc:  # the key's daily audio ran out: what was decoded is kept
        failed(job_id, exc.error, store, settings, exc.transcript)
    except VerbatimError as exc:
        failed(job_id, exc, store, settings)
    except Exception:
        log.exception("unexpected error in the worker")
        failed(job_id, TranscriptionError("Transcription failed inside the worker."), store,
                 settings)
    # A completed job created with `keep_audio` keeps its upload for the page's player; the
    # job's deletion or the upload sweep after its expiry removes it.
    kept = completed and store.kept_upload(job_id) is not None
    if settings.delete_upload_when_done and not kept:
        try:
            media_store(settings).remove(upload)
        except StorageUnavailable as exc:  # the sweep removes it once the job record expires
            log.warning("upload left for the sweep: %s", exc.message)


def _run(job: Job, upload: MediaSource, store: JobStore, settings: Settings, attempt: int) -> None:
    began = utcnow()
    processing = {"status": JobStatus.processing, "started_at": began, "progress": 0.0}
    # `worker` names this process, so that its job is requeued if the whole worker dies.
    if not store.update(job.id, **processing, worker=heartbeat.worker_id()):
        raise JobDeleted
    if attempt == 1:  # a redelivery's wait is the lost attempt's, not the queue's
        metrics.job_started(store.priority(job.id), job.created_at, began)
    events = job_events()
    events.status(job.id, JobStatus.processing, attempt)
    log.info("job processing", extra={"event": "processing"})
    model = get_model(settings, job.options.model)
    # The windows complete the job, the last one to finish.
    if splits(job, settings):
        dispatch(job, upload, model, settings, attempt)
        return
    started = time.perf_counter()

    def on_progress(fraction: float) -> None:
        check_stopping()
        if not store.update(job.id, progress=round(fraction, 4)):
            raise JobDeleted
        events.progress(job.id, fraction)

    def on_segment(segment: Segment) -> None:
        events.segment(job.id, segment)

    transcript = run_whisper(model, upload, job.options, settings, on_progress,
                             job.audio_duration, on_segment, charged(job.id),
                             owner=store.owner(job.id), job_id=job.id)
    seconds = time.perf_counter() - started
    if not store.complete(job.id, transcript, settings.result_ttl_seconds):
        raise JobDeleted
    events.completed(job.id, transcript)
    metrics.job_completed(seconds, transcript.duration)
    heartbeat.job_done()
    log.info("job completed", extra={
        "event": "completed", "duration_seconds": round(seconds, 3),
        "audio_seconds": round(transcript.duration, 3),
        "rtf": round(seconds / transcript.duration, 4) if transcript.duration else None,
        "segments": len(transcript.segments),
    })
