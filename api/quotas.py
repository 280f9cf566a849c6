"""Per-key limits checked before an upload is read: the job-creation rate, active jobs and
whether the day's audio is already spent. The rate also counts voice enrolments (`POST
/v1/speakers`, OpenAI's `known_speaker_references[]`): each has a worker embed a clip.

The rate is counted by the `limits` library in a moving window in Redis (its Lua scripts make
each hit atomic), so every API replica shares one count per key and no replica can let a burst
through between two others. The active-job count checked here is only an early refusal that
saves a client its upload; the binding check is made again, atomically with the job's creation,
in `shared/state/jobs.py` (as is the audio-per-day quota, which needs the recording's duration and
is then charged as the audio is decoded: `shared/state/allowance.py`).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from limits import RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter

from shared.errors import QuotaExceeded, RateLimited, TooManyActiveJobs
from shared.redis_connect import rate_storage
from shared.state.allowance import AudioAllowance
from shared.state.jobs import ACTIVE_RETRY_SECONDS, JobStore, seconds_to_midnight
from shared.state.keys import ApiKey

NAMESPACE = "verbatim-jobs"


class Quotas:
    """The checks made when a key asks to create a job (synchronous, thread-safe)."""

    def __init__(self, redis_url: str, store: JobStore) -> None:
        self.storage = rate_storage(redis_url, key_prefix="verbatim:rate")
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.store = store
        self.allowance = AudioAllowance(store.redis)

    def admit(self, key: ApiKey | None) -> None:
        """Count one job creation of `key`; raise `RateLimited`, `TooManyActiveJobs` or
        `QuotaExceeded` if it is over its limits. Nothing is checked while auth is off (`key`
        None)."""
        if key is None:
            return
        self.pace(key)
        limits = key.limits
        if limits.max_active_jobs and self.store.active_count(key.id) >= limits.max_active_jobs:
            raise TooManyActiveJobs(
                f"This key already has {limits.max_active_jobs} jobs queued or processing; "
                "wait for one to finish.", ACTIVE_RETRY_SECONDS)
        if self.allowance.spent(key):
            raise QuotaExceeded(
                f"This key may transcribe {limits.max_audio_hours_per_day:g} hours of audio a "
                "day (UTC), and today's are used.", seconds_to_midnight(datetime.now(UTC)))

    def pace(self, key: ApiKey | None, cost: int = 1) -> None:
        """Count `cost` requests of `key` that make a worker work (a job, a voice enrolled:
        one count for both); raise `RateLimited` when they do not fit in its rate."""
        if key is None or not key.limits.rate_per_minute or cost < 1:
            return
        per_minute = key.limits.rate_per_minute
        item = RateLimitItemPerMinute(per_minute, namespace=NAMESPACE)
        if not self.limiter.hit(item, key.id, cost=cost):
            reset = self.limiter.get_window_stats(item, key.id).reset_time
            raise RateLimited(
                f"This key may create {per_minute} jobs (or voice enrolments) a minute.",
                math.ceil(reset - time.time()),
            )

    def close(self) -> None:
        self.storage.storage.close()
