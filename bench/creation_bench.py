"""What creating a job costs while one key has 10, 1,000 and 20,000 jobs queued (issue 26, item 10).

    .venv/bin/python bench/creation_bench.py [--creations 200]

A private Redis, no API and no worker: the queued jobs are written straight into Redis as the
creation script leaves them (record, the owner's active set and queue), then `JobStore.create`
runs `--creations` times for that key at each depth. Prints, per depth, the wall time per
creation (client round trip included) and the time Redis itself spent in the script
(`INFO commandstats`, which moves far less with the machine's load). To measure code from before
a change, put a checkout of it first on the path: `PYTHONPATH=/tmp/old python bench/...`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after a PYTHONPATH checkout

from shared.localredis import LocalRedis
from shared.schemas import JobOptions
from shared.state.jobs import JobStore, new_job_id
from shared.state.keys import KeyLimits

DEPTHS = (10, 1_000, 20_000)
BATCH = 1_000
LIMITS = KeyLimits(max_active_jobs=1_000_000)


def fill(store: JobStore, owner: str, depth: int) -> None:
    """`depth` queued jobs of `owner`, as the creation script leaves them."""
    ids = [new_job_id() for _ in range(depth)]
    for first in range(0, depth, BATCH):
        with store.redis.pipeline(transaction=False) as pipe:
            for job_id in ids[first:first + BATCH]:
                pipe.hset(store.job_key(job_id), mapping={
                    "status": '"queued"', "priority": "9", "owner": f'"{owner}"'})
                pipe.sadd(store.owner_key(owner, "active"), job_id)
                pipe.zadd(store.owner_key(owner, "queued"), {job_id: 9})
            pipe.execute()


def script_usec(store: JobStore) -> int:
    return int(store.redis.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0))


def measure(store: JobStore, owner: str, creations: int) -> tuple[float, float]:
    """Median wall milliseconds per creation and Redis's mean script milliseconds."""
    walls = []
    usec = script_usec(store)
    for _ in range(creations):
        started = time.perf_counter()
        store.create(new_job_id(), "a.flac", JobOptions(), 60.0, Path("/nowhere"), owner, LIMITS)
        walls.append(time.perf_counter() - started)
    return statistics.median(walls) * 1000, (script_usec(store) - usec) / creations / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creations", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalRedis(Path(tmp)) as server:
        store = JobStore.from_url(server.url)
        print(f"{'queued':>8} {'wall ms/creation':>17} {'redis ms/creation':>18}")
        for depth in DEPTHS:
            owner = f"key{depth}"
            fill(store, owner, depth)
            wall, inside = measure(store, owner, args.creations)
            print(f"{depth:>8} {wall:>17.3f} {inside:>18.3f}")
        store.redis.close()


if __name__ == "__main__":
    main()
