"""Chaos benchmark: jobs keep their promise while workers and Redis die under them.

Starts a stack of its own (Redis with append-only persistence, the API, two workers with one
pool process each), submits N short real-speech jobs, and meanwhile SIGKILLs whole workers
(main process and pool) at random intervals and starts them again, SIGKILLs Redis once and
restarts it on its append-only file, and SIGTERMs one worker mid-job (its soft shutdown puts the
job back). Then it waits for every job to end and prints:

    submitted, completed, failed (by code), lost (record gone), stuck (never ended),
    run twice (transcribed to the end more than once), and kill-to-restart times (from a kill
    to the moment each job the dead worker held started again elsewhere).

0 lost and 0 stuck is the bar. Traffic goes to loopback only.

    .venv/bin/python bench/chaos.py                  # 200 jobs
    .venv/bin/python bench/chaos.py --jobs 60 --seed 7
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from stack import ROOT, Worker, start_api, wait_ready

from shared.localredis import LocalRedis, stop_process

AUDIO = ROOT / "tests" / "data" / "jfk.flac"
HEARTBEATS = {"VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "1", "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": "5"}
QUIESCENCE_SECONDS = 1800


@dataclass
class Chaos:
    kills: list[float] = field(default_factory=list)  # wall-clock times of whole-worker kills
    events: list[str] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill-every", type=float, nargs=2, default=(6.0, 14.0),
                        metavar=("MIN", "MAX"), help="seconds between whole-worker kills")
    parser.add_argument("--kills", type=int, default=30, help="whole-worker kills at most")
    args = parser.parse_args()
    random.seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="verbatim-chaos-") as tmp:
        run(Path(tmp), args)


def run(tmp: Path, args: argparse.Namespace) -> None:
    redis_server = LocalRedis(tmp / "redis").start()
    env = {**os.environ, **HEARTBEATS, "VERBATIM_REDIS_URL": redis_server.url,
           "VERBATIM_DATA_DIR": str(tmp / "data"), "VERBATIM_LOG_FORMAT": "json"}
    api, url = start_api(env, tmp / "api.log")
    workers = [Worker(f"w{i}", env, tmp) for i in (1, 2)]
    for worker in workers:
        worker.start()
    chaos = Chaos()
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            wait_ready(http)
            stop = threading.Event()
            monkey = threading.Thread(
                target=_monkey, args=(workers, redis_server, chaos, stop, args), daemon=True
            )
            started = time.monotonic()
            monkey.start()
            ids = _submit(http, args.jobs, chaos)
            jobs = _quiesce(http, ids)
            stop.set()
            monkey.join()
            _report(ids, jobs, chaos, workers, time.monotonic() - started)
    finally:
        for worker in workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.kill()
        stop_process(api, 20)
        redis_server.stop()


def _submit(http: httpx.Client, count: int, chaos: Chaos) -> list[str]:
    """Submit `count` jobs, retrying refusals while Redis is away (a client would)."""
    ids: list[str] = []
    data = AUDIO.read_bytes()
    while len(ids) < count:
        try:
            response = http.post("/v1/jobs", files={"file": (AUDIO.name, data)})
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        if response.status_code == 202:
            ids.append(response.json()["id"])
        elif response.status_code == 503:
            time.sleep(0.5)
        else:
            raise SystemExit(f"unexpected answer {response.status_code}: {response.text}")
        time.sleep(0.05)
    chaos.events.append(f"{len(ids)} jobs submitted")
    return ids


def _monkey(workers: list[Worker], redis_server: LocalRedis, chaos: Chaos,
            stop: threading.Event, args: argparse.Namespace) -> None:
    """Kill whole workers at random intervals; restart Redis once and SIGTERM a worker once,
    about a third and a half of the way through the kills."""
    kills = 0
    while not stop.wait(random.uniform(*args.kill_every)) and kills < args.kills:
        victim = random.choice(workers)
        if kills == args.kills // 3:
            redis_server.process.kill()  # type: ignore[union-attr]
            redis_server.process.wait()  # type: ignore[union-attr]
            time.sleep(2)
            redis_server.start()
            chaos.events.append("redis SIGKILLed and restarted")
        if kills == args.kills // 2:
            victim.terminate()
            chaos.events.append(f"{victim.name} SIGTERMed")
        else:
            chaos.kills.append(time.time())
            victim.kill()
        kills += 1
        time.sleep(random.uniform(0.5, 3))
        victim.start()
    chaos.events.append(f"{len(chaos.kills)} whole-worker kills")


def _quiesce(http: httpx.Client, ids: list[str]) -> dict[str, dict | None]:
    """Each job's last record (None: gone), once every job ended or the wait ran out."""
    deadline = time.monotonic() + QUIESCENCE_SECONDS
    jobs: dict[str, dict | None] = {}
    while True:
        for job_id in ids:
            known = jobs.get(job_id)
            if known and known["status"] in ("completed", "failed"):
                continue
            with suppress(httpx.HTTPError):
                response = http.get(f"/v1/jobs/{job_id}")
                if response.status_code == 200:
                    jobs[job_id] = response.json()
                elif response.status_code == 404:
                    jobs[job_id] = None  # the record is gone: lost
                # anything else (503 while Redis restarts): ask again
        ended = all(job_id in jobs and (jobs[job_id] is None or jobs[job_id]["status"]  # type: ignore[index]
                    in ("completed", "failed")) for job_id in ids)
        if ended or time.monotonic() > deadline:
            return jobs
        time.sleep(1)


def _completions(workers: list[Worker]) -> Counter[str]:
    """How many times each job was transcribed to the end, from the workers' JSON logs."""
    done: Counter[str] = Counter()
    for worker in workers:
        for log in worker.logs.glob(f"{worker.name}-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                with suppress(json.JSONDecodeError):
                    record = json.loads(line)
                    if record.get("event") == "completed" and record.get("job_id"):
                        done[record["job_id"]] += 1
    return done


def _report(ids: list[str], jobs: dict[str, dict | None], chaos: Chaos,
            workers: list[Worker], seconds: float) -> None:
    lost = [i for i in ids if i in jobs and jobs[i] is None]
    ended = [j for j in jobs.values() if j]
    stuck = [j for j in ended if j["status"] not in ("completed", "failed")]
    failed = Counter(j["error"]["code"] for j in ended if j["status"] == "failed")
    twice = [job_id for job_id, count in _completions(workers).items() if count > 1]
    restarts = _restart_times(ended, chaos.kills)
    print(f"chaos: {'; '.join(chaos.events)}; {seconds:.0f} s in all")
    print(f"submitted   {len(ids)}")
    print(f"completed   {sum(1 for j in ended if j['status'] == 'completed')}")
    print(f"failed      {sum(failed.values())} {dict(failed) if failed else ''}".rstrip())
    print(f"lost        {len(lost)}")
    print(f"stuck       {len(stuck)} {[(j['id'], j['status']) for j in stuck][:5] or ''}".rstrip())
    attempts = [jobs[i]["attempts"] for i in twice if jobs.get(i)]  # type: ignore[index]
    print(f"run twice   {len(twice)}" + (f" (attempts {attempts})" if twice else ""))
    print(f"requeued    {sum(1 for j in ended if j['attempts'] > 1)} jobs ran more than once")
    if restarts:
        print(f"kill-to-restart  n={len(restarts)} p50 {statistics.median(restarts):.1f} s  "
              f"max {max(restarts):.1f} s")


def _restart_times(jobs: list[dict], kills: list[float]) -> list[float]:
    """For each job that ran more than once: from the last kill before its final start to
    that start (the job's earlier attempt was on the killed worker)."""
    times = []
    for job in jobs:
        if job["attempts"] < 2 or not job.get("started_at"):
            continue
        start = datetime.fromisoformat(job["started_at"]).timestamp()
        before = [k for k in kills if k < start]
        if before:
            times.append(start - before[-1])
    return times


if __name__ == "__main__":
    main()
