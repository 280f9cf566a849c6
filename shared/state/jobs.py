"""The Redis job store: the single source of truth for job state and transcripts.

A job is a Redis hash `verbatim:job:{id}` whose fields hold JSON values; its transcript is a
string `verbatim:transcript:{id}`. Writes from workers go through Lua scripts that act only
while the record exists, so a job deleted mid-run is never brought back by a late write.

Each status has an index, the sorted set `verbatim:jobs:{status}` of job ids scored by when the
record expires (in ms; `+inf` until the job ends), kept in step by the same scripts that change the
status; counting jobs by status is then a few ZCARDs, with no SCAN of the keyspace.

Each owner (an API key's id; `-` for the jobs made while auth is off) has three more:
`verbatim:owner:{owner}:jobs`, its jobs newest first for `GET /v1/jobs` (see
`shared/state/listing.py`); `verbatim:owner:{owner}:active`, the set of its queued or
processing job ids, which the scripts that create, finish and delete a job keep in step (its
size is the active-job count that quotas check, so a count never drifts from the jobs that
exist); and `verbatim:owner:{owner}:queued`, its queued job ids scored by their priority, kept
in step by every script that changes a job's status (create, start, requeue, finish, delete):
its size and top score are what fair scheduling needs, so creating a job costs the same
whatever the owner's backlog. Ids whose record vanished by another way are pruned a few at a
time as jobs are created.
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
import redis.asyncio
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from shared.errors import JobNotFound, QuotaExceeded, TooManyActiveJobs, VerbatimError
from shared.priorities import LOWEST_PRIORITY, NEW_JOB_PRIORITY
from shared.redis_connect import async_client, sync_client
from shared.schemas import ErrorInfo, Job, JobOptions, JobStatus, Transcript
from shared.state.keys import ApiKey, KeyFinder, KeyLimits
from shared.state.records import json_object

_ID = re.compile(r"^[0-9a-f]{32}$")
# Jobs whose message a worker holds but has not started (`shared/state/requeue.py`).
RECEIVED_KEY = "verbatim:received"

OWNER_PREFIX = "verbatim:owner:"
UNOWNED = "-"  # the owner tag of jobs made while auth is off (key ids are hex)
# Ids of an owner's active set checked for a vanished record at each creation.
PRUNE_SAMPLE = 4

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

# Keeps job `id`'s place in its owner's queue (see the module's docstring) in step with the
# status its record `job` now holds. The owner's key is named here rather than passed: callers
# know only the job's id.
LUA_TRACK_QUEUED = """
local function track_queued(job, id)
  local owner = redis.call('HGET', job, 'owner')
  owner = owner and cjson.decode(owner) or '""" + UNOWNED + """'
  local queue = '""" + OWNER_PREFIX + """' .. owner .. ':queued'
  if redis.call('HGET', job, 'status') == '"queued"' then
    redis.call('ZADD', queue, tonumber(redis.call('HGET', job, 'priority') or '0'), id)
  else
    redis.call('ZREM', queue, id)
  end
end
"""

# KEYS: job, then the status indexes when the status changes. ARGV: id, field/value pairs.
# The score is the record's expiry (`+inf` while it has none), so that a status written to a
# record that already expires still leaves the index when the record does.
_UPDATE_IF_EXISTS = LUA_NOW_MS + _REINDEX + LUA_TRACK_QUEUED + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if #KEYS > 1 then
  track_queued(KEYS[1], ARGV[1])
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
local owner = redis.call('HGET', KEYS[1], 'owner')
owner = owner and cjson.decode(owner) or '""" + UNOWNED + """'
-- The owner's key is named here rather than passed: the caller knows only the job's id.
redis.call('SREM', '""" + OWNER_PREFIX + """' .. owner .. ':active', ARGV[3])
redis.call('ZREM', '""" + OWNER_PREFIX + """' .. owner .. ':queued', ARGV[3])
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

# KEYS: job, its status's index, the owner's job list, the owner's active set, the owner's audio
# seconds of the day, the owner's queue. ARGV: id, list member, job key prefix, max active jobs
# (0: no limit), max audio seconds a day (0: no limit), this job's audio seconds, ttl of the day's
# count, fair (1: take the priority from the owner's queue), then field/value pairs. Returns the
# job's priority, or -1 (too many active jobs), -2 (over the day's audio). Its work does not grow
# with the owner's backlog: counts come from the owner's queue (ZCARD, top score) and active set
# (SCARD), and a few sampled ids whose record vanished are pruned on the way.
_CREATE = """
local fair, max_active = ARGV[8] == '1', tonumber(ARGV[4])
local function gone(other)
  if redis.call('EXISTS', ARGV[3] .. other) == 1 then return false end
  redis.call('SREM', KEYS[4], other)
  redis.call('ZREM', KEYS[6], other)
  return true
end
for _, other in ipairs(redis.call('SRANDMEMBER', KEYS[4], """ + str(PRUNE_SAMPLE) + """)) do
  gone(other)
end
if max_active > 0 and redis.call('SCARD', KEYS[4]) >= max_active then return -1 end
local max_audio = tonumber(ARGV[5])
if max_audio > 0 then
  -- A job of unknown length (a URL, a live session) is refused once the day's audio is spent;
  -- the worker charges what it decodes (`shared/state/allowance.py`).
  local used = tonumber(redis.call('GET', KEYS[5]) or '0')
  if used >= max_audio or used + tonumber(ARGV[6]) > max_audio then return -2 end
  redis.call('INCRBYFLOAT', KEYS[5], ARGV[6])
  redis.call('EXPIRE', KEYS[5], ARGV[7])
  redis.call('HSET', KEYS[1], 'quota_reserved', ARGV[6])
end
local priority = """ + str(NEW_JOB_PRIORITY) + """
if fair then
  local top = redis.call('ZREVRANGE', KEYS[6], 0, 0, 'WITHSCORES')
  for _ = 1, """ + str(PRUNE_SAMPLE) + """ do
    if not top[1] or not gone(top[1]) then break end
    top = redis.call('ZREVRANGE', KEYS[6], 0, 0, 'WITHSCORES')
  end
  local queued = redis.call('ZCARD', KEYS[6])
  -- Deeper queue, later turn; never ahead of the owner's own queued jobs (FIFO per owner).
  priority = math.max(tonumber(top[2] or '0'),
                      math.min(""" + str(LOWEST_PRIORITY) + """, priority + queued))
end
redis.call('HSET', KEYS[1], 'priority', priority, unpack(ARGV, 9))
redis.call('ZADD', KEYS[2], '+inf', ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[2])
redis.call('SADD', KEYS[4], ARGV[1])
if redis.call('HGET', KEYS[1], 'status') == '"queued"' then
  redis.call('ZADD', KEYS[6], priority, ARGV[1])
end
return priority
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


# A day's audio count outlives its day, so a client just past midnight is still counted right.
AUDIO_DAY_TTL_SECONDS = 2 * 24 * 3600
# When a key at its active-job limit is told to try again: a short job's typical run.
ACTIVE_RETRY_SECONDS = 10


def seconds_to_midnight(now: datetime) -> int:
    """Seconds until the next UTC day begins."""
    now = now.astimezone(UTC)
    return 24 * 3600 - (now.hour * 3600 + now.minute * 60 + now.second)


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


READ_CONNECTIONS = 16


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any] | None:
    return {k.decode(): json.loads(v) for k, v in raw.items()} if raw else None


def owned_job(raw: dict[bytes, bytes]) -> tuple[Job, str | None] | None:
    """The job and its owner's key id from a record's hash as Redis returns it; None for none."""
    if not raw:
        return None
    job = Job.model_validate_json(json_object(raw.items()))
    owner = raw.get(b"owner")
    return job, (json.loads(owner) if owner else None) or None


class JobReader:
    """The job reads that requests await, on an asyncio client: the records `JobStore` writes,
    read without a hop to a worker thread. Writes stay with `JobStore`."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.redis = client

    @classmethod
    def from_url(cls, url: str, max_connections: int = READ_CONNECTIONS) -> JobReader:
        """A reader on `url`; a read waits for one of its connections when all are busy, so a
        burst of requests (hundreds of event streams opening) never opens a connection each."""
        return cls(async_client(url, max_connections, timeout=10, socket_connect_timeout=2,
                                socket_timeout=10, health_check_interval=30))

    async def get_owned(self, job_id: str) -> tuple[Job, str | None] | None:
        """As `JobStore.get_owned`."""
        if not is_job_id(job_id):
            return None
        raw: dict[bytes, bytes] = await self.redis.hgetall(  # type: ignore[misc,assignment]
            JobStore.job_key(job_id))
        return owned_job(raw)

    async def get_owned_with_key(
        self, keys: KeyFinder, token: str, job_id: str
    ) -> tuple[ApiKey | None, tuple[Job, str | None] | None]:
        """`keys.find(token)` and `get_owned(job_id)`, in one round trip to Redis."""
        if not is_job_id(job_id):
            return await keys.find(token), None
        key, raw = await keys.find_with(token, JobStore.job_key(job_id))
        return key, owned_job(raw)


class JobStore:
    """Typed access to job records and transcripts in Redis (synchronous, thread-safe)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._update = client.register_script(_UPDATE_IF_EXISTS)
        self._finish = client.register_script(_FINISH_IF_EXISTS)
        self._count = client.register_script(_COUNT_BY_STATUS)
        self._create = client.register_script(_CREATE)

    @classmethod
    def from_url(cls, url: str, retry_seconds: float | None = None) -> JobStore:
        """A store on `url`; with `retry_seconds`, a command that finds Redis unreachable is
        tried again for about that long (backing off to 1 s) before it raises."""
        options: dict[str, Any] = {}
        if retry_seconds is not None:
            backoff = ExponentialBackoff(cap=1.0, base=0.05)
            options["retry"] = Retry(backoff, retries=max(1, math.ceil(retry_seconds)))
        client = sync_client(
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

    @staticmethod
    def owner_key(owner: str | None, what: str) -> str:
        """One of an owner's keys: `jobs` (its list), `active`, `queued`, `audio:{day}`."""
        return f"{OWNER_PREFIX}{owner or UNOWNED}:{what}"

    @staticmethod
    def list_member(job_id: str, created_at: datetime) -> str:
        """The job's entry in its owner's list: ordered by creation time (in microseconds, so
        that one client's quick submissions keep their order), then id, as text."""
        stamp = created_at - datetime(1970, 1, 1, tzinfo=UTC)
        micros = (stamp.days * 86400 + stamp.seconds) * 1_000_000 + stamp.microseconds
        return f"{micros:016d}.{job_id}"

    @classmethod
    def _index_keys(cls, status: JobStatus) -> list[str]:
        """The new status's index first, then the others (see `_REINDEX`)."""
        return [cls.index_key(status)] + [cls.index_key(s) for s in JobStatus if s != status]

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def create(
        self, job_id: str, filename: str, options: JobOptions, duration: float | None,
        upload: str | Path, owner: str | None = None, limits: KeyLimits | None = None,
        extra: dict[str, Any] | None = None, status: JobStatus = JobStatus.queued,
        keep_upload: bool = False,
    ) -> tuple[Job, int]:
        """Record a job of `owner` (None: auth is off) and its index entries, in one step with
        the owner's limits on active jobs and daily audio; the job and the priority to enqueue
        it at. `extra`: more `Job` fields (`shared/extras.py`); `status` is `fetching` for a
        job whose media is still to be downloaded (its duration unknown: None). Raises
        `TooManyActiveJobs` or `QuotaExceeded`. `keep_upload`: keep the upload once the job
        completes (`keep_audio`), decided here so that API and workers agree on it."""
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
        if owner:
            record["owner"] = owner
        if keep_upload:
            record["keep_upload"] = True
        limits = limits or KeyLimits()
        day = job.created_at.strftime("%Y-%m-%d")
        keys = [self.job_key(job_id), self.index_key(status),
                self.owner_key(owner, "jobs"), self.owner_key(owner, "active"),
                self.owner_key(owner, f"audio:{day}"), self.owner_key(owner, "queued")]
        args = [job_id, self.list_member(job_id, job.created_at), self.job_key(""),
                limits.max_active_jobs or 0,
                (limits.max_audio_hours_per_day or 0) * 3600, duration or 0, AUDIO_DAY_TTL_SECONDS,
                1 if owner else 0, *_flat(record)]
        priority = int(self._create(keys=keys, args=args))
        if priority == -1:
            raise TooManyActiveJobs(
                f"This key already has {limits.max_active_jobs} jobs queued or processing; "
                "wait for one to finish.", ACTIVE_RETRY_SECONDS)
        if priority == -2:
            raise QuotaExceeded(
                f"This key may submit {limits.max_audio_hours_per_day:g} hours of audio a day "
                "(UTC); this recording would pass that.", seconds_to_midnight(job.created_at))
        return job, priority

    def priority(self, job_id: str) -> int:
        """The queue priority the job was given at creation (`NEW_JOB_PRIORITY` if none)."""
        value = self.redis.hget(self.job_key(job_id), "priority")
        return int(value) if value is not None else NEW_JOB_PRIORITY

    def active_count(self, owner: str | None) -> int:
        """The owner's queued and processing jobs."""
        return int(self.redis.scard(self.owner_key(owner, "active")))

    def _hash(self, job_id: str) -> dict[bytes, bytes]:
        if not is_job_id(job_id):
            return {}
        raw: dict[bytes, bytes] = self.redis.hgetall(self.job_key(job_id))  # type: ignore[assignment]
        return raw

    def _raw(self, job_id: str) -> dict[str, Any] | None:
        return _decode(self._hash(job_id))

    def get(self, job_id: str) -> Job | None:
        raw = self._raw(job_id)
        return Job.model_validate(raw) if raw else None

    def owner(self, job_id: str) -> str | None:
        """The key id that owns the job (None: no such job, or made while auth was off)."""
        if not is_job_id(job_id):
            return None
        raw = self.redis.hget(self.job_key(job_id), "owner")
        return json.loads(raw) if raw else None  # type: ignore[arg-type]

    def get_owned(self, job_id: str) -> tuple[Job, str | None] | None:
        """The job and its owner's key id (None for a job made while auth was off)."""
        return owned_job(self._hash(job_id))

    def get_with_upload(self, job_id: str) -> tuple[Job, str] | None:
        """The job and its upload's location (`shared/media/storage/`) in one read; None when
        the job does not exist."""
        raw = self._raw(job_id)
        if not raw or "upload_path" not in raw:
            return None
        return Job.model_validate(raw), str(raw["upload_path"])

    def require(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise JobNotFound(f"No job with id {job_id!r}.")
        return job

    def upload_path(self, job_id: str) -> str | None:
        """The upload's location: a path (`local` storage) or an object key (`s3`)."""
        raw = self._raw(job_id)
        return str(raw["upload_path"]) if raw and "upload_path" in raw else None

    def kept_upload(self, job_id: str) -> str | None:
        """The upload of a job created to keep it (`keep_audio`); None for other jobs."""
        raw = self._raw(job_id)
        if not raw or not raw.get("keep_upload") or "upload_path" not in raw:
            return None
        return str(raw["upload_path"])

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
            "languages": transcript.languages,
            "language_alternatives": transcript.language_alternatives,
        }
        if transcript.speakers is not None:
            fields["speakers"] = transcript.speakers
        return self._finish_job(job_id, ttl, transcript.model_dump_json(), fields)

    def fail(self, job_id: str, error: VerbatimError, ttl: int,
             transcript: Transcript | None = None) -> bool:
        """End the job with `error`, keeping `transcript` where it was partly decoded."""
        info = ErrorInfo(code=error.code, message=error.message)
        fields = {"status": JobStatus.failed, "finished_at": utcnow(), "error": info}
        return self._finish_job(job_id, ttl, transcript.model_dump_json() if transcript else "",
                                fields)

    def _finish_job(self, job_id: str, ttl: int, transcript: str, fields: dict[str, Any]) -> bool:
        keys = [self.job_key(job_id), self.transcript_key(job_id),
                *self._index_keys(fields["status"])]
        return bool(self._finish(keys=keys, args=[str(ttl), transcript, job_id, *_flat(fields)]))

    def get_transcript(self, job_id: str) -> Transcript | None:
        raw = self.redis.get(self.transcript_key(job_id))
        return Transcript.model_validate_json(raw) if raw else None

    def delete(self, job_id: str) -> bool:
        """Remove the record, transcript and index entries; False when there was no such job."""
        found = self.get_owned(job_id)
        with self.redis.pipeline() as pipe:
            pipe.delete(self.job_key(job_id), self.transcript_key(job_id))
            pipe.hdel(RECEIVED_KEY, job_id)
            for status in JobStatus:
                pipe.zrem(self.index_key(status), job_id)
            if found:
                job, owner = found
                pipe.srem(self.owner_key(owner, "active"), job_id)
                pipe.zrem(self.owner_key(owner, "queued"), job_id)
                pipe.zrem(self.owner_key(owner, "jobs"), self.list_member(job_id, job.created_at))
            removed = pipe.execute()[0]
        return bool(removed)

    def count_by_status(self) -> dict[JobStatus, int]:
        """How many job records exist in each status."""
        counts = self._count(keys=[self.index_key(s) for s in JobStatus])
        return dict(zip(JobStatus, map(int, counts), strict=True))
