"""An event relay on Redis Streams: publishers append, readers replay and then block for more.

One stream per subject (a job's events live at `verbatim:events:{job id}`, see
`shared/state/job_events.py`). Each entry holds an event name and a JSON payload; its stream id
(`<ms>-<seq>`, Redis's clock) is the event's id, so a reader that reconnects after an id gets
everything added since and nothing twice. Streams are capped (`MAXLEN ~`) and expire, so a
subject that nobody reads costs nothing for long.

Nothing here knows what the events mean: a publisher names them, a reader says which one ends
its stream. Publishing is synchronous (workers). Reading is `redis.asyncio` (the API), through
one `EventHub` per process: a single blocking XREAD on one connection follows every stream that
has readers, and hands each new entry to their queues. An idle reader is then one awaiting
coroutine, never a thread nor a Redis connection, and an event read once reaches all its
readers however many they are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

from shared.redis_connect import async_client

NAME_FIELD, DATA_FIELD = b"event", b"data"
STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
# Start of every stream: reading after it gives the whole history.
BEGINNING = "0-0"
# Entries fetched per XREAD: a replay of a long history goes out in batches of this many.
READ_BATCH = 500
# The hub's XREAD blocks this long at most (it is woken at once when a stream joins).
HUB_BLOCK_MS = 30_000
# Events waiting for one slow reader before it is dropped (its client reconnects and resumes).
READER_BACKLOG = 10_000
HUB_RETRY_SECONDS = 1.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """One entry of a stream: its id, its name and its payload."""

    id: str
    name: str
    data: dict[str, Any]
    raw: str = field(default="", compare=False, repr=False)
    """`data` as the JSON text it was stored as (encoded once, sent to every reader)."""

    @property
    def published_ms(self) -> int:
        """When Redis appended it, in ms since the epoch (the first part of its id)."""
        return int(self.id.split("-", 1)[0])

    def json(self) -> str:
        return self.raw or json.dumps(self.data, separators=(",", ":"))


def _decode(entry_id: bytes, fields: dict[bytes, bytes]) -> Event:
    raw = fields[DATA_FIELD].decode()
    return Event(entry_id.decode(), fields[NAME_FIELD].decode(), json.loads(raw), raw)


def _order(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class EventLog:
    """Appends events to streams (synchronous, for workers; thread-safe as its client is)."""

    def __init__(self, client: redis.Redis, max_length: int) -> None:
        self.redis = client
        self.max_length = max_length

    def publish(self, key: str, name: str, data: dict[str, Any], ttl_seconds: int) -> str:
        """Append one event and keep the stream for `ttl_seconds` more; its id."""
        with self.redis.pipeline() as pipe:  # MULTI: a stream never exists without its expiry
            pipe.xadd(key, {NAME_FIELD: name, DATA_FIELD: json.dumps(data, separators=(",", ":"))},
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


def events_client(url: str, max_connections: int) -> redis.asyncio.Redis:
    """An asyncio client for an `EventHub`: one connection for its blocking XREAD, the others
    for readers' replays and checks (a reader waits for one when all are busy)."""
    return async_client(
        url, max_connections + 1, timeout=10, socket_connect_timeout=5,
        socket_timeout=HUB_BLOCK_MS / 1000 + 10, health_check_interval=30,
    )


IdleCheck = Callable[[str], Awaitable["Event | None"]]


@dataclass(eq=False)
class _Reader:
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)


class EventHub:
    """Follows streams for many readers on one blocking XREAD (use as an async context)."""

    def __init__(self, client: redis.asyncio.Redis, idle_seconds: float) -> None:
        self.redis = client
        self.idle_seconds = idle_seconds
        self._readers: dict[str, set[_Reader]] = {}
        self._positions: dict[str, str] = {}  # stream -> the last id the hub has read
        self._joining = asyncio.Lock()
        self._wake_key = f"verbatim:events:wake:{uuid.uuid4().hex}"
        self._wake_position = BEGINNING
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def __aenter__(self) -> EventHub:
        self._task = asyncio.create_task(self._run(), name="event-hub")
        return self

    async def __aexit__(self, *_: object) -> None:
        """Stop the hub: woken, it leaves its loop (a cancelled blocking read would leave its
        connection waiting for a reply)."""
        self._stopping = True
        try:
            await self._wake()
            if self._task is not None:
                await asyncio.wait_for(self._task, HUB_RETRY_SECONDS * 5)
            await self.redis.delete(self._wake_key)
        except (redis.RedisError, TimeoutError):
            if self._task is not None:
                self._task.cancel()  # Redis is away: nothing left to read anyway

    async def follow(
        self, key: str, after: str, final: Collection[str], idle: IdleCheck,
        idle_seconds: float | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Events of `key` after the id `after`, ending with the first one named in `final`.

        The history is replayed first. Then, each time nothing arrives for `idle_seconds`
        (the hub's unless given; and once right after the replay), `idle(last id)` is asked
        whether the subject still lives: an event it returns is yielded as the last one. A
        reader that falls `READER_BACKLOG` events behind is ended, to resume with its last id."""
        idle_seconds = idle_seconds or self.idle_seconds
        reader = _Reader()
        await self._join(key, reader)
        try:
            last = after
            # Joined first, replayed second: what arrives meanwhile is in both, never in
            # neither, and ids at or before `last` are skipped.
            async for event in self._replay(key, after):
                last = event.id
                yield event
                if event.name in final:
                    return
            check = True
            while True:
                if check:
                    if (ended := await idle(last)) is not None:
                        yield ended
                        return
                try:
                    queued = await asyncio.wait_for(reader.queue.get(), idle_seconds)
                except TimeoutError:
                    check = True
                    continue
                check = False
                if queued is None:
                    return  # fell too far behind
                if _order(queued.id) <= _order(last):
                    continue
                last = queued.id
                yield queued
                if queued.name in final:
                    return
        finally:
            self._leave(key, reader)

    async def _replay(self, key: str, after: str) -> AsyncIterator[Event]:
        while True:
            found: Any = await self.redis.xread({key: after}, count=READ_BATCH)
            if not found:
                return
            for entry_id, fields in found[0][1]:
                event = _decode(entry_id, fields)
                after = event.id
                yield event

    async def _join(self, key: str, reader: _Reader) -> None:
        async with self._joining:
            if key not in self._readers:
                newest: Any = await self.redis.xrevrange(key, count=1)
                self._positions[key] = newest[0][0].decode() if newest else BEGINNING
                self._readers[key] = set()
                await self._wake()
            self._readers[key].add(reader)

    def _leave(self, key: str, reader: _Reader) -> None:
        readers = self._readers.get(key)
        if readers is None:
            return
        readers.discard(reader)
        if not readers:
            del self._readers[key], self._positions[key]

    async def _wake(self) -> None:
        """Interrupt the hub's XREAD, so that it reads the stream that just joined too."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self._wake_key, {b"w": b"1"}, maxlen=10, approximate=True)
            pipe.expire(self._wake_key, 3600)
            await pipe.execute()

    async def _run(self) -> None:
        while not self._stopping:
            streams: dict[Any, Any] = {self._wake_key: self._wake_position, **self._positions}
            try:
                found: Any = await self.redis.xread(streams, count=READ_BATCH, block=HUB_BLOCK_MS)
            except redis.RedisError as exc:
                log.warning("event hub: Redis failed: %s", exc, extra={"event": "hub_retry"})
                await asyncio.sleep(HUB_RETRY_SECONDS)
                continue
            for stream, entries in found or []:
                self._deliver(stream.decode(), entries)

    def _deliver(self, key: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        if key == self._wake_key:
            self._wake_position = entries[-1][0].decode()
            return
        if key not in self._positions:
            return  # its last reader left while the hub read
        self._positions[key] = entries[-1][0].decode()
        events = [_decode(entry_id, fields) for entry_id, fields in entries]
        for reader in list(self._readers[key]):
            if reader.queue.qsize() + len(events) > READER_BACKLOG:
                self._readers[key].discard(reader)
                reader.queue.put_nowait(None)
                continue
            for event in events:
                reader.queue.put_nowait(event)
