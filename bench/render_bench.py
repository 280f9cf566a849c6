"""`/healthz` latency while 4-hour transcripts are downloaded in every format (issue 26, item 11).

    .venv/bin/python bench/render_bench.py [--hours 4] [--clients 8] [--seconds 20]

One API process on a private Redis (no worker), a completed job whose transcript (`--hours` of
segments, 14 timed words each, as `subtitle_bench.py` builds them) is written straight into
Redis. First each download is timed alone; then `--clients` threads download every format over
and over (txt, json, srt, vtt, tsv, ass, and the subtitle formats under the `broadcast` preset)
while one more client asks `/healthz` every 20 ms. Prints `/healthz`'s p50, p99 and worst
latency idle and during the downloads, and the downloads' own figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis
from stack import start_api, wait_healthy
from subtitle_bench import transcript

from shared.localredis import LocalRedis, stop_process
from shared.schemas import JobOptions, JobStatus
from shared.state.jobs import JobStore, new_job_id

DOWNLOADS = [
    "transcript.txt", "transcript.json", "transcript.srt", "transcript.vtt", "transcript.tsv",
    "transcript.ass", "transcript.srt?preset=broadcast", "transcript.vtt?preset=broadcast",
    "transcript.ass?preset=broadcast",
]  # fmt: skip


def completed_job(store: JobStore, hours: float, tmp: Path) -> str:
    job_id = new_job_id()
    store.create(job_id, "talk.flac", JobOptions(), hours * 3600, tmp / "upload")
    store.update(job_id, started_at=datetime.now(UTC), status=JobStatus.processing)
    store.complete(job_id, transcript(hours), 3600)
    return job_id


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def probe_healthz(url: str, stop: threading.Event, seconds: float | None = None) -> list[float]:
    """Latencies (ms) of `/healthz` asked every 20 ms until `stop` is set (or `seconds` pass)."""
    latencies: list[float] = []
    ends = time.monotonic() + seconds if seconds else None
    with httpx.Client(timeout=30) as http:
        while not stop.is_set() and (ends is None or time.monotonic() < ends):
            began = time.perf_counter()
            http.get(f"{url}/healthz").raise_for_status()
            latencies.append((time.perf_counter() - began) * 1000)
            time.sleep(0.02)
    return latencies


def download_loop(base: str, stop: threading.Event, times: list[float]) -> None:
    with httpx.Client(timeout=120) as http:
        while not stop.is_set():
            for path in DOWNLOADS:
                began = time.perf_counter()
                http.get(f"{base}/{path}").raise_for_status()
                times.append(time.perf_counter() - began)
                if stop.is_set():
                    return


def downloads(base: str, clients: int, stop: threading.Event,
              results: multiprocessing.Queue[list[float]]) -> None:
    """`clients` threads downloading until `stop` is set; their times go to `results`."""
    times: list[float] = []
    loaders = [threading.Thread(target=download_loop, args=(base, stop, times))
               for _ in range(clients)]
    for loader in loaders:
        loader.start()
    for loader in loaders:
        loader.join()
    results.put(times)


def summary(name: str, latencies: list[float]) -> str:
    return (f"{name:<26} n={len(latencies):<5} p50 {percentile(latencies, 0.5):7.1f} ms   "
            f"p99 {percentile(latencies, 0.99):7.1f} ms   max {max(latencies):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, LocalRedis(Path(folder)) as redis_server:
        tmp = Path(folder)
        env = {**os.environ, "VERBATIM_REDIS_URL": redis_server.url,
               "VERBATIM_DATA_DIR": str(tmp / "data"), "VERBATIM_LOG_LEVEL": "WARNING"}
        client = redis.Redis.from_url(redis_server.url)
        job_id = completed_job(JobStore(client), args.hours, tmp)
        api, url = start_api(env, tmp / "api.log")
        try:
            wait_healthy(url)
            base = f"{url}/v1/jobs/{job_id}"
            print(f"render_bench: {args.hours:g} h transcript, {os.cpu_count()} CPUs, "
                  f"{args.clients} download clients, one API process")
            with httpx.Client(timeout=120) as http:
                for path in DOWNLOADS:
                    http.get(f"{base}/{path}").raise_for_status()  # warm-up
                    began = time.perf_counter()
                    size = len(http.get(f"{base}/{path}").content)
                    print(f"  alone: {path:<34} {(time.perf_counter() - began) * 1000:7.0f} ms"
                          f"  {size / 1e6:6.1f} MB")
            idle = probe_healthz(url, threading.Event(), seconds=3)
            print("  " + summary("/healthz idle", idle))
            # The downloading clients in a process of their own: their threads would hold up
            # the probe's own thread in this one (the GIL), which is not the API's doing.
            results: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
            stop = multiprocessing.Event()
            loaders = multiprocessing.Process(target=downloads, args=(base, args.clients, stop,
                                                                      results))
            loaders.start()
            time.sleep(1)  # every client is mid-download
            busy = probe_healthz(url, threading.Event(), seconds=args.seconds)
            stop.set()
            times = results.get(timeout=300)
            loaders.join(60)
            print("  " + summary("/healthz during downloads", busy))
            print(f"  downloads: {len(times)} in {args.seconds:g} s, median "
                  f"{statistics.median(times) * 1000:.0f} ms each")
        finally:
            stop_process(api, 10)
            client.close()


if __name__ == "__main__":
    main()
