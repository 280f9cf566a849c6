"""Integrations benchmark: webhook delivery latency and throughput, media URL fetching, and the
cost of an `Idempotency-Key`.

Starts its own Redis, API and I/O worker (no transcription worker: no model is needed, and jobs
from URLs stay queued once fetched). Prints:

- webhooks: N finished jobs announced at once to a receiver answering at once, then to one that
  takes 1 s per answer: time from announce to arrival (p50, p95, max) and events per second;
- URL fetch: a WAV of M MB served on loopback, from POST to `queued` (download + probe), MB/s;
- Idempotency-Key: median POST /v1/jobs time of a small upload without a key, with a new key,
  and replayed.

Traffic goes to loopback only.

    .venv/bin/python bench/integrations_bench.py
    .venv/bin/python bench/integrations_bench.py --events 400 --megabytes 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from stack import ROOT, start_api

from shared.config import Settings
from shared.localredis import LocalRedis, free_port, stop_process
from shared.schemas import JobOptions, Transcript
from shared.state.jobs import JobStore, new_job_id
from shared.state.webhooks import Events

TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from receivers import media_server  # noqa: E402


class Arrivals:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()


def receiver(arrivals: Arrivals) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            with arrivals.lock:
                arrivals.at.setdefault(self.headers["webhook-id"], time.monotonic())
            time.sleep(arrivals.delay)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


def webhooks(settings: Settings, count: int, delay: float) -> str:
    store = JobStore.from_url(settings.redis_url)
    events = Events(store, settings)
    arrivals = Arrivals(delay)
    server, url = receiver(arrivals)
    transcript = Transcript(language="en", duration=1.0, text="hi", segments=[])
    ids = []
    for _ in range(count):
        job_id = new_job_id()
        store.create(job_id, "a.wav", JobOptions(), 1.0, Path("/gone"), extra={"webhook_url": url})
        store.complete(job_id, transcript, ttl=600)
        ids.append(job_id)
    sent: dict[str, float] = {}
    started = time.monotonic()
    for job_id in ids:
        events.announce(job_id)
        sent[store.redis.hget(JobStore.job_key(job_id), "webhook_event").decode().strip('"')] = (
            time.monotonic())
    deadline = time.monotonic() + 300
    while len(arrivals.at) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    took = max(arrivals.at.values()) - started
    server.shutdown()
    latencies = sorted(arrivals.at[k] - sent[k] for k in arrivals.at if k in sent)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    return (f"{len(arrivals.at)}/{count} delivered, receiver {delay:.0f} s per answer: "
            f"latency p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
            f"max {latencies[-1] * 1000:.0f} ms; {count / took:.1f} events/s")


def fetch(api: str, megabytes: int, folder: Path) -> str:
    path = folder / "long.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * (megabytes * 1024 * 1024 // 2))
    size = path.stat().st_size
    with media_server({"long.wav": path}) as base, httpx.Client(base_url=api, timeout=30) as http:
        started = time.monotonic()
        job = http.post("/v1/jobs", json={"url": f"{base}/long.wav"}).json()
        accepted = time.monotonic() - started
        while (status := http.get(f"/v1/jobs/{job['id']}").json())["status"] == "fetching":
            time.sleep(0.02)
        took = time.monotonic() - started
    assert status["status"] == "queued", status
    return (f"{size / 1e6:.0f} MB WAV: 202 in {accepted * 1000:.0f} ms, queued after {took:.2f} s "
            f"({size / 1e6 / took:.0f} MB/s download + probe)")


def idempotency(api: str, folder: Path, rounds: int) -> str:
    path = folder / "quiet.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * 16000)

    def post(http: httpx.Client, key: str | None) -> float:
        started = time.monotonic()
        with path.open("rb") as f:
            response = http.post("/v1/jobs", files={"file": (path.name, f)},
                                 headers={"Idempotency-Key": key} if key else {})
        assert response.status_code == 202, response.text
        return time.monotonic() - started

    with httpx.Client(base_url=api, timeout=30) as http:
        plain = [post(http, None) for _ in range(rounds)]
        keys = [str(uuid.uuid4()) for _ in range(rounds)]
        fresh = [post(http, key) for key in keys]
        replayed = [post(http, key) for key in keys]
    return (f"POST /v1/jobs median over {rounds}: no key {statistics.median(plain) * 1000:.1f} ms, "
            f"new key {statistics.median(fresh) * 1000:.1f} ms, "
            f"replayed {statistics.median(replayed) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalRedis(Path(tmp) / "redis") as redis_server:
        folder = Path(tmp)
        env = {"VERBATIM_REDIS_URL": redis_server.url, "VERBATIM_DATA_DIR": str(folder / "data"),
               "VERBATIM_FETCH_ALLOW": "127.0.0.1", "VERBATIM_LOG_LEVEL": "WARNING",
               "VERBATIM_IO_METRICS_PORT": str(free_port()),
               "VERBATIM_MAX_UPLOAD_BYTES": str((args.megabytes + 1) * 1024 * 1024)}
        full_env = {**os.environ, **env}
        settings = Settings(**{k.removeprefix("VERBATIM_").lower(): v for k, v in env.items()})
        io = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "courier.celery_app:app", "worker",
             "--pool", "threads", "--concurrency", str(args.concurrency), "--queues",
             "verbatim.io", "--hostname", "bench-io@%h"],
            env=full_env, cwd=ROOT, stdout=(folder / "io.log").open("wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        api, url = start_api(full_env, folder / "api.log")
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            print(f"I/O worker: {args.concurrency} threads")
            print("webhooks:", webhooks(settings, args.events, 0.0))
            print("webhooks:", webhooks(settings, args.events // 4, 1.0))
            print("url fetch:", fetch(url, args.megabytes, folder))
            print("idempotency:", idempotency(url, folder, args.rounds))
        finally:
            stop_process(api, 20)
            stop_process(io, 20)


if __name__ == "__main__":
    main()
