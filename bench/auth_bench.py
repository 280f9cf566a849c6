"""What API keys cost: job-creation and status-poll latency with `VERBATIM_AUTH` off and required.

    .venv/bin/python bench/auth_bench.py [--jobs 200] [--polls 1000]

Two API processes side by side on one private Redis (no worker: jobs stay queued, so only the
API's own work is timed): one with auth off, one with auth required. Requests alternate between
the two, so that drift on a busy machine touches both alike. The required one is timed with a
key without limits (the key lookup alone) and with a key with every limit set high enough never
to refuse (the lookup plus the rate window and the active-job checks).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import wave
from pathlib import Path

import httpx
import redis
from stack import start_api, wait_healthy

from shared.localredis import LocalRedis, stop_process
from shared.state.keys import KeyLimits, KeyStore  # (importable once `stack` put ROOT on sys.path)


def silence(path: Path, seconds: float = 1.0) -> bytes:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * int(16000 * seconds))
    return path.read_bytes()


def timed(http: httpx.Client, method: str, path: str, **kwargs: object) -> tuple[float, dict]:
    started = time.perf_counter()
    response = http.request(method, path, **kwargs)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    if response.status_code >= 300:
        raise SystemExit(f"{method} {path}: {response.status_code} {response.text}")
    return seconds, response.json()


def summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return (f"  {name:<28} p50 {statistics.median(ms):6.2f} ms   p99 {p99:6.2f} ms   "
            f"mean {statistics.fmean(ms):6.2f} ms   (n={len(ms)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="job creations per variant")
    parser.add_argument("--polls", type=int, default=1000, help="status polls per variant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, LocalRedis(Path(folder)) as redis_server:
        tmp = Path(folder)
        audio = silence(tmp / "quiet.wav")
        env = {**os.environ, "VERBATIM_REDIS_URL": redis_server.url,
               "VERBATIM_DATA_DIR": str(tmp / "data"), "VERBATIM_LOG_LEVEL": "WARNING"}
        client = redis.Redis.from_url(redis_server.url)
        keys = KeyStore(client)
        plain = keys.create("bench")[1]
        limited = keys.create("bench-limits", KeyLimits(
            rate_per_minute=10**6, max_active_jobs=10**6, max_audio_hours_per_day=10**6))[1]
        off, off_url = start_api(env | {"VERBATIM_AUTH": "off"}, tmp / "off.log")
        on, on_url = start_api(env | {"VERBATIM_AUTH": "required"}, tmp / "on.log")
        try:
            for url in (off_url, on_url):
                wait_healthy(url)
            variants = {
                "auth off": httpx.Client(base_url=off_url, timeout=30),
                "auth required": httpx.Client(
                    base_url=on_url, timeout=30, headers={"Authorization": f"Bearer {plain}"}),
                "auth required + limits": httpx.Client(
                    base_url=on_url, timeout=30, headers={"Authorization": f"Bearer {limited}"}),
            }
            run(variants, audio, args.jobs, args.polls)
        finally:
            stop_process(off, 10)
            stop_process(on, 10)
            client.close()


def run(variants: dict[str, httpx.Client], audio: bytes, jobs: int, polls: int) -> None:
    creations: dict[str, list[float]] = {name: [] for name in variants}
    reads: dict[str, list[float]] = {name: [] for name in variants}
    made: dict[str, list[str]] = {name: [] for name in variants}
    for name, http in variants.items():  # warm-up: connections, imports, script loads
        for _ in range(5):
            made[name].append(timed(http, "POST", "/v1/jobs",
                                    files={"file": ("quiet.wav", audio)})[1]["id"])
    for _ in range(jobs):
        for name, http in variants.items():
            seconds, job = timed(http, "POST", "/v1/jobs", files={"file": ("quiet.wav", audio)})
            creations[name].append(seconds)
            made[name].append(job["id"])
    for i in range(polls):
        for name, http in variants.items():
            job_id = made[name][i % len(made[name])]
            reads[name].append(timed(http, "GET", f"/v1/jobs/{job_id}")[0])
    print(f"auth_bench: {jobs} job creations and {polls} status polls per variant, "
          f"{os.cpu_count()} CPUs, one API process per auth mode on one Redis, no worker")
    print("POST /v1/jobs (1 s WAV upload, probed, recorded, enqueued):")
    for name in variants:
        print(summary(name, creations[name]))
    print("GET /v1/jobs/{id}:")
    for name in variants:
        print(summary(name, reads[name]))
    base_create = statistics.median(creations["auth off"])
    base_read = statistics.median(reads["auth off"])
    for name in list(variants)[1:]:
        print(f"  {name}: {(statistics.median(creations[name]) - base_create) * 1000:+.2f} ms "
              f"creation, {(statistics.median(reads[name]) - base_read) * 1000:+.2f} ms poll "
              "(p50 against auth off)")
    for http in variants.values():
        http.close()


if __name__ == "__main__":
    main()
