"""Every Redis client of the service, from the one `VERBATIM_REDIS_URL` (issue 23).

The URL names one Redis, or Redis Sentinels and the name of the primary they watch (its form:
`shared/redis_url.py`). Then each client asks the Sentinels where the primary is, and asks
again when a connection to it fails, so that when the primary dies and Sentinel promotes a
replica the API, the workers and the Celery broker (kombu's own Sentinel transport) carry on
against the new one.

Redis Cluster is not supported: kombu's Redis transport moves each message between keys in one
command (`BRPOP` over the priority lists, the unacked hash and its index), and the job store's
Lua scripts touch a job's record and its indexes together; in a cluster those keys sit in
different hash slots, which Redis refuses (`CROSSSLOT`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from limits.storage import RedisSentinelStorage, RedisStorage

from shared.redis_url import SentinelTarget, sentinel_target

# Timeouts of the questions asked of the Sentinels themselves.
SENTINEL_TIMEOUT_SECONDS = 2.0


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class PrimaryConnection(redis.sentinel.SentinelManagedConnection):
    """A connection to the primary that asks the Sentinels where it is whenever it reconnects.

    redis-py's own asks them only when its pool hands it out (`connect`). A command that fails
    once handed out is tried again by the client's `Retry` through `send_packed_command`, which
    reconnects to the address the connection had: when the primary dies under a command, every
    try goes to the dead primary, for the whole retry budget, though the Sentinels promote a
    replica within seconds. A worker's job store (`redis_retry_seconds`) then gave its job up
    with `Error 111 connecting to <the old primary>`. Here that reconnection asks the Sentinels
    first, once: a failure is the command's to retry, as any other."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self._connect_retry()
        super().send_packed_command(command, check_health)


class AsyncPrimaryConnection(redis.asyncio.sentinel.SentinelManagedConnection):
    """`PrimaryConnection` for asyncio clients."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self._connect_retry()
        await super().send_packed_command(command, check_health)


def _sentinel(target: SentinelTarget, module: Any) -> Any:
    return module.Sentinel(target.sentinels, sentinel_kwargs={
        "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS,
        "socket_timeout": SENTINEL_TIMEOUT_SECONDS})


def sync_client(url: str, **options: Any) -> redis.Redis:
    """A client of the Redis `url` names (its primary, for Sentinels); `options` as
    `redis.Redis`'s."""
    target = sentinel_target(url)
    if target is None:
        return redis.Redis.from_url(url, **options)
    client: redis.Redis = _sentinel(target, redis.sentinel).master_for(
        target.master, db=target.db, password=target.password,
        connection_class=PrimaryConnection, **options)
    return client


class _BlockingSentinelPool(redis.asyncio.sentinel.SentinelConnectionPool,
                            redis.asyncio.BlockingConnectionPool):
    """Sentinel's pool that waits for a free connection, as `BlockingConnectionPool` does."""


def async_client(url: str, max_connections: int, timeout: float, **options: Any
                 ) -> redis.asyncio.Redis:
    """An asyncio client whose requests wait up to `timeout` for one of `max_connections`."""
    target = sentinel_target(url)
    if target is None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, **options)
        return redis.asyncio.Redis(connection_pool=pool)
    client: redis.asyncio.Redis = _sentinel(target, redis.asyncio.sentinel).master_for(
        target.master, connection_pool_class=_BlockingSentinelPool,
        connection_class=AsyncPrimaryConnection, db=target.db, password=target.password,
        max_connections=max_connections, timeout=timeout, **options)
    return client


def broker(url: str) -> tuple[str, dict[str, Any]]:
    """Celery's broker URL and the transport options it needs (kombu's `sentinel://` form:
    one URL per Sentinel, joined by `;`, and the primary's name as `master_name`)."""
    target = sentinel_target(url)
    if target is None:
        return url, {}
    auth = f":{quote(target.password, safe='')}@" if target.password else ""
    urls = [f"sentinel://{auth}{_netloc(host, port)}/{target.db}"
            for host, port in target.sentinels]
    return ";".join(urls), {"master_name": target.master, "sentinel_kwargs": {
        "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS,
        "socket_timeout": SENTINEL_TIMEOUT_SECONDS}}


def rate_storage(url: str, key_prefix: str) -> RedisStorage | RedisSentinelStorage:
    """The `limits` library's storage on the same Redis (`api/quotas.py`)."""
    target = sentinel_target(url)
    if target is None:
        return RedisStorage(url, key_prefix=key_prefix)
    hosts = ",".join(_netloc(host, port) for host, port in target.sentinels)
    auth = f":{quote(target.password, safe='')}@" if target.password else ""
    return RedisSentinelStorage(f"redis+sentinel://{auth}{hosts}/{target.master}",
                                key_prefix=key_prefix, use_replicas=False, db=target.db)
