"""A media URL's job: download it as the job's upload, probe it, queue it for transcription.

The same limits as an upload hold while downloading: the byte cap (`max_upload_bytes`, also
on a declared Content-Length and on decompressed bytes), then the duration limit on the probe.
Every failure is the job's error (`fetch_failed`, `url_forbidden`, `payload_too_large`,
`unsupported_media`, `duration_exceeded`) and announces its webhook like any failed job.

A fetch first claims the job (`courier/shares.py`): a claim refused because the job's key
holds its share of fetches sends the fetch again after `WAIT_SECONDS`, freeing the thread for
another key's URL. Each claim counts an attempt; a fetch begun more than `max_attempts` times
(its I/O worker killed each time: `shared/state/requeue.py` requeues it) fails the job with
`too_many_attempts`.
"""

from __future__ import annotations

import logging
import time

import httpx
from celery import Celery

from courier import metrics
from courier.shares import BUSY, GONE, STALE, FetchClaims
from shared import outbound
from shared.config import Settings
from shared.errors import (
    DurationExceeded,
    FetchFailed,
    PayloadTooLarge,
    TooManyAttempts,
    VerbatimError,
)
from shared.media.probe import probe_duration
from shared.media.storage import Receiver, media_store
from shared.queue import enqueue_transcription
from shared.schemas import JobStatus
from shared.state.allowance import AudioAllowance
from shared.state.requeue import IO_RECEIVED_KEY
from shared.state.webhooks import FETCH_TASK, IO_QUEUE, Events

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# How long a fetch refused for its key's share waits before it asks again.
WAIT_SECONDS = 1.0


def fetch(events: Events, claims: FetchClaims, job_id: str, generation: int, holder: str,
          celery: Celery) -> None:
    """Claim the job's fetch as `holder` (this I/O worker) and make it."""
    found = events.store.get_with_upload(job_id)
    if found is None or found[0].status is not JobStatus.fetching or not found[0].source_url:
        events.store.redis.hdel(IO_RECEIVED_KEY, job_id)  # deleted or done: no requeue
        return
    attempt = claims.claim(job_id, generation, holder)
    if attempt == BUSY:
        celery.send_task(FETCH_TASK, args=[job_id, generation], queue=IO_QUEUE,
                         countdown=WAIT_SECONDS)
        return
    if attempt in (GONE, STALE):
        return
    try:
        _fetch(events, job_id, found[1], attempt, generation, celery)
    finally:
        claims.release(job_id, holder)


def _fetch(events: Events, job_id: str, location: str, attempt: int, generation: int,
           celery: Celery) -> None:
    store, settings = events.store, events.settings
    upload = media_store(settings).resume(location)
    if upload is None:  # a redelivered message, and an earlier attempt is still downloading
        return
    try:
        if attempt > settings.max_attempts:
            raise TooManyAttempts(f"The media URL's fetch was begun {attempt} times without "
                                  "finishing.")
        job = store.get(job_id)
        if job is None:
            return
        if attempt > 1:
            log.warning("fetch redelivered", extra={"event": "redelivered", "attempt": attempt})
        size = download(job.source_url or "", upload, settings)
        upload.finish()
        duration = probe_duration(upload.source)
        if duration > settings.max_audio_seconds:
            raise DurationExceeded(f"The recording lasts {duration:.0f} s; the limit is "
                                   f"{settings.max_audio_seconds:.0f} s.")
        AudioAllowance(store.redis).reserve(job_id, duration)  # the key's day, as an upload's
        if not store.update(job_id, status=JobStatus.queued, audio_duration=duration):
            upload.discard()
            return
        upload.commit()
        # Under the fetch's generation: a fetch requeued by the reaper raised the job's.
        model = job.options.model or settings.default_model
        enqueue_transcription(celery, job_id, model, priority=store.priority(job_id),
                              generation=generation)
    except VerbatimError as exc:
        upload.discard()
        metrics.FETCHES.labels(exc.code).inc()
        log.warning("fetch failed: %s", exc.message, extra={"event": "failed", "code": exc.code})
        if store.fail(job_id, exc, settings.result_ttl_seconds):
            events.announce(job_id)
        return
    metrics.FETCHES.labels("ok").inc()
    log.info("media fetched", extra={"event": "fetched", "upload_bytes": size})


def download(url: str, upload: Receiver, settings: Settings) -> int:
    """Stream the URL's body into `upload`; the bytes written."""
    allow = outbound.Allowlist.parse(settings.fetch_allow)
    deadline = time.monotonic() + settings.fetch_total_seconds
    limit = settings.max_upload_bytes
    size = 0
    http = outbound.client(settings.fetch_connect_timeout_seconds,
                           settings.fetch_read_timeout_seconds)
    with outbound.request(http, "GET", url, allow) as response:
        if response.status_code != 200:
            raise FetchFailed(f"The media URL answered HTTP {response.status_code}.")
        if int(response.headers.get("content-length") or 0) > limit:
            raise PayloadTooLarge(f"The media exceeds the limit of {limit} bytes.")
        try:
            for chunk in response.iter_bytes(CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"The media exceeds the limit of {limit} bytes.")
                if time.monotonic() > deadline:
                    raise FetchFailed(f"The download took over {settings.fetch_total_seconds} s.")
                upload.write(chunk)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"The download broke off: {outbound.network_reason(exc)}.") from None
    if size == 0:
        raise FetchFailed("The media URL answered an empty body.")
    return size
