"""A key's daily audio, counted as it is decoded on every path (issue 26, item 2).

The count is `verbatim:owner:{key id}:audio:{UTC day}` (seconds, `INCRBYFLOAT`), and the limit
the key's `max_audio_hours_per_day`, read from its record in the same script, so API, workers,
live worker and I/O worker need only a job's id to charge it:

- at creation the declared or probed duration is reserved (`shared/state/jobs.py`, `_CREATE`), and a
  key whose day is already spent is refused, whatever the job's length (a URL or live session,
  whose length is unknown then, reserves 0); the I/O worker reserves a URL's probed duration
  once it has the media (`reserve`), before any transcription;
- whoever decodes the audio then reports how far it has decoded (`charge`): the batch worker per
  decoded block, each window of a spread recording its own audio, the live worker per received
  chunk. Only what passes the job's reservation is added to the count, and a position already
  charged is never charged again (a redelivered job decodes from the start), so nothing is
  counted twice. When that addition takes the day past the limit the caller stops with
  `quota_exceeded`, keeping what it decoded.

The job's record keeps the accounting: `quota_reserved` (seconds reserved), `quota_decoded`
(seconds charged in all) and `quota_decoded:{part}` (how far each part got: `-` for a whole
recording, the window index for a spread one). Jobs made while auth is off have no owner and
no quota: they are not counted.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from shared.errors import QuotaExceeded
from shared.state.jobs import AUDIO_DAY_TTL_SECONDS, OWNER_PREFIX, JobStore, seconds_to_midnight
from shared.state.keys import ApiKey, KeyStore

WHOLE = "-"  # the part of a recording decoded in one piece

# The owner of KEYS[1] (nil when auth was off) and its limit in seconds a day (0: none), from
# the key's record under ARGV[1] .. id.
_OWNER_LIMIT = """
local function owner_limit()
  local owner = redis.call('HGET', KEYS[1], 'owner')
  if not owner then return nil, 0 end
  owner = cjson.decode(owner)
  local raw = redis.call('HGET', ARGV[1] .. owner, 'limits')
  local limits = raw and cjson.decode(raw) or {}
  local hours = limits['max_audio_hours_per_day']
  return owner, type(hours) == 'number' and hours * 3600 or 0
end
local function count_key(owner)
  return '""" + OWNER_PREFIX + """' .. owner .. ':audio:' .. ARGV[2]
end
"""

# KEYS: job. ARGV: key record prefix, day, day count's ttl, part, seconds decoded in it. Returns
# 1 when this charge took the owner's day past its limit, else 0.
_CHARGE = _OWNER_LIMIT + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local owner, limit = owner_limit()
if not owner then return 0 end
local field = 'quota_decoded:' .. ARGV[4]
local before = tonumber(redis.call('HGET', KEYS[1], field) or '0')
local now = tonumber(ARGV[5])
if now <= before then return 0 end
redis.call('HSET', KEYS[1], field, ARGV[5])
local reserved = tonumber(redis.call('HGET', KEYS[1], 'quota_reserved') or '0')
local total = tonumber(redis.call('HINCRBYFLOAT', KEYS[1], 'quota_decoded', now - before))
local extra = math.max(0, total - reserved) - math.max(0, total - (now - before) - reserved)
if extra <= 0 then return 0 end
local key = count_key(owner)
local used = tonumber(redis.call('INCRBYFLOAT', key, extra))
redis.call('EXPIRE', key, ARGV[3])
return (limit > 0 and used > limit) and 1 or 0
"""

# KEYS: job. ARGV: key record prefix, day, day count's ttl, seconds to hold reserved. Returns 1
# (refused: nothing reserved) when the owner's day cannot hold them, else 0.
_RESERVE = _OWNER_LIMIT + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local owner, limit = owner_limit()
if not owner then return 0 end
local add = tonumber(ARGV[4]) - tonumber(redis.call('HGET', KEYS[1], 'quota_reserved') or '0')
if add <= 0 then return 0 end
local key = count_key(owner)
if limit > 0 and tonumber(redis.call('GET', key) or '0') + add > limit then return 1 end
redis.call('INCRBYFLOAT', key, add)
redis.call('EXPIRE', key, ARGV[3])
redis.call('HSET', KEYS[1], 'quota_reserved', ARGV[4])
return 0
"""


class AudioAllowance:
    """Reserve and charge the audio of a job against its key's day (synchronous, thread-safe)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._charge = client.register_script(_CHARGE)
        self._reserve = client.register_script(_RESERVE)

    def spent(self, key: ApiKey) -> bool:
        """Whether the key has used all of today's audio (a quick refusal before an upload is
        read; the creation script checks again, atomically)."""
        hours = key.limits.max_audio_hours_per_day
        if not hours:
            return False
        now = datetime.now(UTC)
        used = self.redis.get(JobStore.owner_key(key.id, f"audio:{now:%Y-%m-%d}"))
        return float(used or 0) >= hours * 3600  # type: ignore[arg-type]

    def charge(self, job_id: str, seconds: float, part: str = WHOLE) -> None:
        """Note that `part` of the job has been decoded up to `seconds`; raise `QuotaExceeded`
        when what this adds takes the key's day past its limit."""
        now = datetime.now(UTC)
        if int(self._charge(keys=[JobStore.job_key(job_id)],
                            args=[*_day_args(now), part, f"{seconds:.3f}"])):
            raise QuotaExceeded(
                "This key's audio for the day (UTC) ran out while the recording was decoded; "
                "what was decoded until then is kept.", seconds_to_midnight(now))

    def reserve(self, job_id: str, seconds: float) -> None:
        """Hold `seconds` of the key's day for the job (its probed duration, once known); raise
        `QuotaExceeded` when the day cannot hold them."""
        now = datetime.now(UTC)
        if int(self._reserve(keys=[JobStore.job_key(job_id)],
                             args=[*_day_args(now), f"{seconds:.3f}"])):
            raise QuotaExceeded(
                "This key may not transcribe this much more audio today (UTC); the recording "
                f"lasts {seconds:.0f} s.", seconds_to_midnight(now))


def _day_args(now: datetime) -> list[str | int]:
    return [KeyStore.record_key(""), now.strftime("%Y-%m-%d"), AUDIO_DAY_TTL_SECONDS]
