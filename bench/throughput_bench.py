"""Throughput of a worker under a burst: 8 recordings of 60 s submitted at once.

One run: bare faster-whisper transcribes the recordings one after another in this process
(model base, int8, beam 5, VAD: what a script calling the library would do), then, for each
worker configuration, a private Redis, the API and one worker take all of them at once
through `POST /v1/jobs`. Each figure is audio seconds per wall second (from the first upload to
the last job finished). Bare runs come before and after each service run, and each ratio is
over the mean of the two around it, so that a machine whose load drifts slows both alike.

    .venv/bin/python bench/throughput_bench.py [--rounds N] [--configs NAME ...] [--json]
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from stack import ROOT, start_api, wait_healthy

from shared.config import Settings
from shared.localredis import LocalRedis
from shared.schemas import JobOptions
from worker.concurrency import default_concurrency
from worker.model import resolve_device, resolve_model_path
from worker.transcriber import whisper_kwargs

SAMPLE_RATE = 16000
RECORDINGS = 8
RECORDING_SECONDS = 60
POLL_SECONDS = 0.5
JOB_TIMEOUT_SECONDS = 1200


@dataclass(frozen=True)
class Config:
    """One worker: its pool, jobs at once, CPU threads per job and default batch size (None:
    the server's own default)."""

    name: str
    pool: str
    concurrency: int | None
    cpu_threads: int | None = 0
    batch_size: int | None = 1

    def env(self) -> dict[str, str]:
        settings = {"VERBATIM_CPU_THREADS": self.cpu_threads,
                    "VERBATIM_BATCH_SIZE": self.batch_size}
        return {name: str(value) for name, value in settings.items() if value is not None}

    @property
    def jobs(self) -> int:
        """Jobs at once: as configured, or the worker's default on this machine."""
        return self.concurrency or default_concurrency(Settings())


CONFIGS = {config.name: config for config in [
    Config("default", "prefork", None, None, None),  # what `verbatim serve` runs
    Config("prefork-1", "prefork", 1),
    Config("prefork-2", "prefork", 2, cpu_threads=1),
    Config("threads-2", "threads", 2, cpu_threads=1),
    Config("batch-4", "prefork", 1, batch_size=4),
    Config("batch-8", "prefork", 1, batch_size=8),
    Config("threads-2-batch-4", "threads", 2, cpu_threads=1, batch_size=4),
    Config("threads-2-batch-8", "threads", 2, cpu_threads=1, batch_size=8),
    Config("threads-4", "threads", 4, cpu_threads=1),
    Config("threads-4-batch-4", "threads", 4, cpu_threads=1, batch_size=4),
    Config("threads-2x2-batch-8", "threads", 2, cpu_threads=2, batch_size=8),
    Config("prefork-2-batch-8", "prefork", 2, cpu_threads=1, batch_size=8),
]}
DEFAULT_CONFIGS = ["default", "prefork-1", "threads-2", "batch-8"]


@dataclass
class Figures:
    """Audio seconds per wall second of each run, by configuration (bare included)."""

    rates: dict[str, list[float]] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    similarity: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, rate: float, bare: float | None) -> None:
        self.rates.setdefault(name, []).append(rate)
        if bare is not None:
            self.ratios.setdefault(name, []).append(rate / bare)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- recordings


def speech_sources() -> list[Path]:
    """Real speech: the shared corpus when present, else the test FLACs."""
    shared = ROOT.parent / "shared" / "audio"
    if (shared / "en_ljspeech").is_dir():
        return [*sorted((shared / "en_ljspeech").glob("*.flac")),
                *sorted((shared / "en_librispeech").glob("*.flac")), shared / "jfk.flac"]
    return sorted((ROOT / "tests" / "data").glob("*.flac"))


def make_recordings(folder: Path) -> list[Path]:
    """RECORDINGS WAV files of RECORDING_SECONDS, each a stretch of all the speech joined end
    to end, starting an eighth further along (wrapping round), so no two are the same."""
    from faster_whisper import decode_audio

    speech = np.concatenate([decode_audio(str(path)) for path in speech_sources()])
    length = RECORDING_SECONDS * SAMPLE_RATE
    paths = []
    for index in range(RECORDINGS):
        start = index * speech.size // RECORDINGS
        samples = np.take(speech, np.arange(start, start + length), mode="wrap")
        path = folder / f"speech-{index + 1}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
        paths.append(path)
    return paths


# ---------------------------------------------------------------- bare


def run_bare(files: list[Path], settings: Settings) -> tuple[float, list[str]]:
    """Load the model, then transcribe the files one after another; (rate, texts)."""
    from faster_whisper import WhisperModel

    device, compute_type = resolve_device(settings)
    model = WhisperModel(resolve_model_path(settings), device=device, compute_type=compute_type,
                         cpu_threads=settings.cpu_threads)
    kwargs = whisper_kwargs(JobOptions(), settings)
    started, texts = time.perf_counter(), []
    for file in files:
        segments, _ = model.transcribe(str(file), **kwargs)
        texts.append("".join(segment.text for segment in segments).strip())
    return RECORDINGS * RECORDING_SECONDS / (time.perf_counter() - started), texts


# ---------------------------------------------------------------- service


def worker_command(config: Config) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker",
            "--pool", config.pool,
            *(["--concurrency", str(config.concurrency)] if config.concurrency else []),
            "--loglevel", "INFO", "--without-gossip", "--without-mingle"]


def run_service(files: list[Path], config: Config, tmp: Path) -> tuple[float, list[str]]:
    """Start Redis, the API and a worker as `config` says, wait until every model is loaded,
    submit every file at once and wait for all; (rate, texts)."""
    run = tmp / config.name
    run.mkdir(exist_ok=True)
    with ExitStack() as stack:
        redis_url = stack.enter_context(LocalRedis(run)).url
        env = {**os.environ, "VERBATIM_REDIS_URL": redis_url, "VERBATIM_AUTH": "off",
               "VERBATIM_DATA_DIR": str(tmp / "data"), "VERBATIM_WORKER_METRICS_PORT": "0",
               "VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "1", **config.env()}
        api, url = start_api(env, run / "api.log")
        stack.callback(_stop, api)
        worker = subprocess.Popen(worker_command(config), env=env, cwd=ROOT,
                                  stdout=(run / "worker.log").open("wb"), stderr=subprocess.STDOUT)
        stack.callback(_stop, worker)
        wait_healthy(url)
        http = stack.enter_context(httpx.Client(base_url=url, timeout=60))
        processes = config.jobs if config.pool == "prefork" else 1
        _wait_loaded(http, processes, worker)
        started = time.perf_counter()
        with ThreadPoolExecutor(RECORDINGS) as pool:
            ids = list(pool.map(lambda file: _submit(http, file), files))
        jobs = _wait_all(http, ids, worker)
        seconds = time.perf_counter() - started
        if failed := [job for job in jobs if job["status"] != "completed"]:
            raise SystemExit(f"{config.name}: {len(failed)} jobs failed: {failed[0]['error']}")
        texts = [http.get(f"/v1/jobs/{job_id}/transcript.txt").text.strip() for job_id in ids]
    return RECORDINGS * RECORDING_SECONDS / seconds, texts


def _stop(child: subprocess.Popen[bytes]) -> None:
    child.terminate()
    try:
        child.wait(30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _wait_loaded(http: httpx.Client, processes: int, worker: subprocess.Popen[bytes]) -> None:
    """Until `processes` worker processes have their model loaded (`/readyz`)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit("the worker exited before its model loaded")
        ready = http.get("/readyz")
        if ready.status_code == 200 and len(ready.json()["workers"]) >= processes:
            return
        time.sleep(0.2)
    raise SystemExit("the worker did not load its model")


def _submit(http: httpx.Client, file: Path) -> str:
    with file.open("rb") as audio:
        response = http.post("/v1/jobs", files={"file": (file.name, audio, "audio/wav")})
    response.raise_for_status()
    return str(response.json()["id"])


def _wait_all(http: httpx.Client, ids: list[str], worker: subprocess.Popen[bytes]) -> list[dict]:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(ids):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the worker exited or the jobs took too long")
        for job_id in ids:
            if job_id not in done:
                job = http.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in ("completed", "failed"):
                    done[job_id] = job
        time.sleep(POLL_SECONDS)
    return [done[job_id] for job_id in ids]


def similarity(texts: list[str], reference: list[str]) -> float:
    """The least word-level similarity (difflib ratio) of a run's texts with bare's."""
    return min(difflib.SequenceMatcher(None, a.lower().split(), b.lower().split()).ratio()
               for a, b in zip(texts, reference, strict=True))


# ---------------------------------------------------------------- main


def bench(configs: list[Config], rounds: int, tmp: Path) -> Figures:
    settings = Settings(data_dir=tmp / "data")
    files = make_recordings(tmp)
    figures = Figures()
    for round_ in range(1, rounds + 1):
        before, reference = run_bare(files, settings)
        figures.add("bare", before, None)
        note(f"round {round_}: bare {before:.2f} audio s/s")
        for config in configs:
            rate, texts = run_service(files, config, tmp)
            after, _ = run_bare(files, settings)
            figures.add("bare", after, None)
            # Over the bare runs on either side of it: the machine's load drifts.
            figures.add(config.name, rate, (before + after) / 2)
            figures.similarity[config.name] = min(
                figures.similarity.get(config.name, 1.0), similarity(texts, reference))
            note(f"round {round_}: {config.name} {rate:.2f} audio s/s, then bare {after:.2f}: "
                 f"{figures.ratios[config.name][-1]:.2f} x bare")
            before = after
    return figures


def print_table(figures: Figures, configs: list[Config]) -> None:
    print(f"{RECORDINGS} x {RECORDING_SECONDS} s submitted at once; model base int8, beam 5, "
          f"VAD; {os.cpu_count()} CPUs")
    print(f"{'configuration':<20}{'pool':>9}{'jobs':>6}{'threads':>9}{'batch':>7}"
          f"{'audio s/s':>11}{'x bare':>8}{'runs':>6}{'min':>6}{'max':>6}{'text sim':>10}")
    bare = figures.rates["bare"]
    print(f"{'bare sequential':<20}{'-':>9}{1:>6}{0:>9}{1:>7}{statistics.fmean(bare):>11.2f}"
          f"{1:>8.2f}{len(bare):>6}")
    for config in configs:
        ratios = figures.ratios[config.name]
        print(f"{config.name:<20}{config.pool:>9}{config.jobs:>6}{_shown(config.cpu_threads):>9}"
              f"{_shown(config.batch_size):>7}{statistics.fmean(figures.rates[config.name]):>11.2f}"
              f"{statistics.fmean(ratios):>8.2f}{len(ratios):>6}{min(ratios):>6.2f}"
              f"{max(ratios):>6.2f}{figures.similarity[config.name]:>10.2f}")


def _shown(value: int | None) -> str:
    return "unset" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="runs of each configuration")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=DEFAULT_CONFIGS,
                        help=f"worker configurations (default: {' '.join(DEFAULT_CONFIGS)})")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    configs = [CONFIGS[name] for name in args.configs]
    with tempfile.TemporaryDirectory(prefix="verbatim-throughput-") as name:
        figures = bench(configs, args.rounds, Path(name))
    if args.json:
        print(json.dumps({"rates": figures.rates, "ratios": figures.ratios,
                          "similarity": figures.similarity}, indent=2))
    else:
        print_table(figures, configs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
