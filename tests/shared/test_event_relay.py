"""The event relay (`shared/state/relay.py`) and a job's events on it, on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from sse_client import run_async

from shared.errors import DecodeError
from shared.schemas import JobStatus, Segment
from shared.state.job_events import FINAL, JobEvents, stream_key
from shared.state.relay import BEGINNING, Event, EventHub, EventLog, events_client

JOB = "a" * 32


@pytest.fixture
def db_url(redis_url: str) -> Iterator[str]:
    url = redis_url.rsplit("/", 1)[0] + "/6"  # a database of its own
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def client(db_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(db_url)
    yield connection
    connection.close()


def segment(number: int, text: str) -> Segment:
    return Segment(id=number, start=number * 2.0, end=number * 2.0 + 1.5, text=text)


def names(history: list[Event]) -> list[str]:
    return [event.name for event in history]


def test_a_stream_expires_and_is_capped(client: redis.Redis) -> None:
    log = EventLog(client, max_length=100)
    for number in range(1000):
        log.publish("verbatim:events:test", "tick", {"n": number}, ttl_seconds=50)
    assert 0 < client.ttl("verbatim:events:test") <= 50
    kept = log.history("verbatim:events:test")
    assert 100 <= len(kept) < 1000  # MAXLEN ~ trims whole nodes, never below the cap
    assert kept[-1].data == {"n": 999}


def test_a_restart_voids_the_earlier_attempts_segments(client: redis.Redis) -> None:
    events = JobEvents(EventLog(client, 1000), ttl_seconds=3600)
    events.status(JOB, JobStatus.queued)
    events.status(JOB, JobStatus.processing, attempt=1)
    events.segment(JOB, segment(0, " Lost"))
    events.progress(JOB, 0.3)
    events.restart(JOB, attempt=2)
    events.status(JOB, JobStatus.processing, attempt=2)
    events.segment(JOB, segment(0, " Kept"))
    history = EventLog(client, 1000).history(stream_key(JOB))
    assert names(history) == ["status", "status", "restart", "status", "segment"]
    assert history[-1].data == {"id": 0, "start": 0.0, "end": 1.5, "text": " Kept"}
    assert history[2].data == {"attempt": 2}


def test_failed_carries_the_error(client: redis.Redis) -> None:
    events = JobEvents(EventLog(client, 1000), ttl_seconds=3600)
    events.failed(JOB, DecodeError("The audio could not be decoded."))
    (event,) = EventLog(client, 1000).history(stream_key(JOB))
    assert event.name in FINAL
    assert event.data == {"status": "failed", "error": {
        "code": "decode_error", "message": "The audio could not be decoded."}}


async def follow_all(url: str, after: str, publish: list[tuple[str, dict]],
                     client: redis.Redis) -> list[Event]:
    """Follow the stream while `publish` is appended to it from outside, after a pause."""
    reader_client = events_client(url, max_connections=2)

    async def never_ends(_: str) -> Event | None:
        return None

    async def publisher() -> None:
        await asyncio.sleep(0.3)  # the reader is blocked by now
        log = EventLog(client, 1000)
        for name, data in publish:
            await asyncio.to_thread(log.publish, "verbatim:events:t", name, data, 60)

    task = asyncio.create_task(publisher())
    async with EventHub(reader_client, idle_seconds=5) as hub:
        got = [e async for e in hub.follow("verbatim:events:t", after, {"end"}, never_ends)]
    await task
    await reader_client.aclose()
    return got


def test_a_reader_replays_then_wakes_for_new_events_until_the_end(
    client: redis.Redis, db_url: str
) -> None:
    log = EventLog(client, 1000)
    first = log.publish("verbatim:events:t", "a", {"n": 1}, 60)
    log.publish("verbatim:events:t", "a", {"n": 2}, 60)
    later = [("a", {"n": 3}), ("end", {}), ("a", {"n": 4})]
    got = run_async(asyncio.wait_for(follow_all(db_url, BEGINNING, later, client), 10))
    assert [e.data.get("n") for e in got] == [1, 2, 3, None]
    again = run_async(asyncio.wait_for(follow_all(db_url, first, [], client), 10))
    assert [e.data.get("n") for e in again] == [2, 3, None]  # after the id given, to the end


def test_a_quiet_stream_asks_whether_its_subject_lives(db_url: str) -> None:
    async def scenario() -> list[Event]:
        reader_client = events_client(db_url, max_connections=1)
        asked: list[str] = []

        async def gone_on_second_ask(last: str) -> Event | None:
            asked.append(last)
            return Event(last, "deleted", {}) if len(asked) == 2 else None

        async with EventHub(reader_client, idle_seconds=0.2) as hub:
            got = [e async for e in hub.follow("verbatim:events:none", BEGINNING, FINAL,
                                               gone_on_second_ask)]
        await reader_client.aclose()
        assert asked == [BEGINNING, BEGINNING]
        return got

    got = run_async(asyncio.wait_for(scenario(), 10))
    assert [(e.id, e.name) for e in got] == [(BEGINNING, "deleted")]


def test_one_hub_read_reaches_every_reader_of_a_stream(client: redis.Redis, db_url: str) -> None:
    """Many readers of one stream, joining at different points: each gets every event after
    its own start exactly once, in order."""

    async def scenario() -> list[list[int]]:
        hub_client = events_client(db_url, max_connections=4)
        log = EventLog(client, 1000)

        async def never_ends(_: str) -> Event | None:
            return None

        async def read(after: str) -> list[int]:
            return [e.data["n"] async for e in hub.follow("verbatim:events:m", after, {"end"},
                                                          never_ends) if "n" in e.data]

        async with EventHub(hub_client, idle_seconds=5) as hub:
            first = await asyncio.to_thread(log.publish, "verbatim:events:m", "a", {"n": 0}, 60)
            readers = [asyncio.create_task(read(BEGINNING)) for _ in range(20)]
            readers += [asyncio.create_task(read(first)) for _ in range(20)]
            for number in range(1, 30):
                await asyncio.to_thread(log.publish, "verbatim:events:m", "a", {"n": number}, 60)
                if number == 15:  # late joiners: a replay, then the live events
                    readers += [asyncio.create_task(read(BEGINNING)) for _ in range(5)]
            await asyncio.to_thread(log.publish, "verbatim:events:m", "end", {}, 60)
            got = await asyncio.gather(*readers)
        await hub_client.aclose()
        return got

    got = run_async(asyncio.wait_for(scenario(), 20))
    everything = list(range(30))
    assert got[:20] == [everything] * 20
    assert got[20:40] == [everything[1:]] * 20
    assert got[40:] == [everything] * 5
