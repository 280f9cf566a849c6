"""An event relay on Redis Streams: publishers append, readers replay and then block for more.

One stream per subject (a job's events live at `verbatim:events:{job id}`, see
`shared/job_events.py`). Each entry holds an event name and a JSON payload; its stream id
(`<ms>-<seq>`, Redis's clock) is the event's id, so a reader that reconnects after an id gets
everything added since and nothing twice. Streams are capped (`MAXLEN ~`) and expire, so a
subject that nobody reads costs nothing for long.

Nothing here knows what the events mean: a publisher names them, a reader says which one ends
its stream. Publishing is synchronous (workers); reading is `redis.asyncio` (the API), so an
idle reader is one awaiting coroutine and one Redis connection, never a thread.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

NAME_FIELD, DATA_FIELD = b"event", b"data"
STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
# Start of every stream: reading after it gives the whole history.
BEGINNING = "0-0"
# Entries fetched per XREAD: a replay of a long history goes out in batches of this many.
READ_BATCH = 500


@dataclass(frozen=True)
class Event:
    """One entry of a stream: its id, its name and its payload."""

    id: str
    name: str
    data: dict[str, Any]

    @property
    def published_ms(self) -> int:
        """When Redis appended it, in ms since the epoch (the first part of its id)."""
        return int(self.id.split("-", 1)[0])

    def json(self) -> str:
        return json.dumps(self.data, separators=(",", ":"))


def _decode(entry_id: bytes, fields: dict[bytes, bytes]) -> Event:
    return Event(entry_id.decode(), fields[NAME_FIELD].decode(), json.loads(fields[DATA_FIELD]))


class EventLog:
    """Appends events to streams (synchronous, for workers; thread-safe as its client is)."""

    def __init__(self, client: redis.Redis, max_length: int) -> None:
        self.redis = client
        self.max_length = max_length

    def publish(self, key: str, name: str, data: dict[str, Any], ttl_seconds: int) -> str:
        """Append one event and keep the stream for `ttl_seconds` more; its id."""
        with self.redis.pipeline() as pipe:  # MULTI: a stream never exists without its expiry
            pipe.xadd(key, {NAME_FIELD: name, DATA_FIELD: json.dumps(data)},
                      maxlen=self.max_length, approximate=True)
            pipe.expire(key, ttl_seconds)
            entry_id, _ = pipe.execute()
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def discard(self, key: str, names: Collection[str]) -> int:
        """Remove every event called one of `names` from the stream; how many went."""
        entries: list[tuple[bytes, dict[bytes, bytes]]] = self.redis.xrange(key)  # type: ignore[assignment]
        ids = [entry_id for entry_id, fields in entries
               if fields.get(NAME_FIELD, b"").decode() in names]
        return int(self.redis.xdel(key, *ids)) if ids else 0  # type: ignore[arg-type]

    def history(self, key: str) -> list[Event]:
        """Every event the stream holds, oldest first."""
        entries: list[tuple[bytes, dict[bytes, bytes]]] = self.redis.xrange(key)  # type: ignore[assignment]
        return [_decode(entry_id, fields) for entry_id, fields in entries]


def events_client(url: str, max_connections: int, block_seconds: float) -> redis.asyncio.Redis:
    """An asyncio client for `EventReader`s blocking up to `block_seconds`: one pooled
    connection per blocked reader (a blocking XREAD holds its connection), and a read timeout
    longer than the block."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, socket_connect_timeout=5,
        socket_timeout=block_seconds + 10, health_check_interval=30,
    )
    return redis.asyncio.Redis(connection_pool=pool)


IdleCheck = Callable[[str], Awaitable["Event | None"]]


class EventReader:
    """Replays a stream after an id, then blocks for new events until one that ends it."""

    def __init__(self, client: redis.asyncio.Redis, block_seconds: float) -> None:
        self.redis = client
        self.block_ms = max(1, int(block_seconds * 1000))

    async def follow(
        self, key: str, after: str, final: Collection[str], idle: IdleCheck
    ) -> AsyncIterator[Event]:
        """Events of `key` after the id `after`, ending with the first one named in `final`.

        The history is read without blocking; then, each time nothing arrives for the block
        time (and once when there is no history after `after`), `idle(last id)` is asked
        whether the subject still lives: an event it returns is yielded as the last one."""
        block: int | None = None
        while True:
            found = await self.redis.xread({key: after}, count=READ_BATCH, block=block)
            if not found:
                block = self.block_ms
                last = await idle(after)
                if last is not None:
                    yield last
                    return
                continue
            for entry_id, fields in found[0][1]:
                event = _decode(entry_id, fields)
                after = event.id
                yield event
                if event.name in final:
                    return
