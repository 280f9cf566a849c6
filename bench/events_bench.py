"""Segment latency of job events: from a segment's decode in the worker to its arrival at an
SSE client of `GET /v1/jobs/{id}/events`, with 1, 50 and 200 clients on one API process.

The worker appends each segment to the job's Redis Stream as soon as faster-whisper yields it;
the stream id's first part is Redis's clock (ms) at that moment. A client's arrival time is
taken on the same host's clock when its `segment` event has been parsed, so each latency is
`arrival - stream id ms` (resolution 1 ms: the id is truncated, so figures err up to 1 ms
high). Only segments published after every client of a run was connected count, so the
figures measure live relaying, not the replay of history.

    .venv/bin/python bench/events_bench.py                     # 1, 50, 200 listeners
    .venv/bin/python bench/events_bench.py --listeners 1 500 --jobs 2
    .venv/bin/python bench/events_bench.py --synthetic         # no model: the relay alone

`--synthetic` publishes the segments itself (one every 100 ms, as `worker/tasks.py` would)
to a job that no worker runs, so the CPUs are not shared with decoding: it separates the
relay's cost from the machine's contention.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

import httpx
import numpy as np
from httpx_sse import aconnect_sse
from stack import ROOT, Worker, start_api, wait_ready

from shared.config import Settings
from shared.errors import TranscriptionError
from shared.localredis import LocalRedis, stop_process
from shared.schemas import JobOptions, Segment
from shared.state.job_events import JobEvents
from shared.state.jobs import JobStore, new_job_id

DATA = ROOT / "tests" / "data"


def recording(path: Path) -> Path:
    """About 36 s of read speech (the LJ Speech clips of tests/data, one after the other)."""
    from faster_whisper import decode_audio

    parts = [decode_audio(str(p)) for p in sorted(DATA.glob("LJ*.flac"))]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(np.concatenate(parts), -1, 1) * 32767).astype("<i2").tobytes())
    return path


async def listen(http: httpx.AsyncClient, job_id: str, connected: list[float],
                 samples: list[tuple[int, float]], all_in: asyncio.Event, listeners: int) -> None:
    """One client: (published ms, arrival ms) of each segment until the job ends."""
    async with aconnect_sse(http, "GET", f"/v1/jobs/{job_id}/events") as source:
        assert source.response.status_code == 200, source.response.status_code
        connected.append(time.time() * 1000)
        if len(connected) == listeners:
            all_in.set()
        async for sse in source.aiter_sse():
            if sse.event == "segment":
                samples.append((int(sse.id.split("-")[0]), time.time() * 1000))
            elif sse.event in ("completed", "failed", "deleted"):
                return


async def one_job(
    url: str, audio: Path, listeners: int, synthetic: str | None = None
) -> tuple[list[float], int]:
    """Submit the recording (or, with `synthetic` the Redis URL, publish segments of a job no
    worker runs), follow it with `listeners` clients; the live latencies (ms) and the number
    of segments."""
    limits = httpx.Limits(max_connections=listeners + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as http:
        if synthetic:
            job_id = await asyncio.to_thread(_synthetic_job, synthetic, audio)
        else:
            files = {"file": (audio.name, await asyncio.to_thread(audio.read_bytes))}
            job_id = (await http.post("/v1/jobs", files=files)).json()["id"]
        connected: list[float] = []
        samples: list[tuple[int, float]] = []
        all_in = asyncio.Event()
        clients = [listen(http, job_id, connected, samples, all_in, listeners)
                   for _ in range(listeners)]
        if synthetic:
            clients.append(_publish(synthetic, job_id, all_in))
        await asyncio.gather(*clients)
    all_in = max(connected)
    live = [arrived - published for published, arrived in samples if published > all_in]
    return live, len(samples) // listeners


SYNTHETIC_SEGMENTS = 50
SYNTHETIC_INTERVAL_SECONDS = 0.1


def _synthetic_job(redis_url: str, audio: Path) -> str:
    store = JobStore.from_url(redis_url)
    job_id = new_job_id()
    store.create(job_id, audio.name, JobOptions(), 36.0, audio)
    return job_id


async def _publish(redis_url: str, job_id: str, all_in: asyncio.Event) -> None:
    """Once every client is connected, publish segments as a worker would, then the end."""
    await all_in.wait()
    store = JobStore.from_url(redis_url)
    events = JobEvents.on(store.redis, Settings(redis_url=redis_url))
    for number in range(SYNTHETIC_SEGMENTS):
        segment = Segment(id=number, start=number * 2.0, end=number * 2.0 + 1.9,
                          text=" Printing, in the only sense with which we are at present.")
        await asyncio.to_thread(events.segment, job_id, segment)
        await asyncio.sleep(SYNTHETIC_INTERVAL_SECONDS)
    await asyncio.to_thread(events.failed, job_id, TranscriptionError("synthetic job ends"))
    await asyncio.to_thread(store.delete, job_id)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listeners", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--jobs", type=int, default=1, help="jobs per listener count")
    parser.add_argument("--synthetic", action="store_true",
                        help="no worker: publish segments from here (the relay alone)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verbatim-events-") as folder:
        run(Path(folder), args)


def run(tmp: Path, args: argparse.Namespace) -> None:
    redis_server = LocalRedis(tmp / "redis").start()
    env = {**os.environ, "VERBATIM_REDIS_URL": redis_server.url,
           "VERBATIM_DATA_DIR": str(tmp / "data"), "VERBATIM_PROGRESS_INTERVAL_SECONDS": "1"}
    api, url = start_api(env, tmp / "api.log")
    worker = Worker("events", env, tmp)
    synthetic = redis_server.url if args.synthetic else None
    audio = recording(tmp / "lj-passage.wav")
    try:
        if synthetic:
            what = f"{SYNTHETIC_SEGMENTS} published segments (no worker)"
            time.sleep(3)  # the API starts
        else:
            worker.start()
            with httpx.Client(base_url=url, timeout=60) as http:
                wait_ready(http)
            asyncio.run(one_job(url, audio, 1))  # warm-up: the worker loads its model lazily
            what = f"{audio.name} decoded by the worker"
        print(f"segment publish -> SSE client, {what} ({os.cpu_count()} CPUs; API, Redis and "
              "clients on this host)", flush=True)
        print(f"{'listeners':>9} {'segments':>8} {'samples':>7} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'max ms':>7}")
        for listeners in args.listeners:
            latencies: list[float] = []
            segments = 0
            for _ in range(args.jobs):
                live, segments = asyncio.run(one_job(url, audio, listeners, synthetic))
                latencies += live
            if not latencies:
                print(f"{listeners:>9} {segments:>8} {0:>7}   (no segment after all connected)")
                continue
            print(f"{listeners:>9} {segments:>8} {len(latencies):>7} "
                  f"{statistics.median(latencies):>7.1f} {percentile(latencies, 0.99):>7.1f} "
                  f"{max(latencies):>7.1f}", flush=True)
    finally:
        if worker.process is not None:
            worker.kill()
        stop_process(api, 20)
        redis_server.stop()


if __name__ == "__main__":
    sys.exit(main())
