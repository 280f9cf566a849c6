"""The Redis side of a recording spread over workers (`worker/spread.py`): its plan, each
window's result and decoded seconds, and the join, in Lua scripts that act atomically.

For job `id`:
- `verbatim:spread:{id}`: the plan, a hash: `plan` (the attempt of the job's task that made it:
  a window message of another plan is stale), `start:{i}` (window i's first sample, written
  before its message is sent), `seconds` (the recording's length: probed, then decoded; a
  `diarize=channels` job's, every channel's), `channels` (a `channels` job's count of them) and
  `channel:{i}` (window i's channel, written with its start),
  `detection` (JSON, the language detected once for all windows, or `null`), and, once the
  whole recording is cut and every window message sent, `windows` (their count) and
  `dispatched` (1); `attempts:{i}` (deliveries of window i);
- `verbatim:spread:{id}:results`: window index -> JSON `{"segments": [...], "heard": {...}}`;
- `verbatim:spread:{id}:decoded`: window index -> seconds of it decoded so far (never less);
- `verbatim:spread:{id}:running`: window index -> `{worker}|{ms}` of the process running it,
  or, from the moment a worker holds its message until a process begins it, of that worker's
  main process (`node`);
- `verbatim:spread:jobs`: the ids of the jobs with a plan (what the reaper looks through).

The job store stays the single source of truth: the join is the window whose result makes the
results hash as long as the plan, found in the same script that stores it, or, where every
window was done before the cutting ended, the script that ends the plan; so exactly one of them
stitches, and no Celery result backend is needed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis

from shared.state.jobs import LUA_NOW_MS, JobStore

JOBS_KEY = "verbatim:spread:jobs"
GONE, STALE, DONE = -1, -3, -2  # `begin_window`: job gone or ended; other plan; already done

# The statuses after which no window runs (JSON-encoded, as the job hash holds them).
_ENDED = """
local function ended(status)
  return not status or status == '"completed"' or status == '"failed"'
end
"""

# KEYS: job, plan, results, running. ARGV: index, plan, worker. GONE, STALE, DONE, else the
# window's attempt (its running mark set).
_BEGIN_WINDOW = LUA_NOW_MS + _ENDED + """
if ended(redis.call('HGET', KEYS[1], 'status')) then return -1 end
if redis.call('HGET', KEYS[2], 'plan') ~= ARGV[2] then return -3 end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return -2 end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3] .. '|' .. string.format('%d', now_ms()))
return redis.call('HINCRBY', KEYS[2], 'attempts:' .. ARGV[1], 1)
"""

# KEYS: job, decoded, plan. ARGV: index, seconds decoded in it. Raises the window's count (never
# lowers it: a redelivered window starts again from 0), then the job's progress to the sum over
# windows; returns that progress as text, or '' when the job is gone or ended.
_PROGRESS = _ENDED + """
if ended(redis.call('HGET', KEYS[1], 'status')) then return '' end
local seconds = tonumber(ARGV[2])
if seconds > tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
local total = 0
for _, value in ipairs(redis.call('HVALS', KEYS[2])) do total = total + tonumber(value) end
local fraction = math.min(total / tonumber(redis.call('HGET', KEYS[3], 'seconds')), 1)
if fraction > tonumber(redis.call('HGET', KEYS[1], 'progress') or '0') then
  redis.call('HSET', KEYS[1], 'progress', string.format('%.4f', fraction))
end
return string.format('%.4f', fraction)
"""

# KEYS: job, plan, results, running. ARGV: index, result. Stores the window's result; 1 when it
# was the last one missing (the caller stitches), 0 when others are, -1 when the job is over.
_JOIN = _ENDED + """
if ended(redis.call('HGET', KEYS[1], 'status')) then return -1 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[1])
return redis.call('HLEN', KEYS[3]) == tonumber(redis.call('HGET', KEYS[2], 'windows')) and 1 or 0
"""

# KEYS: job, plan, results. ARGV: windows, seconds. Ends the plan: the window count and the
# decoded length, marked dispatched, and the job taken off its planning process (`worker`), so
# that the reaper requeues the windows of a dead process, not the whole job. 1 when every
# window already has its result (the caller stitches), 0 when not, -1 when the job is over.
_FINISH = _ENDED + """
if ended(redis.call('HGET', KEYS[1], 'status')) then return -1 end
redis.call('HSET', KEYS[2], 'windows', ARGV[1], 'seconds', ARGV[2], 'dispatched', 1)
redis.call('HDEL', KEYS[1], 'worker')
return redis.call('HLEN', KEYS[3]) == tonumber(ARGV[1]) and 1 or 0
"""

# KEYS: job, plan. Marks the plan dispatched and takes the job off its planning process, as
# `_FINISH` does, for a planning task delivered again after it.
_DISPATCHED = _ENDED + """
if ended(redis.call('HGET', KEYS[1], 'status')) then return 0 end
redis.call('HSET', KEYS[2], 'dispatched', 1)
redis.call('HDEL', KEYS[1], 'worker')
return 1
"""

# KEYS: plan, running. ARGV: index, node. Marks a window as held by a worker's main process
# (`node`), unless the plan is gone or a mark is there already (a process running it).
_RECEIVED = LUA_NOW_MS + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local mark = ARGV[2] .. '|' .. string.format('%d', now_ms())
if redis.call('HSETNX', KEYS[2], ARGV[1], mark) == 0 then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""

# KEYS: running. ARGV: index, the mark it must still carry. Compare-and-delete.
_TAKE_RUNNING = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1])
"""


def plan_key(job_id: str) -> str:
    return f"verbatim:spread:{job_id}"


def _keys(job_id: str, *parts: str) -> list[str]:
    return [plan_key(job_id) + (f":{part}" if part else "") for part in parts]


class Spreads:
    """Plans, window results and the join of spread jobs (synchronous, thread-safe)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        client = store.redis
        self._begin = client.register_script(_BEGIN_WINDOW)
        self._progress = client.register_script(_PROGRESS)
        self._join = client.register_script(_JOIN)
        self._dispatched = client.register_script(_DISPATCHED)
        self._finish = client.register_script(_FINISH)
        self._take = client.register_script(_TAKE_RUNNING)
        self._received = client.register_script(_RECEIVED)

    @property
    def redis(self) -> redis.Redis:
        return self.store.redis

    def plan(self, job_id: str, plan: int, seconds: float, detection: Any, ttl: int,
             channels: int = 0) -> None:
        """Begin a new plan of a recording of about `seconds` (cut channel by channel where
        `channels`), dropping any earlier one's windows and results; its windows are added as
        they are cut (`add_window`)."""
        keys = _keys(job_id, "", "results", "decoded", "running")
        fields = {"plan": plan, "seconds": seconds, "detection": json.dumps(detection)}
        if channels:
            fields["channels"] = channels
        with self.redis.pipeline() as pipe:
            pipe.delete(*keys)
            pipe.hset(keys[0], mapping=fields)  # type: ignore[arg-type]
            for key in keys:
                pipe.expire(key, ttl)
            pipe.sadd(JOBS_KEY, job_id)
            pipe.execute()

    def add_window(self, job_id: str, index: int, start: int, channel: int | None = None
                   ) -> None:
        """Record window `index`'s first sample (and channel, where the job is cut channel by
        channel), before its message is sent."""
        fields = {f"start:{index}": start} | ({} if channel is None else
                                              {f"channel:{index}": channel})
        self.redis.hset(plan_key(job_id), mapping=fields)  # type: ignore[arg-type]

    def finish_plan(self, job_id: str, windows: int, seconds: float) -> int:
        """End the plan at `windows` windows and `seconds`: 1 when each has its result already
        (the caller stitches), 0 when not, -1 when the job is gone or ended."""
        keys = [self.store.job_key(job_id), *_keys(job_id, "", "results")]
        return int(self._finish(keys=keys, args=[windows, seconds]))

    def read_plan(self, job_id: str) -> dict[str, Any]:
        """The plan's fields; `starts` maps each window recorded so far to its first sample,
        `channel_of` to its channel (where the job is cut channel by channel)."""
        raw: dict[bytes, bytes] = self.redis.hgetall(plan_key(job_id))  # type: ignore[assignment]
        plan: dict[str, Any] = {key.decode(): value.decode() for key, value in raw.items()}
        if plan:
            plan["starts"] = {int(key[6:]): int(value) for key, value in plan.items()
                              if key.startswith("start:")}
            plan["channel_of"] = {int(key[8:]): int(value) for key, value in plan.items()
                                  if key.startswith("channel:")}
            plan["detection"] = json.loads(plan["detection"])
        return plan

    def dispatched(self, job_id: str) -> bool:
        """Whether the job's window messages were all sent."""
        return bool(self.redis.hexists(plan_key(job_id), "dispatched"))

    def mark_dispatched(self, job_id: str) -> bool:
        """False when the job is gone or ended."""
        return bool(self._dispatched(keys=[self.store.job_key(job_id), plan_key(job_id)]))

    def mark_received(self, job_id: str, index: int, node: str) -> bool:
        """Note that the worker whose main process is `node` holds window `index`'s message,
        so that it is requeued should that worker die before a process begins it; False where
        the plan is gone or the window is marked already."""
        keys = [plan_key(job_id), *_keys(job_id, "running")]
        return bool(self._received(keys=keys, args=[index, node]))

    def begin_window(self, job_id: str, plan: int, index: int, worker: str) -> int:
        """The window's attempt, or GONE, STALE, DONE (see `_BEGIN_WINDOW`)."""
        keys = [self.store.job_key(job_id), *_keys(job_id, "", "results", "running")]
        return int(self._begin(keys=keys, args=[index, plan, worker]))

    def progress(self, job_id: str, index: int, seconds: float) -> float | None:
        """The job's progress once window `index` has `seconds` decoded; None when the job is
        gone or ended."""
        keys = [self.store.job_key(job_id), *_keys(job_id, "decoded", "")]
        found = self._progress(keys=keys, args=[index, round(seconds, 3)])
        return float(found) if found else None

    def join(self, job_id: str, index: int, result: dict[str, Any]) -> int:
        """Store the window's result: 1 when every window has one, 0 when not yet, -1 when the
        job is gone or ended."""
        keys = [self.store.job_key(job_id), *_keys(job_id, "", "results", "running")]
        return int(self._join(keys=keys, args=[index, json.dumps(result)]))

    def complete(self, job_id: str) -> bool:
        """Whether every window of the plan has its result."""
        windows = self.redis.hget(plan_key(job_id), "windows")
        return windows is not None and int(windows) == self.redis.hlen(_keys(job_id, "results")[0])

    def results(self, job_id: str) -> list[dict[str, Any]]:
        """Every window's result, in window order."""
        raw: dict[bytes, bytes] = self.redis.hgetall(  # type: ignore[assignment]
            _keys(job_id, "results")[0])
        return [json.loads(raw[key]) for key in sorted(raw, key=int)]

    def running(self) -> list[tuple[str, int, int, str, datetime, str]]:
        """(job id, plan, window, worker, started at, mark) of every window being decoded or
        held (`mark_received`: the worker is then its node, the time that of its receipt)."""
        found = []
        members: set[bytes] = self.redis.smembers(JOBS_KEY)  # type: ignore[assignment]
        for member in members:
            job_id = member.decode()
            plan = self.redis.hget(plan_key(job_id), "plan")
            if plan is None:
                self.redis.srem(JOBS_KEY, job_id)  # expired
                continue
            marks: dict[bytes, bytes] = self.redis.hgetall(  # type: ignore[assignment]
                _keys(job_id, "running")[0])
            for index, mark in marks.items():
                worker, _, at_ms = mark.decode().rpartition("|")
                started = datetime.fromtimestamp(int(at_ms) / 1000, UTC)
                found.append((job_id, int(plan), int(index), worker, started, mark.decode()))
        return found

    def take_running(self, job_id: str, index: int, mark: str) -> bool:
        """Drop the window's running mark if it is still `mark` (one reaper wins)."""
        return bool(self._take(keys=_keys(job_id, "running"), args=[index, mark]))

    def stop_running(self, job_id: str, index: int) -> None:
        """Drop the window's running mark: its process gives its message back to the queue,
        so the reaper must not send it once more."""
        self.redis.hdel(_keys(job_id, "running")[0], str(index))

    def remove(self, job_id: str) -> None:
        """Forget the job's plan and results."""
        with self.redis.pipeline() as pipe:
            pipe.delete(*_keys(job_id, "", "results", "decoded", "running"))
            pipe.srem(JOBS_KEY, job_id)
            pipe.execute()
