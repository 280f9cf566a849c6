"""Every model of the catalogue (issue 22), through the service and bare, in the same run.

For each model: bare faster-whisper in a process of its own (the model loaded as the worker
loads it, each file transcribed with the worker's own arguments) and the service on a Redis of
its own (the API and one worker serving that model alone, `VERBATIM_WORKER_MODELS`), file by
file in turn, so that both meet the same load on a shared machine: each file decoded bare, then
sent through `POST /v1/jobs` with `model` and followed on its events stream as a user would (no
polling on the same cores), the order swapped every other file. Prints per model: WER over
the files with a reference, speed (audio seconds per second: bare decode time; the service's
job time from `started_at` to `finished_at`, and from submission to the end), the service's
throughput against bare on the clock and in CPU seconds (the bare process's; the worker's pool
process's, from /proc, over each job), load time and resident memory once loaded (the bare
process, the worker's pool process), and `tiny.en` against `base` on speed.

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jiwer
from stack import ROOT, start_api, wait_healthy

from shared.config import Settings
from shared.localredis import LocalRedis, stop_process
from shared.schemas import JobOptions

OPTIONS = JobOptions(language="en")  # the recordings are English; no detection either way
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ENDS = {"completed", "failed", "deleted"}


@dataclass
class Run:
    load_seconds: float = 0.0
    rss_mb: float = 0.0
    seconds: list[float] = field(default_factory=list)  # decode (bare) or job (service)
    cpu: list[float] = field(default_factory=list)  # CPU seconds of the process decoding
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


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process `pid`, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_bare: dict[str, Any] = {}  # in the bare process: the model and the worker's arguments


def bare_load(name: str) -> tuple[float, float]:
    """In the bare process: load `name` as the worker does; (seconds, resident MB)."""
    from faster_whisper import WhisperModel

    from worker import concurrency
    from worker.model import resolve_device, resolve_model_path
    from worker.transcriber import whisper_kwargs

    settings = Settings(data_dir=Path(os.environ["BENCH_DATA_DIR"]))
    started = time.perf_counter()
    device, compute_type = resolve_device(settings, name)
    _bare["model"] = WhisperModel(resolve_model_path(settings, name), device=device,
                                  compute_type=compute_type,
                                  cpu_threads=concurrency.threads_per_job(settings))
    _bare["kwargs"] = whisper_kwargs(OPTIONS, settings)
    return time.perf_counter() - started, rss_mb(os.getpid())


def bare_one(file: str) -> tuple[str, float, float]:
    """In the bare process: transcribe `file`; (text, seconds, CPU seconds)."""
    started, cpu = time.perf_counter(), time.process_time()
    segments, _ = _bare["model"].transcribe(file, **_bare["kwargs"])
    text = "".join(segment.text for segment in segments).strip()
    return text, time.perf_counter() - started, time.process_time() - cpu


def measure(name: str, files: list[Path], tmp: Path) -> tuple[Run, Run]:
    """Bare and through the service, file by file in turn."""
    alone, served = Run(), Run()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        alone.load_seconds, alone.rss_mb = pool.apply(bare_load, (name,))
        with _service(name, tmp, served) as (http, worker):
            for number, file in enumerate(files):
                bare_first = number % 2 == 0
                if bare_first:
                    _bare_one(pool, file, alone)
                _one(http, file, name, worker, served)
                if not bare_first:
                    _bare_one(pool, file, alone)
        pool.close()
        pool.join()
    return alone, served


def _bare_one(pool: Any, file: Path, run: Run) -> None:
    text, seconds, cpu = pool.apply(bare_one, (str(file),))
    run.texts.append(text)
    run.seconds.append(seconds)
    run.cpu.append(cpu)


@contextmanager
def _service(name: str, tmp: Path, run: Run) -> Iterator[tuple[httpx.Client, int]]:
    """The API and one worker serving `name` alone: a client and the pool process's pid."""
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
            pid = int(_wait_loaded(http, name).split(":")[1])
            run.load_seconds = _load_seconds(log)
            run.rss_mb = rss_mb(pid)
            yield http, pid
    finally:
        stop_process(worker, 30)
        stop_process(api, 20)
        server.stop()


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


def _one(http: httpx.Client, file: Path, name: str, worker: int, run: Run) -> None:
    started, cpu = time.perf_counter(), cpu_seconds(worker)
    with file.open("rb") as f:
        response = http.post("/v1/jobs", files={"file": (file.name, f)},
                             data={"model": name, "language": "en"})
    response.raise_for_status()
    job_id = response.json()["id"]
    _follow(http, job_id)
    run.wall.append(time.perf_counter() - started)
    run.cpu.append(cpu_seconds(worker) - cpu)
    job = http.get(f"/v1/jobs/{job_id}").json()
    if job["status"] != "completed":
        raise SystemExit(f"{file.name} on {name}: {job['error']}")
    begun, ended = (datetime.fromisoformat(job[k]) for k in ("started_at", "finished_at"))
    run.seconds.append((ended - begun).total_seconds())
    run.texts.append(http.get(f"/v1/jobs/{job_id}/transcript").json()["text"])


def _follow(http: httpx.Client, job_id: str) -> None:
    """Until the job ends, on its events stream."""
    with http.stream("GET", f"/v1/jobs/{job_id}/events") as events:
        events.raise_for_status()
        for line in events.iter_lines():
            if line.startswith("event:") and line.split(":", 1)[1].strip() in _ENDS:
                return
    raise SystemExit(f"the events of job {job_id} ended before the job")


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
          f"{'e2e x':>7} {'job/bare':>8} {'CPU':>6} {'load bare':>9} {'service':>8} "
          f"{'RSS bare':>8} {'worker':>7}")
    speeds, cpu = {}, {}  # audio seconds per second of bare decoding, and per CPU second
    with tempfile.TemporaryDirectory(prefix="verbatim-models-") as folder:
        tmp = Path(folder)
        os.environ["BENCH_DATA_DIR"] = str(tmp / "data")
        for name in args.models:
            alone, served = measure(name, files, tmp)
            bare_x = audio_seconds / sum(alone.seconds)
            job_x = audio_seconds / sum(served.seconds)
            speeds[name], cpu[name] = bare_x, audio_seconds / sum(alone.cpu)
            print(f"{name:>8} {wer(alone.texts, references):>8.3f} "
                  f"{wer(served.texts, references):>8.3f} {bare_x:>7.1f} {job_x:>7.1f} "
                  f"{audio_seconds / sum(served.wall):>7.1f} {job_x / bare_x:>8.1%} "
                  f"{sum(alone.cpu) / sum(served.cpu):>6.1%} "
                  f"{alone.load_seconds:>8.2f}s {served.load_seconds:>7.2f}s "
                  f"{alone.rss_mb:>6.0f}MB {served.rss_mb:>5.0f}MB", flush=True)
    if "base" in speeds and "tiny.en" in speeds:
        print(f"tiny.en is {speeds['tiny.en'] / speeds['base']:.2f}x as fast as base (bare; "
              f"{cpu['tiny.en'] / cpu['base']:.2f}x in CPU seconds).")


if __name__ == "__main__":
    main()
