"""The claim of one media URL fetch: its attempt, its holder, and its key's share of fetches.

A fetch starts only by claiming the job (`FetchClaims.claim`, one Lua script): the job must
still be `fetching`, its message must not be of an older generation (a requeued fetch's old
message is skipped), and the job's key must hold fewer than `fetches_per_key` fetches on every
I/O worker together (the set `verbatim:owner:{key}:fetching`), so that one key with many slow
URLs never holds every fetch thread (issue 26). A claimed fetch counts an attempt and names
its I/O worker (`worker`, `started_at`), as a transcription does (the attempts are
`fetch_attempts`, apart from the transcription's), so that the reaper
(`shared/state/requeue.py`) fetches it again should that worker die. A fetch of a gone worker or
a job no longer fetching leaves its key's set at the next claim.
"""

from __future__ import annotations

import json

from shared.schemas import JobStatus
from shared.state.jobs import OWNER_PREFIX, UNOWNED, JobStore, utcnow
from shared.state.requeue import IO_RECEIVED_KEY

GONE = -1  # the job is no longer fetching (deleted, ended, or fetched already)
STALE = -2  # the message is of an older generation than the job
BUSY = -3  # the job's key holds its share of fetches: try again later

_FETCHING = json.dumps(JobStatus.fetching)

# KEYS: job, received marks, the key's fetching set. ARGV: job id, the message's generation,
# the holder (JSON), the start (JSON), the key's share, the job key prefix. The attempt's
# number, or GONE, STALE or BUSY.
_CLAIM = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[7] then return -1 end
local generation = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if generation > tonumber(ARGV[2]) then return -2 end
for _, other in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if other ~= ARGV[1] then
    local held = redis.call('HMGET', ARGV[6] .. other, 'status', 'worker')
    if held[1] ~= ARGV[7] or not held[2] then redis.call('SREM', KEYS[3], other) end
  end
end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0
    and redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[5]) then
  return -3
end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'worker', ARGV[3], 'started_at', ARGV[4])
return redis.call('HINCRBY', KEYS[1], 'fetch_attempts', 1)
"""

# KEYS: job, the key's fetching set. ARGV: job id, the holder (JSON). The fetch is over: its
# share is free, and the job no longer names the I/O worker (unless a transcription's worker
# has named itself meanwhile).
_RELEASE = """
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'worker') == ARGV[2] then redis.call('HDEL', KEYS[1], 'worker') end
return 1
"""


def share_key(owner: str | None) -> str:
    return f"{OWNER_PREFIX}{owner or UNOWNED}:fetching"


class FetchClaims:
    """Claims and releases of media URL fetches (synchronous, thread-safe)."""

    def __init__(self, store: JobStore, share: int) -> None:
        self.store, self.share = store, share
        self._claim = store.redis.register_script(_CLAIM)
        self._release = store.redis.register_script(_RELEASE)

    def claim(self, job_id: str, generation: int, holder: str) -> int:
        """Claim the job's fetch for `holder`: the attempt's number, or GONE, STALE or BUSY."""
        keys = [self.store.job_key(job_id), IO_RECEIVED_KEY,
                share_key(self.store.owner(job_id))]
        args: list[str | int] = [job_id, generation, json.dumps(holder),
                                 json.dumps(utcnow().isoformat()), self.share,
                                 self.store.job_key(""), _FETCHING]
        return int(self._claim(keys=keys, args=args))

    def release(self, job_id: str, holder: str) -> None:
        keys = [self.store.job_key(job_id), share_key(self.store.owner(job_id))]
        self._release(keys=keys, args=[job_id, json.dumps(holder)])
