"""One attempt at a webhook event: check the URL again, sign, POST, record, schedule the next.

Attempts are taken from the schedule in Redis (`shared/state/webhooks.py`) by the I/O worker's
webhook threads (`courier/sender.py`), never by its fetch threads.

2xx is delivered; 410 Gone stops (the receiver says it will never want it); anything else,
no answer or a timeout is retried after `retry_delay` until `webhook_attempts` are spent.
Redirects are not followed: a receiver's URL is the one it registered.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from courier import metrics
from shared import outbound
from shared.errors import VerbatimError
from shared.schemas import WebhookState
from shared.state.webhooks import Event, Events, retry_delay, sign, signing_secret

log = logging.getLogger(__name__)


def deliver(events: Events, job_id: str, attempt: int, holder: str) -> None:
    """Make attempt `attempt` of the job's event as `holder` (this I/O worker)."""
    event = events.load(job_id)
    if event is None or not events.begin_attempt(job_id, attempt, holder):
        return  # expired, finished, or this attempt was already begun (taken twice)
    state = WebhookState(attempts=attempt)
    outcome = _post(events, event, state)
    metrics.WEBHOOK_ATTEMPTS.labels(outcome).inc()
    log.info("webhook attempt %d: %s", attempt, outcome, extra={
        "event": "webhook", "attempt": attempt, "status": state.last_status})
    if outcome == "failed" and attempt < events.settings.webhook_attempts:
        events.record(job_id, state)
        events.retry_in(job_id, retry_delay(attempt, events.settings))
        return
    events.record(job_id, state)
    events.finish(job_id)
    metrics.WEBHOOK_EVENTS.labels("exhausted" if outcome == "failed" else outcome).inc()


def _post(events: Events, event: Event, state: WebhookState) -> str:
    settings = events.settings
    secret = signing_secret(events.store.redis, settings, event.owner)
    allow = outbound.Allowlist.parse(settings.fetch_allow)
    timeout = settings.webhook_timeout_seconds
    http = outbound.client(min(timeout, settings.fetch_connect_timeout_seconds), timeout)
    try:
        with outbound.request(
            http, "POST", event.url, allow, headers=sign(secret, event, datetime.now(UTC)),
            content=event.body.encode(), max_redirects=0,
        ) as response:
            state.last_status = response.status_code
    except VerbatimError as exc:
        state.last_error = exc.message
        return "forbidden" if exc.code == "url_forbidden" else "failed"
    if 200 <= response.status_code < 300:
        state.delivered_at = datetime.now(UTC)
        return "delivered"
    state.last_error = f"The receiver answered HTTP {response.status_code}."
    return "gone" if response.status_code == 410 else "failed"
