"""Jobs whose worker is gone go back on the queue, long before the broker would redeliver them.

When a pool process dies alone, Celery requeues its job at once (`reject_on_worker_lost`).
When the whole worker dies (killed, out of memory, its host lost), its message stays
unacknowledged in Redis until the visibility timeout, hours later. So every live worker
process, after each heartbeat, looks at the jobs marked processing: one whose worker has not
beaten within `heartbeat_timeout_seconds`, and that started longer ago than that (a job begun
just before its worker's first beat is left alone), is put back to queued and sent again. The
stale message, when Redis finally hands it out, finds the job finished and is skipped.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Celery

from shared.jobs import JobStore, utcnow
from shared.queue import REQUEUED_PRIORITY, enqueue_transcription
from shared.schemas import JobStatus

log = logging.getLogger(__name__)


def requeue_orphans(
    store: JobStore, live: set[str], celery: Celery, timeout_seconds: float
) -> list[str]:
    """Requeue the jobs running on workers not in `live`; returns their ids."""
    cutoff = utcnow() - timedelta(seconds=timeout_seconds)
    requeued = []
    for job_id, worker, started in store.running():
        if worker in live or started > cutoff or not store.requeue_if_run_by(job_id, worker):
            continue
        try:
            enqueue_transcription(celery, job_id, priority=REQUEUED_PRIORITY)
        except Exception:
            # Marked queued with no message would strand it: mark it as before, so that the
            # next check tries again.
            store.update(job_id, status=JobStatus.processing, worker=worker)
            raise
        log.warning("job requeued: the worker running it is gone",
                    extra={"event": "requeued", "job_id": job_id, "gone_worker": worker})
        requeued.append(job_id)
    return requeued
