"""Worker heartbeats in Redis: what `/readyz` reads to know a model is loaded somewhere.

Each worker process with a loaded model owns a hash `verbatim:worker:{hostname}:{pid}` that
expires `heartbeat_timeout_seconds` after its last beat, and a member of the sorted set
`verbatim:workers` scored by that last beat, so live workers are a range read, never a SCAN.
Times are Redis's clock (`TIME`), so the API and the workers need not agree on theirs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis
from pydantic import BaseModel

from shared.state.jobs import LUA_NOW_MS

WORKERS_KEY = "verbatim:workers"

# KEYS: worker hash, workers zset. ARGV: worker id, expiry ms, then field/value pairs.
# Members silent for longer than the expiry are pruned here, so the set stays small.
_BEAT = LUA_NOW_MS + """
local now = now_ms()
redis.call('HSET', KEYS[1], 'last_seen_ms', string.format('%d', now), unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
return now
"""

# KEYS: workers zset. ARGV: timeout ms. The ids that beat within the timeout, by Redis's clock.
_LIVE = LUA_NOW_MS + """
return redis.call('ZRANGEBYSCORE', KEYS[1], now_ms() - tonumber(ARGV[1]), '+inf')
"""

_PREFIX = "verbatim:worker:"


class WorkerBeat(BaseModel):
    """One worker process as its last heartbeat described it."""

    id: str
    hostname: str
    pid: int
    model: str
    device: str
    compute_type: str
    jobs_done: int
    last_seen: datetime
    node: str | None = None
    """The Celery worker (hostname and main process id) the process belongs to."""


def worker_key(worker_id: str) -> str:
    return f"{_PREFIX}{worker_id}"


class Heartbeats:
    """Publish, read and withdraw worker heartbeats (synchronous, thread-safe)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._beat = client.register_script(_BEAT)
        self._live = client.register_script(_LIVE)

    def beat(self, worker_id: str, timeout_seconds: float, **fields: Any) -> None:
        """Record that `worker_id` is alive with these fields, for `timeout_seconds`."""
        pairs = [str(item) for pair in fields.items() for item in pair]
        args = [worker_id, str(int(timeout_seconds * 1000)), "id", worker_id, *pairs]
        self._beat(keys=[worker_key(worker_id), WORKERS_KEY], args=args)

    def withdraw(self, worker_id: str) -> None:
        """Forget `worker_id` at once (a clean shutdown)."""
        with self.redis.pipeline() as pipe:
            pipe.delete(worker_key(worker_id))
            pipe.zrem(WORKERS_KEY, worker_id)
            pipe.execute()

    def live(self, timeout_seconds: float) -> list[WorkerBeat]:
        """Workers whose last heartbeat is at most `timeout_seconds` old, by id."""
        ids = self._live(keys=[WORKERS_KEY], args=[int(timeout_seconds * 1000)])
        with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.hgetall(worker_key(worker_id.decode()))
            rows = pipe.execute()
        # A hash may have expired since the range read: that worker is gone.
        return sorted((_parse(row) for row in rows if row), key=lambda w: w.id)


def _parse(row: dict[bytes, bytes]) -> WorkerBeat:
    fields = {name.decode(): value.decode() for name, value in row.items()}
    seen = datetime.fromtimestamp(int(fields.pop("last_seen_ms")) / 1000, UTC)
    return WorkerBeat.model_validate(fields | {"last_seen": seen})
