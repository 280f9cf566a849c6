"""Jobs whose worker is gone go back on the queue, long before the broker would redeliver them.

When a pool process dies alone, Celery requeues its job at once (`reject_on_worker_lost`).
When the whole worker dies (killed, out of memory, its host lost), the messages it held stay
unacknowledged in Redis until the visibility timeout, hours later: the job it was running, and
any it had received but not started. So every live worker process, after each heartbeat, looks
at both (`shared/state/requeue.py`): a job processing on a process that has not beaten within
`heartbeat_timeout_seconds`, and that started longer ago than that (a job begun just before its
worker's first beat is left alone), and a job received by a worker none of whose processes beat
any more, received longer ago than that. Each is put back on the queue ahead of every job that
never ran, under a new generation, so the old message is skipped when Redis hands it out.

A live session is never requeued (its audio went by): one whose live worker stopped keeping its
`alive` key is ended as lost (`end_lost_sessions`), its job completed with the segments
confirmed so far, freeing its key's active slot, whether or not a client is still connected.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Celery

from shared.config import Settings
from shared.priorities import REQUEUED_PRIORITY
from shared.queue import enqueue_transcription, window_signature
from shared.state.job_events import JobEvents
from shared.state.jobs import JobStore, utcnow
from shared.state.live_sessions import end_lost, lost_sessions
from shared.state.requeue import Deliveries
from shared.state.requeue import requeue_orphans as shared_requeue_orphans
from shared.state.spread_plans import Spreads
from shared.state.webhooks import Events

log = logging.getLogger(__name__)


def model_of(store: JobStore, job_id: str, default_model: str) -> str:
    """The model a job runs on, whose queue it goes back to (a job recorded before models
    were chosen per job: the default)."""
    job = store.get(job_id)
    return job.options.model if job and job.options.model else default_model


def requeue_orphans(
    deliveries: Deliveries, live: set[str], live_nodes: set[str], celery: Celery,
    timeout_seconds: float, default_model: str,
) -> list[str]:
    """Requeue the jobs held by processes not in `live` and nodes not in `live_nodes`, each
    on its model's queue; returns their ids."""

    def send(job_id: str, generation: int) -> None:
        model = model_of(deliveries.store, job_id, default_model)
        enqueue_transcription(celery, job_id, model, priority=REQUEUED_PRIORITY,
                              generation=generation)

    return shared_requeue_orphans(deliveries, live, live_nodes, send, timeout_seconds)


def requeue_windows(
    spreads: Spreads, live: set[str], celery: Celery, timeout_seconds: float,
    default_model: str,
) -> list[tuple[str, int]]:
    """Requeue the windows of spread jobs (`worker/spread.py`) being decoded by processes not
    in `live`, or held by workers whose main process (node) is not in it; returns their (job
    id, window). A window is idempotent, so the old message, when the broker hands it out again
    after the visibility timeout, finds it done or redoes it."""
    cutoff = utcnow() - timedelta(seconds=timeout_seconds)
    requeued = []
    for job_id, plan, index, worker, started, mark in spreads.running():
        if worker in live or started > cutoff or not spreads.take_running(job_id, index, mark):
            continue
        model = model_of(spreads.store, job_id, default_model)
        window_signature(celery, job_id, model, plan, index, REQUEUED_PRIORITY).apply_async()
        log.warning("window requeued: the worker decoding it is gone", extra={
            "event": "requeued", "job_id": job_id, "window": index, "gone_worker": worker})
        requeued.append((job_id, index))
    return requeued


def end_lost_sessions(store: JobStore, settings: Settings) -> list[str]:
    """End the live sessions whose worker is gone (`shared/state/live_sessions.py`); returns
    their job ids."""
    ended = []
    for session in lost_sessions(store.redis):
        if end_lost(store, session, settings.result_ttl_seconds,
                    JobEvents.on(store.redis, settings)):
            # The event is scheduled here: `worker/webhooks.py` builds on the tasks, which need
            # this module (through the heartbeat).
            Events(store, settings).announce(session.job_id)
            log.warning("live session ended: its live worker is gone", extra={
                "event": "live_worker_lost", "job_id": session.job_id,
                "session_id": session.id})
            ended.append(session.job_id)
    return ended

