"""Worker heartbeats in Redis: what `/readyz` reads to know a model is loaded somewhere.

Each worker process with a loaded model owns a hash `verbatim:worker:{hostname}:{pid}` that
expires `heartbeat_timeout_seconds` after its last beat, and a member of the sorted set
`verbatim:workers` scored by that last beat, so live workers are a range read, never a SCAN.
Times are Redis's clock (`TIME`), so the API and the workers need not agree on theirs.

The I/O workers (`courier/`) and the live workers (`worker/live_worker.py`) beat the same way,
with the same loop (`beat_until`), each kind in a group of its own (`IO`: `verbatim:io-workers`,
`verbatim:io-worker:{id}`; `LIVE`: `verbatim:live-workers`, `verbatim:live-worker:{id}`), which
`/readyz` does not count. After each beat of an I/O worker, the reapers of its kind requeue what
a gone one held. A live worker's beat names the models it serves, so that the API refuses a
session for a model that no running live worker serves (`api/model_choice.py`).

A transcription worker process whose model is still loading beats in a group of its own
(`STARTING`: `verbatim:starting-workers`, `verbatim:starting-worker:{id}`) until its first
beat as a loaded worker. It may already hold a job, which waits for that same load: the reapers
count it alive, `/readyz` does not count it ready.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import redis
from pydantic import BaseModel, field_validator

from shared.redis_connect import sync_client
from shared.state.jobs import LUA_NOW_MS

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

WORKERS_KEY = "verbatim:workers"
IO_WORKERS_KEY = "verbatim:io-workers"
LIVE_WORKERS_KEY = "verbatim:live-workers"


class Group(NamedTuple):
    """A kind of worker that beats: the sorted set of its members, the prefix of their hashes."""

    key: str
    prefix: str


TRANSCRIPTION = Group(WORKERS_KEY, "verbatim:worker:")
IO = Group(IO_WORKERS_KEY, "verbatim:io-worker:")
LIVE = Group(LIVE_WORKERS_KEY, "verbatim:live-worker:")
STARTING = Group("verbatim:starting-workers", "verbatim:starting-worker:")

# A beat's own Redis connection: a beat never waits longer than these on a Redis that is away.
CONNECT_TIMEOUT_SECONDS = 2
SOCKET_TIMEOUT_SECONDS = 5

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
    models: list[str] = []
    """The models the process serves (`VERBATIM_WORKER_MODELS`)."""
    loaded: list[str] = []
    """The models it holds loaded now."""

    @field_validator("models", "loaded", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return [name for name in value.split(",") if name] if isinstance(value, str) else value


def worker_key(worker_id: str, group: Group = TRANSCRIPTION) -> str:
    return f"{group.prefix}{worker_id}"


def beat_client(url: str) -> redis.Redis:
    """A Redis connection for a beat thread, with short timeouts."""
    return sync_client(url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                       socket_timeout=SOCKET_TIMEOUT_SECONDS)


class Heartbeats:
    """Publish, read and withdraw the heartbeats of one `group` of workers (synchronous,
    thread-safe): transcription workers unless told otherwise."""

    def __init__(self, client: redis.Redis, group: Group = TRANSCRIPTION) -> None:
        self.redis = client
        self.group = group
        self.workers_key = group.key
        self._beat = client.register_script(_BEAT)
        self._live = client.register_script(_LIVE)

    def beat(self, worker_id: str, timeout_seconds: float, **fields: Any) -> None:
        """Record that `worker_id` is alive with these fields, for `timeout_seconds`."""
        pairs = [str(item) for pair in fields.items() for item in pair]
        args = [worker_id, str(int(timeout_seconds * 1000)), "id", worker_id, *pairs]
        self._beat(keys=[worker_key(worker_id, self.group), self.workers_key], args=args)

    def withdraw(self, worker_id: str) -> None:
        """Forget `worker_id` at once (a clean shutdown)."""
        with self.redis.pipeline() as pipe:
            pipe.delete(worker_key(worker_id, self.group))
            pipe.zrem(self.workers_key, worker_id)
            pipe.execute()

    def live_ids(self, timeout_seconds: float) -> set[str]:
        """The ids of the workers whose last heartbeat is at most `timeout_seconds` old."""
        ids = self._live(keys=[self.workers_key], args=[int(timeout_seconds * 1000)])
        return {worker_id.decode() for worker_id in ids}

    def live(self, timeout_seconds: float) -> list[WorkerBeat]:
        """Workers whose last heartbeat is at most `timeout_seconds` old, by id."""
        ids = self._live(keys=[self.workers_key], args=[int(timeout_seconds * 1000)])
        with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.hgetall(worker_key(worker_id.decode(), self.group))
            rows = pipe.execute()
        # A hash may have expired since the range read: that worker is gone.
        return sorted((_parse(row) for row in rows if row), key=lambda w: w.id)


def serving(workers: list[WorkerBeat]) -> dict[str, list[WorkerBeat]]:
    """The live workers by the model they serve."""
    by_model: dict[str, list[WorkerBeat]] = {}
    for worker in workers:
        for model in worker.models or [worker.model]:
            by_model.setdefault(model, []).append(worker)
    return by_model


def _parse(row: dict[bytes, bytes]) -> WorkerBeat:
    fields = {name.decode(): value.decode() for name, value in row.items()}
    seen = datetime.fromtimestamp(int(fields.pop("last_seen_ms")) / 1000, UTC)
    return WorkerBeat.model_validate(fields | {"last_seen": seen})


def beat_until(
    beats: Heartbeats, worker_id: str, settings: Settings, fields: Callable[[], dict[str, Any]],
    after: Callable[[], object], running: Callable[[], bool], wait: Callable[[float], object],
) -> None:
    """Beat as `worker_id` with `fields()` every `heartbeat_interval_seconds` while `running()`,
    calling `after` (the reapers) after each beat; a Redis outage is logged once, not once per
    beat, and the next beat tries again."""
    failing = False
    while running():
        try:
            beats.beat(worker_id, settings.heartbeat_timeout_seconds, **fields())
            after()
            failing = False
        except redis.RedisError as exc:
            if not failing:
                log.warning("heartbeat failed: %s", exc)
            failing = True
        wait(settings.heartbeat_interval_seconds)


def withdraw_quietly(beats: Heartbeats, worker_id: str) -> None:
    """Withdraw `worker_id`'s beat on a clean exit; if Redis is away, it expires on its own."""
    try:
        beats.withdraw(worker_id)
    except redis.RedisError as exc:
        log.warning("heartbeat not withdrawn (it expires on its own): %s", exc)
