"""The API's side of job events: relay a job's stream to a client as server-sent events.

Each open stream is one coroutine waiting on its queue of the process's `EventHub`
(`shared/state/relay.py`), which follows every stream with one blocking XREAD: no thread and no
Redis connection per client, so an API process holds as many idle listeners as
`events_max_listeners` allows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

import redis
from fastapi import Depends, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from shared.config import Settings
from shared.errors import InvalidRequest, ServiceUnavailable
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
from shared.state.relay import BEGINNING, STREAM_ID, Event, EventHub

log = logging.getLogger(__name__)

# Longest a client may take to accept one event before its stream is dropped.
SEND_TIMEOUT_SECONDS = 30


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
        self.max_listeners = settings.events_max_listeners
        self.listeners = 0

    def admit(self) -> None:
        """Refuse a new stream when this process serves as many as it may."""
        if self.listeners >= self.max_listeners:
            raise ServiceUnavailable("Too many event streams are open; try again later.")

    async def follow(self, job_id: str, after: str) -> AsyncIterator[Event]:
        """The job's events after `after`, up to and including the one that ends it. Should
        Redis fail, the stream just ends: an EventSource reconnects with the last id it got."""
        self.listeners += 1
        try:
            async for event in self.hub.follow(
                stream_key(job_id), after, FINAL, lambda last: self._ended(job_id, last)
            ):
                yield event
        except redis.RedisError as exc:
            log.warning("event stream cut: Redis failed: %s", exc,
                        extra={"event": "events_cut", "job_id": job_id})
        finally:
            self.listeners -= 1

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
                                   send_timeout=SEND_TIMEOUT_SECONDS)


async def as_sse(events: AsyncIterator[Event]) -> AsyncIterator[ServerSentEvent]:
    """Job events framed as SSE: `id:` the stream id, `event:` the name, `data:` JSON."""
    async for event in events:
        yield ServerSentEvent(event.json(), event=event.name, id=event.id)


def job_streams(request: Request) -> JobStreams:
    streams: JobStreams = request.app.state.job_streams
    return streams


JobStreamsDep = Annotated[JobStreams, Depends(job_streams)]
