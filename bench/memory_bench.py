"""Memory benchmark: a worker's peak memory does not grow with the recording's length.

Starts Redis, the API and one worker (one pool process), generates recordings of the given
lengths (FLAC: digital silence, or low noise that voice-activity detection has to listen to
all the way), and transcribes each in turn, reading the pool process's peak resident memory
(`VmHWM`, reset through `/proc/PID/clear_refs` before each job) against its memory before the
job, with the model loaded.

    .venv/bin/python bench/memory_bench.py                         # 60 min and 4 h of silence
    .venv/bin/python bench/memory_bench.py --minutes 10 60 --signal noise
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
import httpx
import numpy as np
from stack import ROOT, Worker, start_api, wait_ready

from shared.localredis import LocalRedis, stop_process

RATE = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[60, 240])
    parser.add_argument("--signal", choices=["silence", "noise"], default="silence")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verbatim-memory-") as tmp:
        run(Path(tmp), args)


def write_recording(path: Path, seconds: float, signal: str) -> Path:
    """`seconds` of mono 16 kHz FLAC, written a minute at a time."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=RATE, layout="mono")
        for start in range(0, int(seconds * RATE), 60 * RATE):
            count = min(60 * RATE, int(seconds * RATE) - start)
            samples = (np.zeros(count, np.int16) if signal == "silence"
                       else rng.normal(0, 30, count).astype(np.int16))  # about -60 dBFS
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate, frame.pts = RATE, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def memory(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for {pid}")


def run(tmp: Path, args: argparse.Namespace) -> None:
    redis_server = LocalRedis(tmp / "redis").start()
    env = {**os.environ, "VERBATIM_REDIS_URL": redis_server.url,
           "VERBATIM_DATA_DIR": str(tmp / "data"), "VERBATIM_MAX_AUDIO_SECONDS": "14400",
           "VERBATIM_DELETE_UPLOAD_WHEN_DONE": "true"}
    api, url = start_api(env, tmp / "api.log")
    worker = Worker("memory", env, tmp)
    worker.start()
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            wait_ready(http)
            transcribe(http, ROOT / "tests" / "data" / "jfk.flac")  # model and VAD warm
            (pool,) = worker.pool()
            print(f"{'recording':>12} {'signal':>8} {'wall s':>8} {'before MiB':>11} "
                  f"{'peak MiB':>9} {'grown MiB':>10}")
            for minutes in args.minutes:
                path = write_recording(tmp / f"{minutes:g}min.flac", minutes * 60, args.signal)
                Path(f"/proc/{pool}/clear_refs").write_text("5")
                before = memory(pool, "VmRSS")
                started = time.monotonic()
                transcribe(http, path)
                wall = time.monotonic() - started
                peak = memory(pool, "VmHWM")
                print(f"{minutes:>9g} min {args.signal:>8} {wall:8.1f} {before / 2**20:11.0f} "
                      f"{peak / 2**20:9.0f} {(peak - before) / 2**20:10.0f}")
                path.unlink()
    finally:
        worker.kill()
        stop_process(api, 20)
        redis_server.stop()


def transcribe(http: httpx.Client, path: Path) -> dict:
    with path.open("rb") as f:
        job = http.post("/v1/jobs", files={"file": (path.name, f)}).json()
    while job["status"] not in ("completed", "failed"):
        time.sleep(0.5)
        job = http.get(f"/v1/jobs/{job['id']}").json()
    if job["status"] != "completed":
        raise SystemExit(f"{path.name}: {job['error']}")
    return job


if __name__ == "__main__":
    main()
