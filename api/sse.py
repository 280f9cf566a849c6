"""The API's side of job events: relay a job's stream to a client as server-sent events.

Each open stream is one coroutine waiting on its queue of the process's `EventHub`
(`shared/state/relay.py`), which follows every stream with one blocking XREAD: no thread and no
Redis connection per client, so an API process holds as many idle listeners as
`events_max_listeners` allows.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from typing import Annotated

import anyio
import redis
from fastapi import Depends, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from shared.config import Settings
from shared.errors import InvalidRequest, ServiceUnavailable, TooManyStreams, Unauthorized
from shared.state.job_events import (
    COMPLETED,
    DELETED,
    FAILED,
    FINAL,
    deleted_data,
    stream_key,
    transcript_links,
)
from shared.state.jobs import JobStore
from shared.state.keys import KeyStore
from shared.state.relay import BEGINNING, STREAM_ID, Event, EventHub

log = logging.getLogger(__name__)

# A key's open streams, on every replica: `verbatim:streams:{key id}`, a sorted set of slot ids
# scored with the (Redis) time their lease ends. A stream renews its lease as it checks its key;
# one whose process died is forgotten once its lease ends. KEYS: the set. ARGV: the slot id,
# the lease in seconds, the key's most streams. 1 when the slot is taken, 0 when they are all.
_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
return 1
"""
# KEYS: the set, the key's record. ARGV: the slot id, the lease. Renews the slot's lease; 1
# while the key lives, 0 once it is revoked or gone.
_RENEW = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
local revoked = redis.call('HGET', KEYS[2], 'revoked')
if not revoked or revoked == 'true' then return 0 end
return 1
"""
REVOKED = "error"  # the event that ends the stream of a key revoked meanwhile


@dataclass(frozen=True)
class Slot:
    """One open stream of a key, counted in Redis."""

    owner: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def key(self) -> str:
        return f"verbatim:streams:{self.owner}"


def after_id(last_event_id: str | None) -> str:
    """Where a stream resumes: after the `Last-Event-ID` a reconnecting client sends, else
    from the beginning of the job's history."""
    if last_event_id is None or last_event_id == "":
        return BEGINNING
    if not STREAM_ID.match(last_event_id):
        message = f"Last-Event-ID {last_event_id[:40]!r} is not an id this server sent."
        raise InvalidRequest(message, param="Last-Event-ID")
    return last_event_id


class JobStreams:
    """Follows job streams for clients: counts them and ends those of vanished jobs."""

    def __init__(self, hub: EventHub, settings: Settings) -> None:
        self.redis = hub.redis
        self.hub = hub
        self.ping_seconds = settings.events_ping_seconds
        self.check_seconds = settings.events_check_seconds
        self.key_check_seconds = settings.events_key_check_seconds
        self.max_listeners = settings.events_max_listeners
        self.max_per_key = settings.events_max_streams_per_key
        self.send_timeout_seconds = settings.events_send_timeout_seconds
        # Long enough for a renewal that waits on a slow client's send, then two more checks.
        self.lease_seconds = self.send_timeout_seconds + 3 * self.key_check_seconds
        self.listeners = 0
        self._take = self.redis.register_script(_TAKE)
        self._renew = self.redis.register_script(_RENEW)

    async def admit(self, owner: str | None) -> Slot | None:
        """Room for a new stream of the key `owner` (None: auth is off): its slot, which
        `follow` gives back. Refused when this process serves as many streams as it may (503),
        or the key has as many open on all replicas as it may (429 `too_many_streams`)."""
        if self.listeners >= self.max_listeners:
            raise ServiceUnavailable("Too many event streams are open; try again later.")
        if owner is None:
            return None
        slot = Slot(owner)
        if not await self._take(keys=[slot.key],
                                args=[slot.id, self.lease_seconds, self.max_per_key]):
            raise TooManyStreams(
                f"This API key has {self.max_per_key} event streams open, as many as it may; "
                "close one first.", retry_after=math.ceil(self.key_check_seconds))
        return slot

    async def release(self, slot: Slot | None) -> None:
        """Give a slot back, whatever cancels the caller meanwhile; Redis failing, it lapses."""
        if slot is None:
            return
        with anyio.CancelScope(shield=True), suppress(redis.RedisError):
            await self.redis.zrem(slot.key, slot.id)

    async def follow(self, job_id: str, after: str, slot: Slot | None = None
                     ) -> AsyncIterator[Event]:
        """The job's events after `after`, up to and including the one that ends it; the
        stream of `slot`, which is given back at the end. Should Redis fail, the stream just
        ends: an EventSource reconnects with the last id it got. With a slot, the key is
        checked every `events_key_check_seconds`, busy or idle: once it is revoked, an `error`
        event (`unauthorized`) ends the stream."""
        self.listeners += 1
        watch = _Watch(self, job_id, slot)
        try:
            async with aclosing(self.hub.follow(stream_key(job_id), after, FINAL, watch.idle,
                                                watch.idle_seconds)) as events:
                async for event in events:
                    yield event
                    if (ended := await watch.busy(event.id)) is not None:
                        yield ended
                        return
        except redis.RedisError as exc:
            log.warning("event stream cut: Redis failed: %s", exc,
                        extra={"event": "events_cut", "job_id": job_id})
        finally:
            self.listeners -= 1
            await self.release(slot)

    async def key_lives(self, slot: Slot) -> bool:
        """Renew the slot's lease; whether its key is still neither revoked nor deleted."""
        return bool(await self._renew(keys=[slot.key, KeyStore.record_key(slot.owner)],
                                      args=[slot.id, self.lease_seconds]))

    async def _ended(self, job_id: str, last: str) -> Event | None:
        """The last event of a job whose stream went quiet, if it ended: deleted or expired,
        or finished with its stream gone (kept no longer than the job, it can go first)."""
        status, error = await self.redis.hmget(JobStore.job_key(job_id), ["status", "error"])
        if status is None:
            return Event(last, DELETED, deleted_data())
        status = json.loads(status)
        if status == COMPLETED:
            return Event(last, COMPLETED, {"status": status,
                                           "transcripts": transcript_links(job_id)})
        if status == FAILED:
            return Event(last, FAILED, {"status": status, "error": json.loads(error or "null")})
        return None

    def response(
        self, events: AsyncIterator[ServerSentEvent], headers: dict[str, str] | None = None
    ) -> EventSourceResponse:
        """`events` as `text/event-stream`, with comment heartbeats while it is idle."""
        return EventSourceResponse(events, ping=self.ping_seconds, headers=headers,
                                   send_timeout=self.send_timeout_seconds)


async def as_sse(events: AsyncIterator[Event]) -> AsyncIterator[ServerSentEvent]:
    """Job events framed as SSE: `id:` the stream id, `event:` the name, `data:` JSON."""
    async for event in events:
        yield ServerSentEvent(event.json(), event=event.name, id=event.id)


def job_streams(request: Request) -> JobStreams:
    streams: JobStreams = request.app.state.job_streams
    return streams


JobStreamsDep = Annotated[JobStreams, Depends(job_streams)]


class _Watch:
    """What a stream checks besides its events: its key (and lease) every
    `events_key_check_seconds`, and, when it is quiet, that its job still exists."""

    def __init__(self, streams: JobStreams, job_id: str, slot: Slot | None) -> None:
        self.streams, self.job_id, self.slot = streams, job_id, slot
        # The hub asks `idle` after this long without an event.
        self.idle_seconds = (min(streams.check_seconds, streams.key_check_seconds) if slot
                             else streams.check_seconds)
        self.key_checked = self.job_checked = -math.inf

    async def idle(self, last: str) -> Event | None:
        """The hub's idle check: the key, then the job when its check is due (within half an
        idle wait: the hub's waits run a hair short of the loop's clock or long)."""
        if (ended := await self._key(last)) is not None:
            return ended
        if time.monotonic() - self.job_checked < self.streams.check_seconds - self.idle_seconds / 2:
            return None
        self.job_checked = time.monotonic()
        return await self.streams._ended(self.job_id, last)

    async def busy(self, last: str) -> Event | None:
        """After an event: the key, when its check is due."""
        if time.monotonic() - self.key_checked < self.streams.key_check_seconds:
            return None
        return await self._key(last)

    async def _key(self, last: str) -> Event | None:
        """The `error` event that ends the stream once its key is revoked."""
        if self.slot is None:
            return None
        self.key_checked = time.monotonic()
        if await self.streams.key_lives(self.slot):
            return None
        message = "The API key has been revoked; this stream ends."
        return Event(last, REVOKED, {"error": {"code": Unauthorized.code, "message": message}})
