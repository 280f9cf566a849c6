"""Webhook events: which jobs announce themselves, the signed event, and its retry schedule.

When a job with a `webhook_url` ends, `announce` claims its one event (a Lua compare-and-set,
so that a redelivered task or a second caller sends nothing more), keeps the event's body and
id under `verbatim:webhook:{job_id}` for the whole retry window (the job record itself may
expire sooner, by its `retention_seconds`), and schedules its first attempt now. The I/O
workers (`courier/`) sign each attempt per Standard Webhooks (https://www.standardwebhooks.com):
the same `webhook-id` on every attempt, a fresh `webhook-timestamp`.

The schedule is the sorted set `verbatim:webhooks:due` (job id scored by when its next attempt
is due, on Redis's clock), not messages a worker holds: a killed I/O worker strands nothing
(issue 26). Each I/O worker takes due events (`take_due`) onto threads of its own, so a
delivery never waits behind a media download. Taking an event leases it for
`heartbeat_timeout_seconds` (pushes its score that far ahead); an attempt records its holder,
the I/O worker that makes it; a failed attempt schedules the next at its `retry_delay`. An event
whose lease runs out is taken again: while its holder still beats the lease is renewed, once
the holder is gone its attempt is made again, so an attempt held or due on a killed I/O worker
is made by another within the heartbeat timeout. An attempt that a receiver had already
answered before the kill may so arrive twice, under the same `webhook-id`.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from standardwebhooks.webhooks import Webhook

from shared.config import Settings
from shared.schemas import Job, JobStatus, WebhookState
from shared.state.heartbeats import IO_WORKERS_KEY
from shared.state.job_events import transcript_links
from shared.state.jobs import LUA_NOW_MS, JobStore
from shared.state.keys import KeyStore, new_webhook_secret

IO_QUEUE = "verbatim.io"
DELIVER_TASK = "verbatim.deliver_webhook"
FETCH_TASK = "verbatim.fetch_media"
SECRET_KEY = "verbatim:webhook-secret"
DUE_KEY = "verbatim:webhooks:due"
_EVENT_PREFIX = "verbatim:webhook:"
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

# KEYS: event, due zset. ARGV: job id, the attempt about to start, its holder, the lease in ms.
# Counts it only if it is the next one, so that an event taken twice is not sent twice.
# Returns 1 or 0.
_BEGIN_ATTEMPT = LUA_NOW_MS + """
local done = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '-1')
if done ~= tonumber(ARGV[2]) - 1 then return 0 end
redis.call('HSET', KEYS[1], 'attempts', ARGV[2], 'holder', ARGV[3])
redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[4]), ARGV[1])
return 1
"""

# KEYS: event, due zset. ARGV: job id, delay in ms. The attempt is over; the next is due then.
_RETRY_AT = LUA_NOW_MS + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], 'holder')
redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# KEYS: due zset, I/O workers zset. ARGV: lease (the heartbeat timeout) in ms, most to take.
# Returns job id, attempt pairs to make now; leases each event taken. An event whose holder
# still beats is left to it (its lease renewed); one whose holder is gone has its attempt
# made again.
_TAKE_DUE = LUA_NOW_MS + """
local now = now_ms()
local lease = tonumber(ARGV[1])
local taken = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  local event = '""" + _EVENT_PREFIX + """' .. id
  local fields = redis.call('HMGET', event, 'attempts', 'holder')
  if not fields[1] then
    redis.call('ZREM', KEYS[1], id)  -- expired or finished
  else
    local attempts = tonumber(fields[1])
    local seen = fields[2] and redis.call('ZSCORE', KEYS[2], fields[2])
    redis.call('ZADD', KEYS[1], now + lease, id)
    if not (seen and tonumber(seen) >= now - lease) then
      if fields[2] then
        redis.call('HDEL', event, 'holder')
        attempts = attempts - 1
        redis.call('HSET', event, 'attempts', attempts)
      end
      table.insert(taken, id)
      table.insert(taken, attempts + 1)
    end
  end
end
return taken
"""

# KEYS: due zset. Seconds until the next attempt is due (0: one is), or -1: none is scheduled.
_NEXT_DUE = LUA_NOW_MS + """
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then return -1 end
return math.max(0, tonumber(first[2]) - now_ms())
"""


def event_key(job_id: str) -> str:
    return f"{_EVENT_PREFIX}{job_id}"


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
        self._retry_at = store.redis.register_script(_RETRY_AT)
        self._take_due = store.redis.register_script(_TAKE_DUE)
        self._next_due = store.redis.register_script(_NEXT_DUE)

    @property
    def _lease_ms(self) -> int:
        return int(self.settings.heartbeat_timeout_seconds * 1000)

    def announce(self, job_id: str) -> bool:
        """Schedule the job's event if it has a webhook, has ended and was not announced."""
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
            pipe.zadd(DUE_KEY, {job_id: 0})  # due now (any time in the past)
            pipe.execute()
        self.store.update(job_id, webhook=WebhookState())
        return True

    def take_due(self, most: int) -> list[tuple[str, int]]:
        """Up to `most` (job id, attempt) due now, each leased to the caller."""
        flat = self._take_due(keys=[DUE_KEY, IO_WORKERS_KEY], args=[self._lease_ms, most])
        return [(flat[i].decode(), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    def next_due_in(self) -> float | None:
        """Seconds until the next scheduled attempt is due (0: now); None when none is."""
        ms = int(self._next_due(keys=[DUE_KEY]))
        return None if ms < 0 else ms / 1000

    def retry_in(self, job_id: str, seconds: float) -> None:
        """Schedule the event's next attempt `seconds` from now."""
        self._retry_at(keys=[event_key(job_id), DUE_KEY], args=[job_id, int(seconds * 1000)])

    def load(self, job_id: str) -> Event | None:
        raw: dict[bytes, bytes] = self.store.redis.hgetall(event_key(job_id))  # type: ignore[assignment]
        if not raw:
            return None
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        return Event(job_id, fields["id"], fields["url"], fields["body"],
                     fields.get("owner") or None)

    def begin_attempt(self, job_id: str, attempt: int, holder: str) -> bool:
        """Start attempt `attempt` as `holder` (an I/O worker); False when it is not the next."""
        keys = [event_key(job_id), DUE_KEY]
        return bool(self._begin(keys=keys, args=[job_id, attempt, holder, self._lease_ms]))

    def record(self, job_id: str, state: WebhookState) -> None:
        """The attempt's outcome, on the job (gone already if its retention was short)."""
        self.store.update(job_id, webhook=state)

    def finish(self, job_id: str) -> None:
        with self.store.redis.pipeline() as pipe:
            pipe.delete(event_key(job_id))
            pipe.zrem(DUE_KEY, job_id)
            pipe.execute()


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
