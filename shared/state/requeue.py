"""Who holds a job's message, so that no crash strands it: received marks and generations.

A worker holds a job's message from the moment its main process receives it, not only while a
pool process runs it (a worker can hold more than its pool can start: after a Redis restart
Celery keeps its prefetch count, and `--prefetch-multiplier` can be raised). If the whole worker
dies, kombu's Redis transport gives those messages back only after the visibility timeout, hours
later. So:

- When a worker receives a message, it marks the job as received by its node (its hostname and
  main process id) in the hash `verbatim:received` (`mark_received`); when a pool process starts
  the job, the mark goes (`begin_attempt`). Pool processes name their node in their heartbeats.
- A live worker's reaper (`worker/reaper.py`) puts back on the queue, at the highest priority,
  each job received by a node none of whose processes beat any more, and each job processing on
  a process that stopped beating.
- The I/O workers (`courier/`) hold media URL fetches the same way: a `Deliveries` over the
  `fetching` status, with marks of its own (`IO_RECEIVED_KEY`), its reaper (`requeue_orphans`,
  shared by both kinds) run after each I/O worker's beat.
- Every such requeue raises the job's `generation` and sends it in the new message's header. A
  message of an older generation, when Redis finally hands it out again, is stale: the task
  acknowledges it and does nothing, so a requeued job runs once more, not twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import redis

from shared.schemas import JobStatus
from shared.state.jobs import (
    LUA_NOW_MS,
    LUA_TRACK_QUEUED,
    RECEIVED_KEY,
    JobStore,
    _flat,
    utcnow,
)

log = logging.getLogger(__name__)

# Media URL fetches whose message an I/O worker holds but has not started.
IO_RECEIVED_KEY = "verbatim:received:io"

STALE = -2  # `begin_attempt`: the message is of an older generation than the job
# Deliveries of one job that a media store outage may give back (`give_back_attempt`): with the
# worker's wait for the store between them, outages of an hour and more.
GIVEN_BACK_ATTEMPTS = 60

# KEYS: job, received hash. ARGV: id, node, the waiting status (JSON). Marks only a job still
# waiting to run.
_MARK_RECEIVED = LUA_NOW_MS + """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. string.format('%d', now_ms()))
return 1
"""

# KEYS: job, received hash. ARGV: id, the message's generation. -1: no such job; STALE; else
# the attempt's number.
_BEGIN_ATTEMPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local generation = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if generation > tonumber(ARGV[2]) then return -2 end
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
"""

# KEYS: job. ARGV: the most attempts that may be given back. 1 when one was given back.
_GIVE_BACK_ATTEMPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[1], 'attempts_given_back', 1) > tonumber(ARGV[1]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
return 1
"""

# The job (KEYS[1], id ARGV[1]) back to waiting: the field/value pairs from ARGV[first] on set,
# no worker, in the waiting index KEYS[waiting] and out of the later ones; its new generation.
_LUA_PUT_BACK = LUA_TRACK_QUEUED + """
local function put_back(waiting, first)
  redis.call('HSET', KEYS[1], unpack(ARGV, first))
  track_queued(KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[1], 'worker')
  redis.call('ZADD', KEYS[waiting], '+inf', ARGV[1])
  for i = waiting + 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
  return redis.call('HINCRBY', KEYS[1], 'generation', 1)
end
"""

# KEYS: job, then the status indexes (the waiting one first). ARGV: id, the worker (JSON) the
# job must still be marked as running on, the running status (JSON), then field/value pairs.
# Compare-and-set: of several workers that find the same orphan, one puts it back (and, when it
# goes back to `queued`, into its owner's queue). Returns the new generation, or 0.
_REQUEUE_IF_RUN_BY = _LUA_PUT_BACK + """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[3] then return 0 end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then return 0 end
return put_back(2, 4)
"""

# KEYS: job, received hash, then the status indexes (the waiting one first). ARGV: id, the worker
# (JSON) giving the job back, its message's generation, the running status (JSON), the waiting
# status (JSON), then field/value pairs. Puts back a job that message still holds: running on
# that worker, or still waiting (its message taken but not started). Returns the new
# generation, or 0 (a newer message was sent, another worker runs it, it ended or is gone).
_REQUEUE_IF_HELD = _LUA_PUT_BACK + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'generation') or '0') > tonumber(ARGV[3]) then
  return 0
end
local status = redis.call('HGET', KEYS[1], 'status')
if status == ARGV[4] then
  if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then return 0 end
elseif status ~= ARGV[5] then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
return put_back(3, 6)
"""

# KEYS: job, received hash. ARGV: id, the mark it must still carry, the waiting status (JSON).
# Drops the mark; returns the new generation when the job still waits to run, else 0.
_REQUEUE_IF_RECEIVED_BY = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[3] then return 0 end
return redis.call('HINCRBY', KEYS[1], 'generation', 1)
"""


class Deliveries:
    """Received marks, attempts and requeues of jobs (synchronous, thread-safe): of
    transcriptions by default, of media URL fetches with `Deliveries.of_fetches`."""

    def __init__(self, store: JobStore, running: JobStatus = JobStatus.processing,
                 waiting: JobStatus = JobStatus.queued, received_key: str = RECEIVED_KEY) -> None:
        self.store = store
        self.running_status, self.waiting_status = running, waiting
        self.received_key = received_key
        client = store.redis
        self._mark = client.register_script(_MARK_RECEIVED)
        self._begin = client.register_script(_BEGIN_ATTEMPT)
        self._give_back = client.register_script(_GIVE_BACK_ATTEMPT)
        self._requeue_running = client.register_script(_REQUEUE_IF_RUN_BY)
        self._requeue_received = client.register_script(_REQUEUE_IF_RECEIVED_BY)
        self._requeue_held = client.register_script(_REQUEUE_IF_HELD)

    @classmethod
    def of_fetches(cls, store: JobStore) -> Deliveries:
        """The I/O workers' fetches: running and waiting alike while `fetching`."""
        return cls(store, JobStatus.fetching, JobStatus.fetching, IO_RECEIVED_KEY)

    @property
    def redis(self) -> redis.Redis:
        return self.store.redis

    def mark_received(self, job_id: str, node: str) -> bool:
        """Note that `node` holds the job's message; False when the job is not waiting."""
        return bool(self._mark(keys=[self.store.job_key(job_id), self.received_key],
                               args=[job_id, node, json.dumps(self.waiting_status)]))

    def begin_attempt(self, job_id: str, generation: int) -> int | None:
        """Count one more delivery of the job; None when it no longer exists, `STALE` when
        the message belongs to an older generation."""
        count = int(self._begin(keys=[self.store.job_key(job_id), RECEIVED_KEY],
                                args=[job_id, generation]))
        return None if count == -1 else count

    def give_back_attempt(self, job_id: str, most: int = GIVEN_BACK_ATTEMPTS) -> bool:
        """Uncount the delivery that just began: it ended through no fault of the job (the
        media store was down). At most `most` times a job, so a fault that only looks like an
        outage still ends in `max_attempts`."""
        return bool(self._give_back(keys=[self.store.job_key(job_id)], args=[most]))

    def received(self) -> list[tuple[str, str, datetime, str]]:
        """(job id, node, received at, mark) of every job held but not started."""
        marks: dict[bytes, bytes] = self.redis.hgetall(self.received_key)  # type: ignore[assignment]
        found = []
        for job_id, mark in marks.items():
            node, _, at_ms = mark.decode().rpartition("|")
            at = datetime.fromtimestamp(int(at_ms) / 1000, UTC)
            found.append((job_id.decode(), node, at, mark.decode()))
        return found

    def running(self) -> list[tuple[str, str, datetime]]:
        """(job id, worker, started at) of every job marked running by a worker."""
        members: list[bytes] = self.redis.zrange(  # type: ignore[assignment]
            self.store.index_key(self.running_status), 0, -1
        )
        ids = [member.decode() for member in members]
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(self.store.job_key(job_id), ["worker", "started_at"])
            rows = pipe.execute()
        return [
            (job_id, json.loads(worker), datetime.fromisoformat(json.loads(started)))
            for job_id, (worker, started) in zip(ids, rows, strict=True)
            if worker is not None and started is not None
        ]

    def requeue_if_run_by(self, job_id: str, worker: str) -> int:
        """Put a job back to queued if it is still marked processing on `worker`; the new
        generation, or 0 when it was not."""
        keys = [self.store.job_key(job_id), *self.store._index_keys(self.waiting_status)]
        fields = {"status": self.waiting_status, "progress": 0.0}
        args = [job_id, json.dumps(worker), json.dumps(self.running_status), *_flat(fields)]
        return int(self._requeue_running(keys=keys, args=args))

    def requeue_if_held(self, job_id: str, worker: str, generation: int) -> int:
        """Put back to queued a job that `worker`, by a message of `generation`, runs or has yet
        to start; the new generation, or 0 when the job is not so held (see `_REQUEUE_IF_HELD`).
        The worker then sends the new message itself (`worker/job_state.py`)."""
        keys = [self.store.job_key(job_id), self.received_key,
                *self.store._index_keys(self.waiting_status)]
        fields = {"status": self.waiting_status, "progress": 0.0}
        args: list[str | int] = [job_id, json.dumps(worker), generation,
                                 json.dumps(self.running_status),
                                 json.dumps(self.waiting_status), *_flat(fields)]
        return int(self._requeue_held(keys=keys, args=args))

    def requeue_if_received_by(self, job_id: str, mark: str) -> int:
        """Take back the message of a job still waiting, held under `mark`; the new
        generation, or 0 when the job no longer waits (the mark is dropped either way)."""
        keys = [self.store.job_key(job_id), self.received_key]
        args = [job_id, mark, json.dumps(self.waiting_status)]
        return int(self._requeue_received(keys=keys, args=args))


def requeue_orphans(
    deliveries: Deliveries, live: set[str], live_nodes: set[str],
    send: Callable[[str, int], object], timeout_seconds: float,
) -> list[str]:
    """Requeue the jobs held by processes not in `live` and nodes not in `live_nodes`, each
    through `send(job_id, generation)`; returns their ids. A job is left alone until its start
    or receipt is `timeout_seconds` old (one begun just before its worker's first beat)."""
    cutoff = utcnow() - timedelta(seconds=timeout_seconds)
    requeued = []
    for job_id, worker, started in deliveries.running():
        if worker in live or started > cutoff:
            continue
        if generation := deliveries.requeue_if_run_by(job_id, worker):
            # Marked waiting with no message would strand it: on failure it is marked as
            # before, so that the next check tries again.
            undo: Callable[[], object] = partial(
                deliveries.store.update, job_id, status=deliveries.running_status, worker=worker)
            _send(send, job_id, generation, undo, worker)
            requeued.append(job_id)
    for job_id, node, received, mark in deliveries.received():
        if node in live_nodes or received > cutoff:
            continue
        if generation := deliveries.requeue_if_received_by(job_id, mark):
            undo = partial(deliveries.redis.hset, deliveries.received_key, job_id, mark)
            _send(send, job_id, generation, undo, f"{node} (received, not started)")
            requeued.append(job_id)
    return requeued


def _send(send: Callable[[str, int], object], job_id: str, generation: int,
          undo: Callable[[], object], gone: str) -> None:
    try:
        send(job_id, generation)
    except Exception:
        undo()
        raise
    log.warning("job requeued: the worker holding it is gone",
                extra={"event": "requeued", "job_id": job_id, "gone_worker": gone})
