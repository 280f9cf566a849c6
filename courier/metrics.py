"""The I/O worker's Prometheus metrics, served from its one process (a thread pool)."""

from __future__ import annotations

import logging

from prometheus_client import Counter, start_http_server

log = logging.getLogger(__name__)

WEBHOOK_ATTEMPTS = Counter(
    "verbatim_webhook_attempts_total",
    "Webhook delivery attempts, by outcome: delivered (2xx), gone (410), failed (anything "
    "else or no answer), forbidden (the URL now resolves to a refused address).",
    ["outcome"],
)
WEBHOOK_EVENTS = Counter(
    "verbatim_webhook_events_total",
    "Webhook events finished, by outcome: delivered, gone, forbidden, exhausted (every "
    "attempt failed).",
    ["outcome"],
)
FETCHES = Counter(
    "verbatim_url_fetches_total",
    "Media URL downloads, by outcome: ok or the job's error code.", ["outcome"],
)
for outcome in ("delivered", "gone", "failed", "forbidden"):
    WEBHOOK_ATTEMPTS.labels(outcome)
for outcome in ("delivered", "gone", "forbidden", "exhausted"):
    WEBHOOK_EVENTS.labels(outcome)


def start_server(port: int) -> None:
    if not port:
        return
    try:
        start_http_server(port)
    except OSError as exc:  # the deliveries matter more than their metrics
        log.warning("I/O worker metrics not served on port %d: %s", port, exc)
        return
    log.info("I/O worker metrics on port %d", port)
