"""Every model of the catalogue (issue 22), through the service and bare, in the same run.

For each model: bare faster-whisper in a process of its own (the model loaded as the worker
loads it, each file transcribed with the worker's own arguments), then the service on a Redis
of its own (the API and one worker serving that model alone, `VERBATIM_WORKER_MODELS`), the same
files sent one after another through `POST /v1/jobs` with `model`. Prints per model: WER over
the files with a reference, speed (audio seconds per second: bare decode time; the service's
job time from `started_at` to `finished_at`, and from submission to the end), the service's
throughput against bare, load time and resident memory once loaded (the bare process, the
worker's pool process), and `tiny.en` against `base` on speed.

    .venv/bin/python bench/models_bench.py [--audio ../shared/audio] [--models base tiny.en]
                                           [--limit N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import jiwer
from stack import ROOT, start_api, wait_healthy

from shared.config import Settings
from shared.localredis import LocalRedis, stop_process
from shared.schemas import JobOptions

OPTIONS = JobOptions(language="en")  # the recordings are English; no detection either way
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass
class Run:
    load_seconds: float = 0.0
    rss_mb: float = 0.0
    seconds: list[float] = field(default_factory=list)  # decode (bare) or job (service)
    wall: list[float] = field(default_factory=list)  # service: submission to end
    texts: list[str] = field(default_factory=list)


def norm(text: str) -> str:
    return " ".join(text.lower().translate(_PUNCTUATION).split())


def recordings(audio: Path) -> list[tuple[Path, float, str]]:
    """The manifest's files that have a reference transcript: (path, seconds, reference)."""
    entries = json.loads((audio / "manifest.json").read_text())
    return [(audio / e["file"], float(e["duration_s"]), e["reference"])
            for e in entries if e.get("reference")]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bare(name: str, files: list[str]) -> Run:
    """In a process of its own: load `name` as the worker does and transcribe `files`."""
    from faster_whisper import WhisperModel

    from worker import concurrency
    from worker.model import resolve_device, resolve_model_path
    from worker.transcriber import whisper_kwargs

    settings = Settings(data_dir=Path(os.environ["BENCH_DATA_DIR"]))
    run = Run()
    started = time.perf_counter()
    device, compute_type = resolve_device(settings, name)
    model = WhisperModel(resolve_model_path(settings, name), device=device,
                         compute_type=compute_type,
                         cpu_threads=concurrency.threads_per_job(settings))
    run.load_seconds = time.perf_counter() - started
    run.rss_mb = rss_mb(os.getpid())
    for file in files:
        started = time.perf_counter()
        segments, _ = model.transcribe(file, **whisper_kwargs(OPTIONS, settings))
        run.texts.append("".join(segment.text for segment in segments).strip())
        run.seconds.append(time.perf_counter() - started)
    return run


def service(name: str, files: list[Path], tmp: Path) -> Run:
    """The API and one worker serving `name` alone; the files sent one after another."""
    run = Run()
    server = LocalRedis(tmp / f"redis-{name}").start()
    env = {**os.environ, "VERBATIM_REDIS_URL": server.url, "VERBATIM_DATA_DIR": str(tmp / "data"),
           "VERBATIM_WORKER_MODELS": name, "VERBATIM_WORKER_METRICS_PORT": "0",
           "VERBATIM_LOG_FORMAT": "json"}
    api, url = start_api(env, tmp / f"api-{name}.log")
    log = tmp / f"worker-{name}.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker", "--pool",
         "prefork", "--concurrency", "1", "--without-gossip", "--without-mingle"],
        env=env | {"REMAP_SIGTERM": "SIGQUIT"}, cwd=ROOT, stdout=log.open("wb"),
        stderr=subprocess.STDOUT)
    try:
        wait_healthy(url)
        with httpx.Client(base_url=url, timeout=60) as http:
            loaded = _wait_loaded(http, name)
            run.load_seconds = _load_seconds(log)
            run.rss_mb = rss_mb(int(loaded.split(":")[1]))
            for file in files:
                _one(http, file, name, run)
    finally:
        stop_process(worker, 30)
        stop_process(api, 20)
        server.stop()
    return run


def _wait_loaded(http: httpx.Client, name: str) -> str:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        model = next(m for m in http.get("/v1/models").json()["data"] if m["id"] == name)
        if model["loaded"]:
            return str(model["loaded"][0])
        time.sleep(0.2)
    raise SystemExit(f"no worker loaded {name}")


def _load_seconds(log: Path) -> float:
    for line in log.read_text(errors="replace").splitlines():
        if '"model loaded"' in line:
            return float(json.loads(line)["seconds"])
    return float("nan")


def _one(http: httpx.Client, file: Path, name: str, run: Run) -> None:
    started = time.perf_counter()
    with file.open("rb") as f:
        response = http.post("/v1/jobs", files={"file": (file.name, f)},
                             data={"model": name, "language": "en"})
    response.raise_for_status()
    job_id = response.json()["id"]
    while (job := http.get(f"/v1/jobs/{job_id}").json())["status"] not in ("completed",
                                                                           "failed"):
        time.sleep(0.02)
    run.wall.append(time.perf_counter() - started)
    if job["status"] != "completed":
        raise SystemExit(f"{file.name} on {name}: {job['error']}")
    begun, ended = (datetime.fromisoformat(job[k]) for k in ("started_at", "finished_at"))
    run.seconds.append((ended - begun).total_seconds())
    run.texts.append(http.get(f"/v1/jobs/{job_id}/transcript").json()["text"])


def wer(texts: list[str], references: list[str]) -> float:
    return float(jiwer.wer([norm(r) for r in references], [norm(t) for t in texts]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audio", type=Path, default=ROOT.parent / "shared" / "audio")
    parser.add_argument("--models", nargs="+", default=list(Settings().catalogue))
    parser.add_argument("--limit", type=int, default=None,
                        help="only the manifest's first N recordings with a reference")
    args = parser.parse_args()
    chosen = recordings(args.audio)[: args.limit]
    files = [path for path, _, _ in chosen]
    audio_seconds = sum(seconds for _, seconds, _ in chosen)
    references = [reference for _, _, reference in chosen]
    print(f"{len(files)} recordings with references in {args.audio}, {audio_seconds:.0f} s of "
          f"English; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start. "
          "Speed in audio seconds per second.", flush=True)
    print(f"{'model':>8} {'WER bare':>8} {'service':>8} {'bare x':>7} {'job x':>7} "
          f"{'e2e x':>7} {'job/bare':>8} {'load bare':>9} {'service':>8} {'RSS bare':>8} "
          f"{'worker':>7}")
    speeds = {}
    with tempfile.TemporaryDirectory(prefix="verbatim-models-") as folder:
        tmp = Path(folder)
        os.environ["BENCH_DATA_DIR"] = str(tmp / "data")
        spawn = multiprocessing.get_context("spawn")
        for name in args.models:
            with spawn.Pool(1) as pool:
                alone = pool.apply(bare, (name, [str(f) for f in files]))
            served = service(name, files, tmp)
            bare_x = audio_seconds / sum(alone.seconds)
            job_x = audio_seconds / sum(served.seconds)
            speeds[name] = bare_x
            print(f"{name:>8} {wer(alone.texts, references):>8.3f} "
                  f"{wer(served.texts, references):>8.3f} {bare_x:>7.1f} {job_x:>7.1f} "
                  f"{audio_seconds / sum(served.wall):>7.1f} {job_x / bare_x:>8.1%} "
                  f"{alone.load_seconds:>8.2f}s {served.load_seconds:>7.2f}s "
                  f"{alone.rss_mb:>6.0f}MB {served.rss_mb:>5.0f}MB", flush=True)
    if "base" in speeds and "tiny.en" in speeds:
        print(f"tiny.en is {speeds['tiny.en'] / speeds['base']:.2f}x as fast as base (bare).")


if __name__ == "__main__":
    main()
