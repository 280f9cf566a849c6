"""A command under way when the Redis primary dies is retried on the replica Sentinel promotes
(issue 23): every client of `shared/redis_connect.py` asks the Sentinels again each time it
reconnects, not only when its pool hands a connection out.

A worker's job store (`retry_seconds`) used to retry such a command against the dead primary
for its whole retry budget, then raise `Error 111 connecting to <old primary>`, though the
Sentinels had promoted the replica seconds after the kill. A blocking `BLPOP` holds a command
under way across the kill; the value pushed to the new primary must reach it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
import redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from sentinels import SentinelGroup

from shared.config import Settings
from shared.queue import make_celery
from shared.redis_connect import PrimaryConnection, async_client
from shared.state.jobs import JobStore

# Longer than a failover takes here (about 3 s; more on a loaded machine), far shorter than the
# service's 60 s, so that the test fails fast where a client keeps to the dead primary.
RETRY_SECONDS = 20
HELD_SECONDS = 40  # how long each BLPOP waits for its value


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """One group for the module: the broker's test leaves it as it was; the failover test,
    last, kills its primary."""
    group = SentinelGroup(tmp_path_factory.mktemp("sentinels")).start()
    try:
        group.wait_for_peers()
        yield group
    finally:
        group.stop()


def held(call: Callable[[], Any]) -> Future[Any]:
    """`call()` in a thread of its own; its outcome, result or error, in the future."""
    outcome: Future[Any] = Future()

    def run() -> None:
        try:
            outcome.set_result(call())
        except BaseException as exc:
            outcome.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return outcome


def until(check: Callable[[], bool], what: str, timeout: float = RETRY_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_broker_reaches_the_primary_through_connections_that_ask_the_sentinels(
    group: SentinelGroup,
) -> None:
    """Celery's broker channel on a `sentinel://` URL retries a command the same way."""
    app = make_celery(Settings(redis_url=group.url))
    with app.connection_for_write() as connection:
        client = connection.default_channel.client
        assert client.ping()
        assert issubclass(client.connection_pool.connection_class, PrimaryConnection)
        assert client.connection_pool.get_master_address()[1] == group.ports["primary"]


def test_a_command_under_way_when_the_primary_dies_is_retried_on_the_new_one(
    group: SentinelGroup,
) -> None:
    """Run last: it kills the module's primary."""
    store = JobStore.from_url(group.url, retry_seconds=RETRY_SECONDS)
    retry = AsyncRetry(ExponentialBackoff(cap=1.0, base=0.05), RETRY_SECONDS)

    async def async_blpop() -> Any:
        client = async_client(group.url, max_connections=2, timeout=5, retry=retry,
                              socket_connect_timeout=2, socket_timeout=HELD_SECONDS + 5)
        try:
            return await client.blpop(["async"], HELD_SECONDS)  # type: ignore[misc]
        finally:
            await client.aclose()

    assert store.redis.set("before", "kept")
    sync_result = held(lambda: store.redis.blpop(["sync"], HELD_SECONDS))
    async_result = held(lambda: asyncio.run(async_blpop()))
    primary = group.client("primary")
    until(lambda: sum(c["cmd"] == "blpop" for c in primary.client_list()) == 2,
          "both clients blocked on the primary")
    old = group.ports["primary"]
    group.kill("primary")
    until(lambda: group.primary_port() == group.ports["replica"], "the Sentinels' failover")
    replica = group.client("replica")
    # Both commands are retried on the new primary, and blocked there again.
    until(lambda: sum(c["cmd"] == "blpop" for c in replica.client_list()) == 2
          or sync_result.done() or async_result.done(),
          "both commands blocked on the new primary", RETRY_SECONDS + 10)
    replica.rpush("sync", "reached")
    replica.rpush("async", "reached")
    try:
        assert list(sync_result.result(RETRY_SECONDS)) == [b"sync", b"reached"]
        assert list(async_result.result(RETRY_SECONDS)) == [b"async", b"reached"]
    except redis.ConnectionError as exc:
        pytest.fail(f"a client kept to the dead primary (port {old}): {exc}")
    assert store.redis.get("before") == b"kept"
