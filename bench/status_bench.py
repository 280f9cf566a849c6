"""What a status read costs next to the cheapest route: wrk on `/healthz` and `/v1/jobs/{id}`.

    .venv/bin/python bench/status_bench.py [--seconds 10] [--rounds 3] [--connections 8]

One API process on a private Redis (no worker), a completed job written straight through
`JobStore`. wrk (Debian package `wrk`) runs on the two routes alternately, so that drift on a
busy machine touches both alike; then once more with `VERBATIM_AUTH=required` and a key. Prints
requests/s, p50 and p99 per route and the status route's share of `/healthz`'s requests/s, and the
CPU time the API process and redis-server spent per request (from `/proc`): on a shared machine
requests/s and latencies move with everything else running, CPU per request far less.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import redis
from stack import start_api, wait_healthy

from shared.localredis import LocalRedis, stop_process
from shared.schemas import JobOptions, JobStatus
from shared.state.jobs import JobStore, new_job_id  # (importable once `stack` put ROOT on sys.path)
from shared.state.keys import KeyStore

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def completed_job(store: JobStore, owner: str | None, tmp: Path) -> str:
    job_id = new_job_id()
    store.create(job_id, "speech.flac", JobOptions(), 12.5, tmp / "upload", owner=owner)
    now = datetime.now(UTC)
    store.update(job_id, status=JobStatus.completed, progress=1.0, started_at=now,
                 finished_at=now, language="en", language_probability=0.99)
    return job_id


def wrk(url: str, seconds: int, connections: int, headers: list[str]) -> dict[str, float]:
    command = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk {url}: answers other than 2xx\n{out}")
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for share in ("50", "99"):
        value, unit = re.search(rf"\s{share}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        figures[f"p{share}"] = float(value) * UNITS[unit]
    return figures


def compare(name: str, base: str, seconds: int, rounds: int, connections: int,
            job_id: str, headers: list[str], pids: tuple[int, int]) -> None:
    routes = {"/healthz": f"{base}/healthz", "/v1/jobs/{id}": f"{base}/v1/jobs/{job_id}"}
    for url in routes.values():  # warm-up and a check that the route answers 200
        wrk(url, 1, connections, headers)
    print(f"{name}:")
    totals = {route: 0.0 for route in routes}
    for number in range(1, rounds + 1):
        for route, url in routes.items():
            before = [cpu_seconds(pid) for pid in pids]
            got = wrk(url, seconds, connections, headers)
            requests = got["rps"] * seconds
            api_us, redis_us = (1e6 * (cpu_seconds(pid) - was) / requests
                                for pid, was in zip(pids, before, strict=True))
            totals[route] += got["rps"]
            print(f"  round {number} {route:<14} {got['rps']:8.0f} req/s   "
                  f"p50 {got['p50']:6.2f} ms   p99 {got['p99']:6.2f} ms   "
                  f"CPU/request: API {api_us:4.0f} us, Redis {redis_us:3.0f} us")
    ratio = totals["/v1/jobs/{id}"] / totals["/healthz"]
    print(f"  status/healthz requests/s: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternations with auth off")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, LocalRedis(Path(folder)) as redis_server:
        tmp = Path(folder)
        env = {**os.environ, "VERBATIM_REDIS_URL": redis_server.url,
               "VERBATIM_DATA_DIR": str(tmp / "data"), "VERBATIM_LOG_LEVEL": "WARNING"}
        client = redis.Redis.from_url(redis_server.url)
        store = JobStore(client)
        key, secret = KeyStore(client).create("bench")
        print(f"status_bench: wrk -c {args.connections} -d {args.seconds}s, {os.cpu_count()} "
              "CPUs, one API process, private Redis, no worker")
        for auth in ("off", "required"):
            api, url = start_api(env | {"VERBATIM_AUTH": auth}, tmp / f"{auth}.log")
            assert redis_server.process is not None
            pids = (api.pid, redis_server.process.pid)
            try:
                wait_healthy(url)
                if auth == "off":
                    compare("auth off", url, args.seconds, args.rounds, args.connections,
                            completed_job(store, None, tmp), [], pids)
                else:
                    compare("auth required (Authorization: Bearer)", url, args.seconds, 1,
                            args.connections, completed_job(store, key.id, tmp),
                            [f"Authorization: Bearer {secret}"], pids)
            finally:
                stop_process(api, 10)
        client.close()


if __name__ == "__main__":
    main()
