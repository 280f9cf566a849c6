"""The Redis job store: the single source of truth for job state and transcripts.

A job is a Redis hash `verbatim:job:{id}` whose fields hold JSON values; its transcript is a
string `verbatim:transcript:{id}`. Writes from workers go through Lua scripts that act only
while the record exists, so a job deleted mid-run is never brought back by a late write.

Each status has an index, the sorted set `verbatim:jobs:{status}` of job ids scored by when the
record expires (in ms; `+inf` until the job ends), kept in step by the same scripts that change the
status; counting jobs by status is then a few ZCARDs, with no SCAN of the keyspace.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from shared.errors import JobNotFound, VerbatimError
from shared.schemas import ErrorInfo, Job, JobOptions, JobStatus, Transcript

_ID = re.compile(r"^[0-9a-f]{32}$")
# Jobs whose message a worker holds but has not started (`shared/deliveries.py`).
RECEIVED_KEY = "verbatim:received"

# Redis's clock in milliseconds (so that hosts need not agree on theirs); index scores are
# expiry times on it.
LUA_NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# Puts job `id` in the index KEYS[first] (its new status) with `score` and takes it out of the
# indexes after it (the other statuses).
_REINDEX = """
local function reindex(first, id, score)
  redis.call('ZADD', KEYS[first], score, id)
  for i = first + 1, #KEYS do redis.call('ZREM', KEYS[i], id) end
end
"""

# KEYS: job, then the status indexes when the status changes. ARGV: id, field/value pairs.
# The score is the record's expiry (`+inf` while it has none), so that a status written to a
# record that already expires still leaves the index when the record does.
_UPDATE_IF_EXISTS = LUA_NOW_MS + _REINDEX + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if #KEYS > 1 then
  local ttl = redis.call('PTTL', KEYS[1])
  reindex(2, ARGV[1], ttl > 0 and now_ms() + ttl or '+inf')
end
return 1
"""

# KEYS: job, transcript, status indexes. ARGV: ttl, transcript json ('' for none), id, then
# field/value pairs. The index score is the record's expiry time. Expired ids leave the index
# here too, so it stays bounded where nothing scrapes the metrics.
_FINISH_IF_EXISTS = LUA_NOW_MS + _REINDEX + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
-- A job's own `retention_seconds` (issue 13) shortens the server's ttl.
local ttl = tonumber(ARGV[1])
local own = tonumber(redis.call('HGET', KEYS[1], 'retention_seconds') or '')
if own and own < ttl then ttl = own end
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ttl) end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ttl)
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
reindex(3, ARGV[3], now + ttl * 1000)
return 1
"""

# KEYS: the status indexes. Drops the ids of expired records, then counts what is left.
_COUNT_BY_STATUS = LUA_NOW_MS + """
local now = now_ms()
local counts = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  counts[i] = redis.call('ZCARD', key)
end
return counts
"""


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_job_id(value: str) -> bool:
    return bool(_ID.match(value))


def utcnow() -> datetime:
    return datetime.now(UTC)


def _encode(fields: dict[str, Any]) -> dict[str, str]:
    """Hash fields with JSON-encoded values."""
    return {name: json.dumps(value, default=_json_default) for name, value in fields.items()}


def _flat(fields: dict[str, Any]) -> list[str]:
    """Hash fields as the name/value argument list of a Lua HSET."""
    return [item for pair in _encode(fields).items() for item in pair]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot encode {type(value).__name__}")


class JobStore:
    """Typed access to job records and transcripts in Redis (synchronous, thread-safe)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._update = client.register_script(_UPDATE_IF_EXISTS)
        self._finish = client.register_script(_FINISH_IF_EXISTS)
        self._count = client.register_script(_COUNT_BY_STATUS)

    @classmethod
    def from_url(cls, url: str, retry_seconds: float | None = None) -> JobStore:
        """A store on `url`; with `retry_seconds`, a command that finds Redis unreachable is
        tried again for about that long (backing off to 1 s) before it raises."""
        options: dict[str, Any] = {}
        if retry_seconds is not None:
            backoff = ExponentialBackoff(cap=1.0, base=0.05)
            options["retry"] = Retry(backoff, retries=max(1, math.ceil(retry_seconds)))
        client = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30,
            **options,
        )
        return cls(client)

    @staticmethod
    def job_key(job_id: str) -> str:
        return f"verbatim:job:{job_id}"

    @staticmethod
    def transcript_key(job_id: str) -> str:
        return f"verbatim:transcript:{job_id}"

    @staticmethod
    def index_key(status: JobStatus) -> str:
        return f"verbatim:jobs:{status}"

    @classmethod
    def _index_keys(cls, status: JobStatus) -> list[str]:
        """The new status's index first, then the others (see `_REINDEX`)."""
        return [cls.index_key(status)] + [cls.index_key(s) for s in JobStatus if s != status]

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def create(
        self, job_id: str, filename: str, options: JobOptions, duration: float | None,
        upload: Path, extra: dict[str, Any] | None = None,
        status: JobStatus = JobStatus.queued,
    ) -> Job:
        """`extra`: more `Job` fields (`shared/extras.py`)."""
        job = Job(
            id=job_id,
            status=status,
            progress=0.0,
            created_at=utcnow(),
            filename=filename,
            options=options,
            audio_duration=duration,
            **(extra or {}),
        )
        record = job.model_dump(mode="json", exclude_none=True) | {"upload_path": str(upload)}
        with self.redis.pipeline() as pipe:  # MULTI: the record and its index entry together
            pipe.hset(self.job_key(job_id), mapping=_encode(record))  # type: ignore[arg-type]
            pipe.zadd(self.index_key(status), {job_id: "+inf"})
            pipe.execute()
        return job

    def _raw(self, job_id: str) -> dict[str, Any] | None:
        if not is_job_id(job_id):
            return None
        raw: dict[bytes, bytes] = self.redis.hgetall(self.job_key(job_id))  # type: ignore[assignment]
        return {k.decode(): json.loads(v) for k, v in raw.items()} if raw else None

    def get(self, job_id: str) -> Job | None:
        raw = self._raw(job_id)
        return Job.model_validate(raw) if raw else None

    def get_with_upload(self, job_id: str) -> tuple[Job, Path] | None:
        """The job and its upload's path in one read; None when the job does not exist."""
        raw = self._raw(job_id)
        if not raw or "upload_path" not in raw:
            return None
        return Job.model_validate(raw), Path(raw["upload_path"])

    def require(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise JobNotFound(f"No job with id {job_id!r}.")
        return job

    def upload_path(self, job_id: str) -> Path | None:
        raw = self._raw(job_id)
        return Path(raw["upload_path"]) if raw and "upload_path" in raw else None

    def update(self, job_id: str, **fields: Any) -> bool:
        """Set fields on an existing job; False when the job no longer exists."""
        keys = [self.job_key(job_id)]
        if "status" in fields:
            keys += self._index_keys(JobStatus(fields["status"]))
        return bool(self._update(keys=keys, args=[job_id, *_flat(fields)]))

    def complete(self, job_id: str, transcript: Transcript, ttl: int) -> bool:
        fields = {
            "status": JobStatus.completed,
            "progress": 1.0,
            "finished_at": utcnow(),
            "language": transcript.language,
            "language_probability": transcript.language_probability,
        }
        return self._finish_job(job_id, ttl, transcript.model_dump_json(), fields)

    def fail(self, job_id: str, error: VerbatimError, ttl: int) -> bool:
        info = ErrorInfo(code=error.code, message=error.message)
        fields = {"status": JobStatus.failed, "finished_at": utcnow(), "error": info}
        return self._finish_job(job_id, ttl, "", fields)

    def _finish_job(self, job_id: str, ttl: int, transcript: str, fields: dict[str, Any]) -> bool:
        keys = [self.job_key(job_id), self.transcript_key(job_id),
                *self._index_keys(fields["status"])]
        return bool(self._finish(keys=keys, args=[str(ttl), transcript, job_id, *_flat(fields)]))

    def get_transcript(self, job_id: str) -> Transcript | None:
        raw = self.redis.get(self.transcript_key(job_id))
        return Transcript.model_validate_json(raw) if raw else None

    def delete(self, job_id: str) -> bool:
        """Remove the record and transcript; False when there was no such job."""
        with self.redis.pipeline() as pipe:
            pipe.delete(self.job_key(job_id), self.transcript_key(job_id))
            pipe.hdel(RECEIVED_KEY, job_id)
            for status in JobStatus:
                pipe.zrem(self.index_key(status), job_id)
            removed = pipe.execute()[0]
        return bool(removed)

    def count_by_status(self) -> dict[JobStatus, int]:
        """How many job records exist in each status."""
        counts = self._count(keys=[self.index_key(s) for s in JobStatus])
        return dict(zip(JobStatus, map(int, counts), strict=True))
