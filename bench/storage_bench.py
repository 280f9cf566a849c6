"""Media storage benchmark: `local` against `s3` (a real SeaweedFS on loopback).

Uploads: for each store, one API process (no worker: the upload path alone) on a Redis of its
own receives a 10 MB and a 500 MB WAV; printed are the time to the 202 and the API's peak
resident memory during each upload (its count reset just before, Linux `clear_refs`), and,
for scale, the time boto3 takes to put the same files straight into the store.

Spread job: for each store, the API and two workers (one pool process each) transcribe a
recording of about 64 s spread over 30-second windows; printed is its wall time from the POST
to `completed`, after a warm-up job.

    .venv/bin/python bench/storage_bench.py                   # both parts
    .venv/bin/python bench/storage_bench.py --sizes 10 100    # other upload sizes (MB)
    .venv/bin/python bench/storage_bench.py --no-spread
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import wave
from pathlib import Path

import httpx
import numpy as np
from boto3.s3.transfer import TransferConfig
from stack import ROOT, Worker, start_api, wait_healthy, wait_ready

sys.path.insert(0, str(ROOT / "tests"))  # the tests' SeaweedFS launcher
from objectstore import BUCKET, SeaweedStore

from shared.localredis import LocalRedis

SPREAD = {"VERBATIM_SPLIT_SECONDS": "30", "VERBATIM_WINDOW_SECONDS": "30",
          "VERBATIM_WINDOW_SEARCH_SECONDS": "10"}
SPEECH = ("LJ001-0001", "LJ001-0003", "LJ001-0005", "LJ001-0007", "1089-134686-0000", "jfk",
          "1089-134686-0001")


def silence_wav(path: Path, megabytes: int) -> Path:
    """48 kHz stereo silence, so that 500 MB stays under the default duration limit."""
    second = b"\0\0" * 2 * 48000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(48000)
        for _ in range(megabytes * 1000 * 1000 // len(second)):
            out.writeframes(second)
    return path


def speech_wav(path: Path) -> Path:
    from faster_whisper import decode_audio

    gap = np.zeros(8000, np.float32)
    parts = [p for name in SPEECH
             for p in (decode_audio(str(ROOT / "tests" / "data" / f"{name}.flac")), gap)]
    samples = (np.concatenate(parts) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())
    return path


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def upload(url: str, path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    with path.open("rb") as file:
        response = httpx.post(f"{url}/v1/jobs", files={"file": (path.name, file)}, timeout=900)
    seconds = time.perf_counter() - started
    if response.status_code == 202:
        httpx.delete(f"{url}/v1/jobs/{response.json()['id']}")
    return response.status_code, seconds


def uploads(env: dict[str, str], files: list[Path], work: Path, name: str) -> list[str]:
    api, url = start_api(env, work / f"api-{name}.log")
    lines = []
    try:
        wait_healthy(url)
        upload(url, files[0])  # warm-up: the first request's imports and connections
        for path in files:
            Path(f"/proc/{api.pid}/clear_refs").write_text("5")
            status, seconds = upload(url, path)
            megabytes = path.stat().st_size / 1e6
            peak = peak_kib(api.pid) / 1024
            lines.append(f"{name:6} upload {megabytes:5.0f} MB -> {status} in {seconds:6.2f} s "
                         f"({megabytes / seconds:5.0f} MB/s), API peak {peak:4.0f} MiB")
    finally:
        api.terminate()
        api.wait()
    return lines


def store_alone(store: SeaweedStore, files: list[Path]) -> list[str]:
    """The same files put straight into the store by boto3 (8 MiB parts, one thread): what
    the store itself takes, with no API in between."""
    client = store.client()
    config = TransferConfig(multipart_chunksize=8 * 2**20, max_concurrency=1)
    lines = []
    for path in files:
        started = time.perf_counter()
        client.upload_file(str(path), BUCKET, f"bench/{path.name}",  # type: ignore[attr-defined]
                           Config=config)
        seconds = time.perf_counter() - started
        megabytes = path.stat().st_size / 1e6
        lines.append(f"store  alone  {megabytes:5.0f} MB        in {seconds:6.2f} s "
                     f"({megabytes / seconds:5.0f} MB/s), boto3 straight into SeaweedFS")
    return lines


def spread(env: dict[str, str], recording: Path, work: Path, name: str) -> str:
    env = env | SPREAD
    api, url = start_api(env, work / f"api-spread-{name}.log")
    workers = [Worker(f"{name}-{n}", env, work) for n in (1, 2)]
    try:
        for worker in workers:
            worker.start()
        wait_healthy(url)
        with httpx.Client(base_url=url, timeout=60) as http:
            wait_ready(http, 300)
            wall = [run_job(http, recording) for _ in range(2)][1]  # the first warms up
    finally:
        for worker in workers:
            worker.terminate()
        api.terminate()
        api.wait()
    return f"{name:6} spread job (64 s of speech, 30 s windows, 2 workers): {wall:6.2f} s"


def run_job(http: httpx.Client, recording: Path) -> float:
    started = time.perf_counter()
    with recording.open("rb") as file:
        job = http.post("/v1/jobs", files={"file": (recording.name, file)}).json()
    while job["status"] not in ("completed", "failed"):
        time.sleep(0.05)
        job = http.get(f"/v1/jobs/{job['id']}").json()
    if job["status"] != "completed":
        raise SystemExit(f"the spread job failed: {job}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 500], help="MB")
    parser.add_argument("--no-spread", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verbatim-storage-bench-") as tmp:
        work = Path(tmp)
        files = [silence_wav(work / f"upload-{size}mb.wav", size) for size in args.sizes]
        (work / "seaweed").mkdir()
        store = SeaweedStore(work / "seaweed").start()
        lines: list[str] = []
        try:
            with LocalRedis(work / "redis") as redis_server:
                base = dict(os.environ) | {
                    "VERBATIM_AUTH": "off", "VERBATIM_REDIS_URL": redis_server.url,
                    "VERBATIM_DATA_DIR": str(work / "data")}
                for name, env in (("local", base), ("s3", base | store.env())):
                    lines += uploads(env, files, work, name)
                    print(lines[-1], file=sys.stderr)
                lines += store_alone(store, files)
                if not args.no_spread:
                    recording = speech_wav(work / "speech.wav")
                    for name, env in (("local", base), ("s3", base | store.env())):
                        lines.append(spread(env, recording, work, name))
                        print(lines[-1], file=sys.stderr)
        finally:
            store.stop()
        print("\n".join(lines))


if __name__ == "__main__":
    main()
