"""The webhook retry schedule: doubling delays with jitter that add up to about the window;
and, on a real Redis, the schedule itself: due events are taken once per lease, an attempt's
holder keeps it while it beats, and a gone holder's attempt is made again."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import Settings
from shared.schemas import JobOptions, Transcript
from shared.state.heartbeats import IO, Heartbeats
from shared.state.jobs import JobStore, new_job_id
from shared.state.webhooks import DUE_KEY, Events, retry_delay


def test_the_delays_double_and_add_up_to_about_the_window() -> None:
    settings = Settings(webhook_attempts=10, webhook_window_seconds=86400)
    random.seed(1)
    delays = [retry_delay(attempt, settings) for attempt in range(1, 10)]
    base = 86400 / 511
    for attempt, delay in enumerate(delays, start=1):
        assert 0.8 * base * 2 ** (attempt - 1) <= delay <= 1.2 * base * 2 ** (attempt - 1)
    assert sum(delays) == pytest.approx(86400, rel=0.2)
    assert 120 < delays[0] < 220  # the first retry comes after about three minutes


def test_jitter_spreads_events_that_failed_together() -> None:
    settings = Settings()
    assert len({round(retry_delay(1, settings), 3) for _ in range(20)}) > 10


@pytest.mark.parametrize(("field", "value"), [
    ("webhook_attempts", 0), ("webhook_window_seconds", 0), ("webhook_secret", "plain"),
    ("webhook_timeout_seconds", -1), ("idempotency_ttl_seconds", 0),
])  # fmt: skip
def test_bad_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        Settings(**{field: value})


def test_fetch_allow_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBATIM_FETCH_ALLOW", " 127.0.0.1, 10.0.0.0/8 ,minio.internal,")
    assert Settings().fetch_allow == ["127.0.0.1", "10.0.0.0/8", "minio.internal"]


@pytest.fixture
def events(redis_url: str) -> Iterator[Events]:
    url = redis_url.rsplit("/", 1)[0] + "/8"  # a database of its own
    store = JobStore.from_url(url)
    store.redis.flushdb()
    yield Events(store, Settings(redis_url=url, heartbeat_interval_seconds=0.1,
                                 heartbeat_timeout_seconds=0.5))
    store.redis.flushdb()
    store.redis.close()


def ended_job(events: Events) -> str:
    job_id = new_job_id()
    events.store.create(job_id, "a.wav", JobOptions(), 1.0, Path("/gone"),
                        extra={"webhook_url": "http://127.0.0.1:9/hook"})
    events.store.complete(job_id, Transcript(language="en", duration=1.0, text="", segments=[]),
                          ttl=600)
    return job_id


def test_an_ended_job_is_announced_once_and_taken_once_per_lease(events: Events) -> None:
    job_id = ended_job(events)
    assert events.announce(job_id)
    assert not events.announce(job_id)  # a second end of the same job
    assert events.take_due(10) == [(job_id, 1)]
    assert events.take_due(10) == []  # leased
    time.sleep(0.6)
    assert events.take_due(10) == [(job_id, 1)]  # never begun: taken again


def test_a_held_attempt_stays_with_a_beating_holder_and_is_made_again_once_it_is_gone(
    events: Events,
) -> None:
    beats = Heartbeats(events.store.redis, IO)
    job_id = ended_job(events)
    events.announce(job_id)
    [(_, attempt)] = events.take_due(10)
    beats.beat("io:1", 0.5)
    assert events.begin_attempt(job_id, attempt, "io:1")
    assert not events.begin_attempt(job_id, attempt, "io:2")  # taken twice: begun once
    time.sleep(0.3)
    beats.beat("io:1", 0.5)
    time.sleep(0.3)
    assert events.take_due(10) == []  # its holder still beats: the lease is renewed
    time.sleep(0.6)
    assert events.take_due(10) == [(job_id, 1)]  # the holder is gone: attempt 1 again
    assert events.begin_attempt(job_id, 1, "io:2")


def test_a_failed_attempt_is_due_after_its_delay(events: Events) -> None:
    job_id = ended_job(events)
    events.announce(job_id)
    events.take_due(10)
    events.begin_attempt(job_id, 1, "io:1")
    events.retry_in(job_id, 0.3)
    assert events.take_due(10) == []
    assert 0 < (events.next_due_in() or 0) <= 0.3
    time.sleep(0.35)
    assert events.take_due(10) == [(job_id, 2)]
    events.finish(job_id)
    assert events.store.redis.zcard(DUE_KEY) == 0
