"""Kombu's Redis and Sentinel transports, with channels that survive losing the broker (issue 23).

With celery and kombu 5.7, a worker whose broker connection breaks while it holds an
unacknowledged message and waits for more (its `BRPOP` outstanding) used to exit with
`Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")`: the I/O
worker always (it holds a fetch or waits), a transcription or live worker while it runs a job.
On the connection error Celery's consumer calls `Connection.collect()`, then `close()`
(`celery/worker/consumer/consumer.py`, `on_connection_error_after_connected`):

1. `collect()` closes the channel; kombu's `Channel.close` first reads the outstanding `BRPOP`
   reply, which raises the connection error, so the channel is left half closed (its
   unacknowledged messages not restored); then `collect()` drops the transport's `client`.
2. `close()` closes the channel again; it restores the unacknowledged messages through a new
   client, whose pool `_connparams` builds from `transport.client.hostname`: the
   `AttributeError`, which no one catches.

Kombu's own transports (`kombu/transport/redis.py`) are kept; their channels change in two
places (and the Sentinel channel's connections are `shared/redis_connect.py`'s, which ask the
Sentinels where the primary is whenever they reconnect):

- A `BRPOP` reply lost with the connection does not stop the close: the channel restores its
  unacknowledged messages at once, through a new client, while it still knows the broker. The
  Redis it reaches gets them back on their queues, to be delivered again (a fetch delivered
  again while the first still runs waits its turn: `courier/fetching.py`); if none answers (a
  Sentinel has not promoted a replica yet), they stay in kombu's unacked hash and come back
  after `VERBATIM_VISIBILITY_TIMEOUT_SECONDS`, and in between the reapers of
  `shared/state/requeue.py` requeue the jobs of any worker that dies.
- A channel closed, or whose transport lost its client, raises `redis.ConnectionError` when
  it needs Redis again, an error Celery recovers from (it reconnects; an acknowledgement
  through the old channel is logged as failed and the message stays unacked, as above),
  instead of the `AttributeError`.

`install()` points kombu's `redis`, `rediss` and `sentinel` URL schemes at these transports, for
every connection of the process (Celery's consumer changes URLs to the next Sentinel on its own,
and takes the transport from the URL's scheme each time, so the `broker_transport` setting would
not stick). `make_celery` (`shared/queue.py`) calls it, so every Celery app of the service (API,
transcription and live workers, I/O worker) has it.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

from shared.redis_connect import PrimaryConnection

LOST_CLIENT = "the broker connection of this channel was closed after it was lost"


class _SurvivesLoss(kombu_redis.Channel):
    """What both channels below change; kept first in their bases."""

    def close(self) -> None:
        if self._in_poll and not self.closed:
            try:
                self._brpop_read()
            except kombu_redis.Empty:
                pass
            except self.connection_errors:
                pass  # the reply went with the connection; `_brpop_read` cleared `_in_poll`
        try:
            super().close()
        finally:
            self._disconnect_pools()  # those the restore opened after the close disconnected

    def _get_pool(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError(LOST_CLIENT)
        return super()._get_pool(asynchronous)


class Channel(_SurvivesLoss, kombu_redis.Channel):
    pass


class SentinelChannel(_SurvivesLoss, kombu_redis.SentinelChannel):
    # A command retried after the primary died asks the Sentinels where the new one is.
    connection_class = PrimaryConnection


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


SCHEMES = {
    "redis": f"{__name__}:Transport",
    "rediss": f"{__name__}:Transport",
    "sentinel": f"{__name__}:SentinelTransport",
}


def install() -> None:
    """Kombu's `redis`, `rediss` and `sentinel` URLs use the transports above."""
    TRANSPORT_ALIASES.update(SCHEMES)

