"""Webhook events: which jobs announce themselves, the signed event, and its retry schedule.

When a job with a `webhook_url` ends, `announce` claims its one event (a Lua compare-and-set,
so that a redelivered task or a second caller sends nothing more), keeps the event's body and
id under `verbatim:webhook:{job_id}` for the whole retry window (the job record itself may
expire sooner, by its `retention_seconds`), and queues the delivery on the I/O queue. The I/O
worker (`courier/`) signs each attempt per Standard Webhooks (https://www.standardwebhooks.com):
the same `webhook-id` on every attempt, a fresh `webhook-timestamp`.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery
from standardwebhooks.webhooks import Webhook

from shared.config import Settings
from shared.schemas import Job, JobStatus, WebhookState
from shared.state.job_events import transcript_links
from shared.state.jobs import JobStore
from shared.state.keys import KeyStore, new_webhook_secret

IO_QUEUE = "verbatim.io"
DELIVER_TASK = "verbatim.deliver_webhook"
FETCH_TASK = "verbatim.fetch_media"
SECRET_KEY = "verbatim:webhook-secret"
EVENTS = {JobStatus.completed: "job.completed", JobStatus.failed: "job.failed"}
# The event outlives the retry window by this much, for the last attempt's own time.
EVENT_MARGIN_SECONDS = 3600

# KEYS: job. ARGV: event id. Claims the job's event: 1 only for a finished job with a webhook
# whose event was not claimed before.
_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= '"completed"' and status ~= '"failed"' then return 0 end
if redis.call('HEXISTS', KEYS[1], 'webhook_url') == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'webhook_event', ARGV[1]) == 0 then return 0 end
return 1
"""

# KEYS: event. ARGV: the attempt about to start. Counts it only if it is the next one, so that
# a message Redis hands out twice (visibility timeout) does not send twice. Returns 1 or 0.
_BEGIN_ATTEMPT = """
local done = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '-1')
if done ~= tonumber(ARGV[1]) - 1 then return 0 end
redis.call('HSET', KEYS[1], 'attempts', ARGV[1])
return 1
"""


def event_key(job_id: str) -> str:
    return f"verbatim:webhook:{job_id}"


def signing_secret(client: redis.Redis, settings: Settings, owner: str | None = None) -> str:
    """The `whsec_` secret that signs `owner`'s events: the API key's own (`verbatim keys
    create` shows it), or for jobs made while auth is off (`owner` None) the deployment's:
    `VERBATIM_WEBHOOK_SECRET`, else one generated once and kept in Redis."""
    if owner:
        return KeyStore(client).webhook_secret(owner)
    if settings.webhook_secret:
        return settings.webhook_secret
    fresh = new_webhook_secret()
    client.set(SECRET_KEY, fresh, nx=True)
    stored = client.get(SECRET_KEY)
    return stored.decode() if isinstance(stored, bytes) else fresh


def job_links(job_id: str) -> dict[str, str]:
    """The job's own path and its transcript in every format."""
    return {"self": f"/v1/jobs/{job_id}", **transcript_links(job_id)}


def event_body(job: Job, event_id: str) -> dict[str, Any]:
    """The event as sent: its type, when it happened, and the job (never the transcript)."""
    record = job.model_dump(mode="json", exclude={"webhook"})
    return {
        "id": event_id,
        "type": EVENTS[job.status],
        "timestamp": datetime.now(UTC).isoformat(),
        "data": record | {"links": job_links(job.id)},
    }


@dataclass(frozen=True)
class Event:
    job_id: str
    event_id: str
    url: str
    body: str
    owner: str | None = None


class Events:
    """Claimed webhook events and their attempts, in Redis."""

    def __init__(self, store: JobStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._claim = store.redis.register_script(_CLAIM)
        self._begin = store.redis.register_script(_BEGIN_ATTEMPT)

    def announce(self, job_id: str, celery: Celery) -> bool:
        """Queue the job's event if it has a webhook, has ended and was not announced."""
        event_id = f"msg_{uuid.uuid4().hex}"
        if not self._claim(keys=[self.store.job_key(job_id)], args=[json.dumps(event_id)]):
            return False
        job = self.store.get(job_id)
        if job is None or job.webhook_url is None:
            return False
        body = json.dumps(event_body(job, event_id), separators=(",", ":"))
        ttl = int(self.settings.webhook_window_seconds) + EVENT_MARGIN_SECONDS
        key = event_key(job_id)
        with self.store.redis.pipeline() as pipe:
            pipe.hset(key, mapping={"id": event_id, "url": job.webhook_url, "body": body,
                                    "attempts": 0, "owner": self.store.owner(job_id) or ""})
            pipe.expire(key, ttl)
            pipe.execute()
        self.store.update(job_id, webhook=WebhookState())
        celery.send_task(DELIVER_TASK, args=[job_id, 1], queue=IO_QUEUE)
        return True

    def load(self, job_id: str) -> Event | None:
        raw: dict[bytes, bytes] = self.store.redis.hgetall(event_key(job_id))  # type: ignore[assignment]
        if not raw:
            return None
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        return Event(job_id, fields["id"], fields["url"], fields["body"],
                     fields.get("owner") or None)

    def begin_attempt(self, job_id: str, attempt: int) -> bool:
        return bool(self._begin(keys=[event_key(job_id)], args=[attempt]))

    def record(self, job_id: str, state: WebhookState) -> None:
        """The attempt's outcome, on the job (gone already if its retention was short)."""
        self.store.update(job_id, webhook=state)

    def finish(self, job_id: str) -> None:
        self.store.redis.delete(event_key(job_id))


def sign(secret: str, event: Event, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    signature = Webhook(secret).sign(event.event_id, at, event.body)
    return {
        "webhook-id": event.event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def retry_delay(attempt: int, settings: Settings) -> float:
    """Seconds before attempt `attempt + 1`: doubling from a base chosen so that the delays
    add up to the window, each scaled by a random factor in [0.8, 1.2] (jitter, so that many
    events that failed together do not all come back together)."""
    steps = max(1, 2 ** (settings.webhook_attempts - 1) - 1)
    base = settings.webhook_window_seconds / steps
    return base * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
