"""Time faster-whisper called directly against the same files sent through the whole service.

One run: load the model in this process and transcribe every file (direct), then start a
private redis-server, the uvicorn API and a Celery worker and push the same files through
`POST /v1/jobs` (service). Prints per-file and total seconds, real-time factors, and whether
the service returned the same text. See bench/README.md.

    .venv/bin/python bench/transcribe_bench.py [--files F ...] [--repeat N] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import mimetypes
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import ctranslate2
import faster_whisper
import httpx
import redis
from faster_whisper import WhisperModel

from shared.config import Settings
from shared.schemas import JobOptions
from worker.model import resolve_device, resolve_model_path
from worker.transcriber import whisper_kwargs

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
POLL_SECONDS = 0.05
START_TIMEOUT_SECONDS = 30.0
JOB_TIMEOUT_SECONDS = 600.0
STOP_TIMEOUT_SECONDS = 10.0
# The worker's JSON log line for its model load.
MODEL_LOADED = re.compile(r"\"message\": \"model loaded\".*?\"seconds\": ([0-9.]+)")


class BenchError(RuntimeError):
    """The service could not be started or a job went wrong; the message says what."""


@dataclass
class FileResult:
    """Every timing of one file; a list holds one figure per repeat."""

    file: str
    audio_seconds: float = 0.0
    direct_seconds: list[float] = field(default_factory=list)
    service_seconds: list[float] = field(default_factory=list)
    worker_seconds: list[float] = field(default_factory=list)
    text_match: bool = True
    error: str | None = None


@dataclass
class LoadTimes:
    """One-off costs kept out of the per-file figures."""

    direct_model_prepare_seconds: float = 0.0
    direct_model_load_seconds: float = 0.0
    service_start_seconds: float = 0.0
    worker_warmup_job_seconds: float = 0.0
    worker_model_load_seconds: float | None = None


# ---------------------------------------------------------------- input


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", nargs="+", type=Path, help="audio files (default: see README)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per file (default 1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--poll", type=float, default=POLL_SECONDS,
        help=f"seconds between status polls (default {POLL_SECONDS}); on a small machine "
        "fast polling takes CPU from the worker",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def default_files() -> list[Path]:
    """The shared LibriSpeech FLACs plus jfk.flac when present, else the test FLACs."""
    shared = REPO.parent / "shared" / "audio"
    if (shared / "en_librispeech").is_dir():
        return [*sorted((shared / "en_librispeech").glob("*.flac")), shared / "jfk.flac"]
    return sorted((REPO / "tests" / "data").glob("*.flac"))


def note(message: str) -> None:
    """Progress goes to stderr so that `--json` output stays clean."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- direct


def run_direct(
    results: dict[Path, FileResult], settings: Settings, repeat: int
) -> tuple[dict[Path, str], LoadTimes]:
    """Transcribe every file in this process; record durations, timings and texts."""
    times = LoadTimes()
    started = time.perf_counter()
    path = resolve_model_path(settings)  # assembles and verifies the bundled model
    times.direct_model_prepare_seconds = time.perf_counter() - started
    model, times.direct_model_load_seconds = load_model(path, settings)
    texts: dict[Path, str] = {}
    for _ in range(repeat):
        for file, result in results.items():
            texts[file] = time_direct(model, file, settings, result)
    del model  # free its memory before the worker loads its own copy
    gc.collect()
    return texts, times


def load_model(path: str, settings: Settings) -> tuple[WhisperModel, float]:
    """Load the model exactly as the worker does; return it and the seconds it took."""
    device, compute_type = resolve_device(settings)
    started = time.perf_counter()
    model = WhisperModel(
        path, device=device, compute_type=compute_type, cpu_threads=settings.cpu_threads
    )
    return model, time.perf_counter() - started


def time_direct(model: WhisperModel, file: Path, settings: Settings, result: FileResult) -> str:
    """Transcribe one file (consuming every segment) and record the time; return the text."""
    started = time.perf_counter()
    segments, info = model.transcribe(str(file), **whisper_kwargs(JobOptions(), settings))
    text = "".join(segment.text for segment in segments).strip()
    result.direct_seconds.append(time.perf_counter() - started)
    result.audio_seconds = info.duration
    note(f"  direct  {file.name}: {result.direct_seconds[-1]:.2f} s")
    return text


# ---------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    """The project's choice of redis-server, or the one on PATH."""
    try:
        from shared.localredis import redis_server_binary
    except ImportError:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("no redis-server on PATH") from None
        return binary
    return redis_server_binary()


@contextmanager
def process(
    name: str, command: list[str], env: dict[str, str], logs: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` in its own session with output in `logs/name.log`; stop it on exit."""
    with (logs / f"{name}.log").open("wb") as log:
        # Own session: a Ctrl-C in the terminal reaches only us, and we stop the children
        # in order (worker, API, Redis); the group id also lets us kill Celery's pool child.
        child = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            yield child
        finally:
            stop(child)


def stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL to the whole process group if it does not exit in time."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(child.pid, signal.SIGKILL)  # leftovers such as a pool process
    except ProcessLookupError:
        pass
    child.wait()


def ensure_alive(child: subprocess.Popen[bytes], name: str) -> None:
    if child.poll() is not None:
        raise BenchError(f"{name} exited with status {child.returncode}")


def wait_until(
    check: Callable[[], bool], what: str, timeout: float, child: subprocess.Popen[bytes]
) -> None:
    """Poll `check` every POLL_SECONDS until it is true; fail early if `child` exits."""
    deadline = time.monotonic() + timeout
    while not check():
        ensure_alive(child, what)
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_SECONDS)


# ---------------------------------------------------------------- service


@dataclass
class Service:
    """The running stack: an HTTP client for the API and the worker process to watch."""

    client: httpx.Client
    worker: subprocess.Popen[bytes]
    logs: Path


def start_redis(stack: ExitStack, tmp: Path, env: dict[str, str]) -> str:
    """A throwaway redis-server: no RDB snapshots, no AOF, files in `tmp/redis`."""
    port, directory = free_port(), tmp / "redis"
    directory.mkdir()
    command = [
        redis_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory),
        "--save", "", "--appendonly", "no",
    ]  # fmt: skip
    child = stack.enter_context(process("redis", command, env, tmp / "logs"))
    url = f"redis://127.0.0.1:{port}/0"
    client = stack.enter_context(redis.Redis.from_url(url, socket_timeout=1))
    wait_until(lambda: _pings(client), "redis-server", START_TIMEOUT_SECONDS, child)
    return url


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def start_service(stack: ExitStack, tmp: Path, data_dir: Path) -> Service:
    """Start Redis, the API and the worker; return once the API answers /healthz."""
    env = {"VERBATIM_AUTH": "off", **os.environ, "VERBATIM_DATA_DIR": str(data_dir)}
    env["VERBATIM_REDIS_URL"] = start_redis(stack, tmp, env)
    port = free_port()
    api = stack.enter_context(process("api", [
        PYTHON, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
    ], env, tmp / "logs"))  # fmt: skip
    worker = stack.enter_context(process("worker", [
        PYTHON, "-m", "celery", "-A", "worker.celery_app:app", "worker", "--pool", "prefork",
        "--concurrency", "1", "--loglevel", "INFO",
    ], env, tmp / "logs"))  # fmt: skip
    client = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60))
    wait_until(lambda: _healthy(client), "the API", START_TIMEOUT_SECONDS, api)
    return Service(client, worker, tmp / "logs")


def _healthy(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def run_job(service: Service, file: Path) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """Submit, poll to a terminal status, fetch transcript.json; return seconds, job, transcript."""
    started = time.perf_counter()
    job = submit(service.client, file)
    job = poll(service, job["id"])
    transcript: dict[str, Any] = {}
    if job["status"] == "completed":
        response = service.client.get(f"/v1/jobs/{job['id']}/transcript.json")
        response.raise_for_status()
        transcript = response.json()
    return time.perf_counter() - started, job, transcript


def submit(client: httpx.Client, file: Path) -> dict[str, Any]:
    media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    with file.open("rb") as audio:
        response = client.post("/v1/jobs", files={"file": (file.name, audio, media_type)})
    if response.status_code != 202:
        raise BenchError(f"POST /v1/jobs for {file.name}: {response.status_code} {response.text}")
    return dict(response.json())


def poll(service: Service, job_id: str) -> dict[str, Any]:
    """GET the job every POLL_SECONDS until it is completed or failed."""
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while True:
        response = service.client.get(f"/v1/jobs/{job_id}")
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        if job["status"] in ("completed", "failed"):
            return job
        ensure_alive(service.worker, "Celery worker")
        if time.monotonic() > deadline:
            raise BenchError(f"job {job_id} still {job['status']} after {JOB_TIMEOUT_SECONDS} s")
        time.sleep(POLL_SECONDS)


def worker_seconds(job: dict[str, Any]) -> list[float]:
    """The time the worker spent on the job, from its own stamps (none if it lacks them)."""
    if not job.get("started_at") or not job.get("finished_at"):
        return []
    started = datetime.fromisoformat(job["started_at"])
    return [(datetime.fromisoformat(job["finished_at"]) - started).total_seconds()]


def warm_up(service: Service, file: Path, times: LoadTimes) -> None:
    """One job first, so the worker's lazy model load is timed here and not per file."""
    seconds, job, _ = run_job(service, file)
    if job["status"] != "completed":
        raise BenchError(f"warm-up job failed: {job.get('error')}")
    times.worker_warmup_job_seconds = seconds
    found = MODEL_LOADED.findall((service.logs / "worker.log").read_text(errors="replace"))
    times.worker_model_load_seconds = float(found[-1]) if found else None


def run_service(
    service: Service, results: dict[Path, FileResult], texts: dict[Path, str], repeat: int
) -> None:
    """Time every file through the API and compare its text with the direct one."""
    for _ in range(repeat):
        for file, result in results.items():
            seconds, job, transcript = run_job(service, file)
            result.service_seconds.append(seconds)
            result.worker_seconds += worker_seconds(job)
            if job["status"] != "completed":
                result.error = str(job.get("error"))
            result.text_match &= transcript.get("text") == texts[file]
            note(f"  service {file.name}: {seconds:.2f} s ({job['status']})")


# ---------------------------------------------------------------- report


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def summary(
    results: list[FileResult], settings: Settings, times: LoadTimes, repeat: int
) -> dict[str, Any]:
    """Every figure the table shows, as one JSON-ready dict."""
    audio = sum(r.audio_seconds for r in results)
    direct = sum(mean(r.direct_seconds) for r in results)
    service = sum(mean(r.service_seconds) for r in results)
    device, compute_type = resolve_device(settings)
    kwargs = whisper_kwargs(JobOptions(), settings)
    return {
        "settings": {
            "model": settings.model,
            "device": device,
            "compute_type": compute_type,
            "beam_size": kwargs["beam_size"],
            "vad_filter": kwargs["vad_filter"],
            "cpu_threads": settings.cpu_threads,
            "faster_whisper": faster_whisper.__version__,
            "ctranslate2": ctranslate2.__version__,
        },
        "cpu_count": os.cpu_count(),
        "repeat": repeat,
        "load": asdict(times),
        "files": [asdict(r) for r in results],
        "totals": {
            "files": len(results),
            "audio_seconds": audio,
            "direct_seconds": direct,
            "service_seconds": service,
            "service_over_direct": service / direct,
            "direct_rtf": direct / audio,
            "service_rtf": service / audio,
            "mismatches": sum(not r.text_match for r in results),
            "failed": sum(r.error is not None for r in results),
        },
    }


def print_table(report: dict[str, Any]) -> None:
    """The human-readable form of `summary`."""
    print(f"{'file':<28}{'audio s':>9}{'direct s':>10}{'service s':>11}{'worker s':>10}  text")
    for r in report["files"]:
        match = "same" if r["text_match"] else f"DIFFERENT {r['error'] or ''}".rstrip()
        print(
            f"{r['file']:<28}{r['audio_seconds']:>9.2f}{mean(r['direct_seconds']):>10.2f}"
            f"{mean(r['service_seconds']):>11.2f}{mean(r['worker_seconds']):>10.2f}  {match}"
        )
    t, s, load = report["totals"], report["settings"], report["load"]
    worker_load = load["worker_model_load_seconds"]
    print(f"""
files                 {t["files"]} (x{report["repeat"]}; per-file figures are means)
total audio           {t["audio_seconds"]:.2f} s
direct total          {t["direct_seconds"]:.2f} s   RTF {t["direct_rtf"]:.3f}
service total         {t["service_seconds"]:.2f} s   RTF {t["service_rtf"]:.3f}
service / direct      {t["service_over_direct"]:.3f}
text mismatches       {t["mismatches"]}   failed jobs {t["failed"]}
direct model          prepare {load["direct_model_prepare_seconds"]:.2f} s, \
load {load["direct_model_load_seconds"]:.2f} s
service start         {load["service_start_seconds"]:.2f} s (Redis + API healthy)
worker warm-up job    {load["worker_warmup_job_seconds"]:.2f} s \
(model load {"?" if worker_load is None else f"{worker_load:.2f}"} s, from its log)
settings              model={s["model"]} device={s["device"]} compute_type={s["compute_type"]} \
beam_size={s["beam_size"]} vad_filter={s["vad_filter"]} cpu_threads={s["cpu_threads"]}
versions              faster-whisper {s["faster_whisper"]}, ctranslate2 {s["ctranslate2"]}
CPUs                  {report["cpu_count"]}""")


def print_log_tails(logs: Path, lines: int = 25) -> None:
    for log in sorted(logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        note(f"--- last {len(tail)} lines of {log.name} ---\n" + "\n".join(tail))


# ---------------------------------------------------------------- main


def _terminate(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through ExitStack, which stops the children


def bench(files: list[Path], repeat: int, tmp: Path) -> dict[str, Any]:
    """Direct first, then the service, never both at once (they would share the CPUs)."""
    data_dir = tmp / "data"  # shared by both, so the bundled model is assembled once
    (tmp / "logs").mkdir()
    settings = Settings(data_dir=data_dir)
    results = {file: FileResult(file.name) for file in files}
    note(f"direct: {len(files)} files x{repeat}")
    texts, times = run_direct(results, settings, repeat)
    note("service: starting Redis, API and worker")
    with ExitStack() as stack:
        started = time.perf_counter()
        service = start_service(stack, tmp, data_dir)
        times.service_start_seconds = time.perf_counter() - started
        warm_up(service, files[0], times)
        run_service(service, results, texts, repeat)
    return summary(list(results.values()), settings, times, repeat)


def main(argv: list[str] | None = None) -> int:
    global POLL_SECONDS
    args = parse_args(argv)
    POLL_SECONDS = args.poll
    files = [f.resolve() for f in (args.files or default_files())]
    if missing := [str(f) for f in files if not f.is_file()]:
        note(f"no such file: {', '.join(missing)}")
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    with tempfile.TemporaryDirectory(prefix="verbatim-bench-") as name:
        try:
            report = bench(files, args.repeat, Path(name))
        except (BenchError, httpx.HTTPError) as exc:
            note(f"benchmark failed: {exc}")
            print_log_tails(Path(name) / "logs")
            return 1
        except KeyboardInterrupt:
            note("interrupted; the service processes were stopped")
            return 130
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 1 if report["totals"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
