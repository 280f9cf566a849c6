"""`GET /v1/jobs`: an owner's jobs, newest first, a page at a time, from its own index.

The index `verbatim:owner:{owner}:jobs` holds one member per job, `{created µs}.{id}`, all at
score 0, so that Redis orders them as text: by creation time, then by id. A page is read with
`ZRANGE ... BYLEX REV` from just below the cursor (the last member the previous page showed), so
pages never skip or repeat a job, whatever is created or deleted meanwhile.

A finished job's record expires while its index entry stays; such stale entries are skipped and
removed as a listing meets them, and a few at the old end are removed at each job's creation
(`prune_list`), so the index stays near the size of the jobs that exist.
"""

from __future__ import annotations

import json
import re

from shared.schemas import Job, JobStatus
from shared.state.jobs import JobStore

CURSOR = re.compile(r"^\d{16}\.[0-9a-f]{32}$")
# With a status filter, a page stops after reading this many entries even if it is not full;
# its `next_cursor` then goes on from there.
MAX_SCANNED = 1000
BATCH = 100
PRUNE_AT_CREATION = 10


def list_jobs(
    store: JobStore, owner: str | None, limit: int, cursor: str | None = None,
    status: JobStatus | None = None,
) -> tuple[list[Job], str | None]:
    """Up to `limit` jobs of `owner` older than `cursor`, newest first, and the next cursor
    (None once there are no more)."""
    key = store.owner_key(owner, "jobs")
    upper = f"({cursor}" if cursor else "+"
    page: list[tuple[str, Job]] = []
    scanned = 0
    while len(page) <= limit:
        if scanned >= MAX_SCANNED:
            return [job for _, job in page], upper[1:]
        want = min(BATCH, MAX_SCANNED - scanned)
        found: list[bytes] = store.redis.zrange(  # type: ignore[assignment]
            key, upper, "-", desc=True, bylex=True, offset=0, num=want)
        members = [m.decode() for m in found]
        if not members:
            break
        scanned += len(members)
        upper = f"({members[-1]}"
        page += _matching(store, key, members, status)
    if len(page) > limit:  # one more than asked: there is a next page
        return [job for _, job in page[:limit]], page[limit - 1][0]
    return [job for _, job in page], None


def _matching(
    store: JobStore, key: str, members: list[str], status: JobStatus | None
) -> list[tuple[str, Job]]:
    """The (member, job) of `members` whose record exists and has `status`; the entries of
    expired records leave the index."""
    with store.redis.pipeline(transaction=False) as pipe:
        for member in members:
            pipe.hgetall(store.job_key(member.split(".", 1)[1]))
        records = pipe.execute()
    found, stale = [], []
    for member, raw in zip(members, records, strict=True):
        if not raw:
            stale.append(member)
            continue
        job = Job.model_validate({k.decode(): json.loads(v) for k, v in raw.items()})
        if status is None or job.status is status:
            found.append((member, job))
    if stale:
        store.redis.zrem(key, *stale)
    return found


def prune_list(store: JobStore, owner: str | None) -> int:
    """Remove the stale entries among the oldest few of the owner's index; how many."""
    key = store.owner_key(owner, "jobs")
    oldest: list[bytes] = store.redis.zrange(key, 0, PRUNE_AT_CREATION - 1)  # type: ignore[assignment]
    members = [m.decode() for m in oldest]
    if not members:
        return 0
    with store.redis.pipeline(transaction=False) as pipe:
        for member in members:
            pipe.exists(store.job_key(member.split(".", 1)[1]))
        exists = pipe.execute()
    stale = [member for member, found in zip(members, exists, strict=True) if not found]
    if stale:
        store.redis.zrem(key, *stale)
    return len(stale)
