"""A broker channel whose connection breaks while it holds an unacknowledged message and waits
for more (issue 23): closed as Celery's consumer closes it, it gives the message back instead of
raising `AttributeError`, and a late acknowledgement through it is a connection error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
import redis
from celery.worker.consumer.consumer import COLLECT_SOCKET_TIMEOUT
from kombu import Connection, Exchange, Message, Queue
from kombu.transport import resolve_transport

from shared import broker_transport
from shared.config import Settings
from shared.localredis import LocalRedis
from shared.queue import make_celery


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of its own: the session's has the session workers' BRPOPs on it."""
    with LocalRedis(tmp_path_factory.mktemp("broker-redis")) as server:
        yield server.url


@pytest.fixture
def connection(redis_url: str) -> Iterator[Connection]:
    broker_transport.install()
    with Connection(redis_url) as conn:
        yield conn


def hold_one(conn: Connection, name: str) -> Message:
    """Publish a message on `name`, receive it unacknowledged, then wait for more (BRPOP)."""
    queue = Queue(name, Exchange(name), name)
    conn.Producer().publish({"job": name}, exchange=queue.exchange, routing_key=name,
                            declare=[queue])
    received: list[Message] = []
    conn.Consumer(queue, callbacks=[lambda _, message: received.append(message)]).consume()
    conn.drain_events(timeout=2)
    conn.default_channel._brpop_start()
    return received[0]


def break_the_brpop(client: redis.Redis) -> None:
    ids = [c["id"] for c in client.client_list() if c["cmd"] == "brpop"]
    assert len(ids) == 1, client.client_list()
    client.client_kill_filter(_id=ids[0])


def close_as_celery_does(conn: Connection) -> None:
    """`Consumer.on_connection_error_after_connected` (celery 5.7)."""
    conn.collect(socket_timeout=COLLECT_SOCKET_TIMEOUT)
    conn.close()


def test_a_lost_connection_gives_the_held_message_back(
    connection: Connection, redis_url: str
) -> None:
    admin = redis.Redis.from_url(redis_url)
    held = hold_one(connection, "held-back")
    break_the_brpop(admin)

    # What `Connection.collect` does first; kombu 5.7's own channel raises the connection
    # error here and is left half closed, its message not given back.
    connection.default_channel.close()

    with Connection(redis_url) as again:
        message = again.SimpleQueue("held-back").get(timeout=2)
        assert message.payload == {"job": "held-back"}
        assert message.delivery_info.get("redelivered") or message.headers.get("redelivered")
        message.ack()
    assert not admin.hexists("unacked", held.delivery_tag)


def test_an_ack_after_the_loss_is_a_connection_error(
    connection: Connection, redis_url: str
) -> None:
    held = hold_one(connection, "acked-late")
    break_the_brpop(redis.Redis.from_url(redis_url))
    close_as_celery_does(connection)

    with pytest.raises(redis.ConnectionError) as raised:
        held.ack()

    assert isinstance(raised.value, connection.connection_errors)


def test_a_broker_gone_while_a_message_is_held_and_more_awaited(tmp_path: Path) -> None:
    """The failover's sequence in the I/O worker's log (celery and kombu 5.7): the channel is
    closed while its primary is gone and its BRPOP outstanding (`Connection.collect`), the
    transport's client is dropped, and the channel is closed again (`Connection.close`)."""
    server = LocalRedis(tmp_path).start()
    try:
        broker_transport.install()
        conn = Connection(server.url)
        held = hold_one(conn, "held-on")
        channel = conn.default_channel
        server.stop()

        with suppress(*conn.connection_errors):
            channel.close()
        channel.connection.client = None
        with suppress(*conn.connection_errors):
            channel.close()  # kombu 5.7's own channel: AttributeError (no attribute 'hostname')

        server.start()
        admin = redis.Redis.from_url(server.url)
        assert admin.hexists("unacked", held.delivery_tag), "kept for the visibility timeout"
        with pytest.raises(redis.ConnectionError):
            held.ack()
    finally:
        server.stop()


@pytest.mark.parametrize(("scheme", "transport"), [
    ("redis", broker_transport.Transport), ("rediss", broker_transport.Transport),
    ("sentinel", broker_transport.SentinelTransport)])
def test_every_celery_app_uses_the_channels_that_survive(
    scheme: str, transport: type, redis_url: str
) -> None:
    make_celery(Settings(redis_url=redis_url))

    assert resolve_transport(scheme) is transport


def test_the_transport_stays_when_celery_moves_to_the_next_sentinel() -> None:
    app = make_celery(Settings(redis_url="sentinel://127.0.0.1:1,127.0.0.1:2/primary"))
    conn = app.connection_for_read()

    conn.maybe_switch_next()

    assert conn.transport_cls == "sentinel"
    assert type(conn.transport) is broker_transport.SentinelTransport
