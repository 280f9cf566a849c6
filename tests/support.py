"""Helpers the tests share: processes of the service, uploads and polling, test audio."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import wave
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import redis
from conversations import SPHINX
from faster_whisper import decode_audio

from cli.serve import api_command
from shared.config import Settings
from shared.localredis import free_port, stop_process
from shared.priorities import NEW_JOB_PRIORITY
from shared.queue import TRANSCRIBE_TASK, make_celery
from shared.schemas import JobOptions
from shared.state.jobs import JobStore
from shared.state.keys import KeyLimits, KeyStore

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
# About 80 s of distinct speech, so that no window of it repeats itself (Whisper's output
# filters drop a window whose text does).
SPEECH_FILES = ("jfk.flac", "LJ001-0001.flac", "1089-134686-0000.flac", "LJ001-0003.flac",
                "LJ001-0005.flac", "1089-134686-0001.flac", "LJ001-0007.flac")
JOB_TIMEOUT_SECONDS = 180
# For a service of a test's own whose transcripts only need to hold a few words (the test is of
# requeueing, stopping, reaping, not of the model): `tiny.en` alone, which loads and decodes in
# about half `base`'s time (bench/README.md, `model_cost_bench.py`); a live worker then warms
# up that one model, not the whole catalogue.
TINY_MODEL = {"VERBATIM_MODEL": "tiny.en", "VERBATIM_WORKER_MODELS": "tiny.en"}
APT_TIMEOUT_SECONDS = 900
APT_LOCK = "/tmp/verbatim-tests-apt.lock"


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log: Path
    metrics_url: str | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def records(self) -> list[dict]:
        """The process's log lines, each parsed as the JSON object it must be."""
        records = []
        for line in self.output().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"a log line of {self.log.name} is not JSON: {line!r}")
        return records

    def stop(self, timeout: float = 20) -> None:
        stop_process(self.popen, timeout)


def pool_children(parent: int) -> list[int]:
    """The pids of the processes whose parent is `parent` (a worker's pool processes)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


# Runs the command given after it with SIGINT and SIGTERM at their default dispositions, in the
# same process (exec). A test that signals a child must not depend on what the test run itself
# ignores: a script that starts `make test &` leaves SIGINT ignored, and children inherit that.
_DEFAULT_SIGNALS = (
    "import os, signal, sys\n"
    "for number in (signal.SIGINT, signal.SIGTERM): signal.signal(number, signal.SIG_DFL)\n"
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def with_default_signals(args: list[str]) -> list[str]:
    """`args` (an absolute executable first) to run with default signal dispositions."""
    return [sys.executable, "-c", _DEFAULT_SIGNALS, *args]


def spawn(args: list[str], env: dict[str, str], log: Path) -> Process:
    with log.open("wb") as out:
        popen = subprocess.Popen(with_default_signals(args), env=env, cwd=ROOT, stdout=out,
                                 stderr=subprocess.STDOUT)
    return Process(popen, log)


def wait_until(check: object, what: str, process: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if process.popen.poll() is not None:
            pytest.fail(f"{what}: process exited\n{process.output()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: timed out\n{process.output()[-3000:]}")
        time.sleep(0.1)


def start_worker(
    env: dict[str, str], log: Path, name: str = "test", wait_for_model: bool = True,
    options: tuple[str, ...] = (), pool: str = "prefork", concurrency: int = 1,
) -> Process:
    """A Celery worker running `concurrency` jobs at once in `pool` (one pool process unless
    told otherwise; extra command-line `options`), returned once it consumes and (unless told
    otherwise) once it has loaded the model. Its `/metrics` port is free."""
    args = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker",
        "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "INFO",
        "--without-gossip", "--without-mingle", "--hostname", f"{name}@%h", *options,
    ]  # fmt: skip
    port = int(env.get("VERBATIM_WORKER_METRICS_PORT") or free_port())
    worker = spawn(args, env | {"VERBATIM_WORKER_METRICS_PORT": str(port)}, log)
    if port:
        worker.metrics_url = f"http://127.0.0.1:{port}/metrics"
    wait_until(lambda: " ready." in worker.output(), "celery worker start", worker)
    if wait_for_model:
        wait_until(lambda: "model loaded" in worker.output(), "model load", worker)
    return worker


def start_api(env: dict[str, str], log: Path, *options: str) -> tuple[Process, str]:
    """uvicorn serving the API (with extra command-line `options`), once it answers."""
    port = free_port()
    frame = env.get("VERBATIM_LIVE_MAX_FRAME_BYTES")
    args = [*api_command("127.0.0.1", port, int(frame) if frame else None), *options]
    api = spawn(args, env, log)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers_ok(f"{url}/healthz"), "API start", api)
    return api, url


def start_auth_api(env: dict[str, str], log: Path) -> tuple[Process, str]:
    """An API process with `VERBATIM_AUTH=required` on the same Redis as `env`'s."""
    return start_api(env | {"VERBATIM_AUTH": "required"}, log)


def make_key(redis_url: str, name: str = "test", **limits: float) -> tuple[str, str]:
    """A new API key in the Redis at `redis_url`, with `KeyLimits` fields; (id, token)."""
    client = redis.Redis.from_url(redis_url)
    try:
        key, token = KeyStore(client).create(name, KeyLimits.model_validate(limits))
    finally:
        client.close()
    return key.id, token


def revoke_key(redis_url: str, key_id: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert KeyStore(client).revoke(key_id)
    finally:
        client.close()


def keyed_client(api_url: str, token: str | None) -> httpx.Client:
    """An HTTP client of `api_url` that sends `token` as its Bearer key (none: no header)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=api_url, timeout=30, headers=headers)


def answers_ok(url: str) -> bool:
    """Whether a GET of `url` answers 200 (False when nothing answers)."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def submit(http: httpx.Client, path: Path, **fields: str) -> dict:
    with path.open("rb") as f:
        response = http.post("/v1/jobs", files={"file": (path.name, f)}, data=fields)
    assert response.status_code == 202, response.text
    return response.json()


def wait_for_job(http: httpx.Client, job_id: str, seen: list[float] | None = None) -> dict:
    """Poll until the job ends; `seen` collects the progress values observed."""
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if seen is not None:
            seen.append(job["progress"])
        if job["status"] in ("completed", "failed"):
            return job
        time.sleep(0.05)
    pytest.fail(f"job {job_id} did not finish in {JOB_TIMEOUT_SECONDS} s")


def queue_damaged_upload(
    env: dict[str, str], job_id: str, content: bytes = b"fLaC\x00\x00\x00\x22" + b"damaged" * 100,
    suffix: str = ".flac",
) -> Path:
    """Queue a job whose upload on disk holds `content` (damaged, or such as the API's probe
    would refuse), going past the API, straight to the worker; returns the upload's path."""
    settings = Settings(redis_url=env["VERBATIM_REDIS_URL"], data_dir=env["VERBATIM_DATA_DIR"])
    upload = settings.upload_dir / f"{job_id}{suffix}"
    upload.write_bytes(content)
    store = JobStore.from_url(settings.redis_url)
    store.create(job_id, f"x{suffix}", JobOptions(), 11.0, upload)
    make_celery(settings).send_task(TRANSCRIBE_TASK, args=[job_id], priority=NEW_JOB_PRIORITY)
    return upload


def write_silence(path: Path, seconds: float, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return path


def write_scripted_wav(path: Path, script: str, seconds: float = 1.0) -> Path:
    """A valid WAV (silence around `script`'s bytes as samples) that a browser taking it for
    HTML would run `script` from (issue 26, item 7)."""
    markup = f"<html><body><script>{script}</script></body></html>".encode()
    silence = b"\0\0" * int(seconds * 8000)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(silence + markup + b" " * (len(markup) % 2) + silence)
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    """float32 mono `samples` in [-1, 1] (as faster-whisper decodes them) as 16-bit PCM WAV."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def kill_whole_worker(worker: Process) -> None:
    """SIGKILL a worker's main process and its pool together, as a lost host."""
    children = pool_children(worker.popen.pid)
    os.kill(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait()
    for pid in children:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def apt_install(package: str) -> None:
    """Install a Debian package, or fail the test run saying exactly what is missing."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"{package} is not installed and cannot be installed here (needs root and "
                    f"apt-get): run `apt-get install --no-install-recommends {package}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update"],
                 ["apt-get", "install", "-y", "--no-install-recommends", package]):
        result = subprocess.run(args, env=env, capture_output=True, text=True,
                                timeout=APT_TIMEOUT_SECONDS, check=False)
        if result.returncode != 0:
            pytest.fail(f"`{' '.join(args)}` failed ({result.returncode}), so {package} is "
                        f"missing:\n{(result.stdout + result.stderr)[-3000:]}")


# The Debian tools the suite runs: each command's package, and where the package puts it.
DEBIAN_TOOLS = {
    "espeak-ng": ("espeak-ng", "/usr/bin/espeak-ng"),
    "nginx": ("nginx", "/usr/sbin/nginx"),
    "docker-compose": ("docker-compose", "/usr/bin/docker-compose"),
    "promtool": ("prometheus", "/usr/bin/promtool"),
    "chromium": ("chromium", "/usr/bin/chromium"),
    "redis-server": ("redis-server", "/usr/bin/redis-server"),
    "redis-sentinel": ("redis-sentinel", "/usr/bin/redis-sentinel"),
    "wrk": ("wrk", "/usr/bin/wrk"),
    "npm": ("npm", "/usr/bin/npm"),  # only to fetch helm once (`deploy/helm.py`)
}
# Debian's recordings of two more English speakers, in `SPHINX` (`conversations.py`).
SPHINX_PACKAGE = "pocketsphinx-testdata"
APT_LOG = "/tmp/verbatim-tests-apt.log"


def _tool_path(command: str) -> str | None:
    path = DEBIAN_TOOLS[command][1]
    return shutil.which(command) or (path if os.access(path, os.X_OK) else None)


def install_missing_packages() -> subprocess.Popen[bytes] | None:
    """Start installing, in the background, every package the suite needs that is missing
    (but npm, needed only while helm is not cached): one `apt-get update` and one install at
    the start of the run, while the first tests run, instead of one of each in the middle of
    each test that needs one. The install holds the lock `debian_tool` takes, so a test that
    needs a tool waits for it and then finds it; where it failed, `debian_tool` tries that
    package again and fails the test saying why. None when nothing is missing or nothing can
    be installed here."""
    missing = sorted({package for command, (package, _) in DEBIAN_TOOLS.items()
                      if command != "npm" and _tool_path(command) is None})
    if not (SPHINX / "cards").is_dir():
        missing.append(SPHINX_PACKAGE)
    if not missing or os.geteuid() != 0 or not shutil.which("apt-get") or not shutil.which(
            "flock"):
        return None
    script = ("apt-get update -q && apt-get install -y -q --no-install-recommends "
              + " ".join(missing))
    with open(APT_LOG, "wb") as log:
        return subprocess.Popen(["flock", APT_LOCK, "sh", "-c", script], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def debian_tool(command: str) -> str:
    """The command's path, installing its Debian package (`DEBIAN_TOOLS`) first when it is
    missing."""
    package = DEBIAN_TOOLS[command][0]
    found = _tool_path(command)
    if found is None:
        # The suite runs in several processes (pytest-xdist): one installs, the others wait for
        # it on the lock and then find the command, instead of failing on dpkg's own lock.
        with open(APT_LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = _tool_path(command)
            if found is None:
                apt_install(package)
                found = _tool_path(command)
    if found is None:
        pytest.fail(f"{package} was installed but {command} is still not found")
    return found


def write_audio(path: Path, samples: np.ndarray, codec: str = "flac", rate: int = 16000) -> Path:
    """int16 mono `samples` encoded with `codec` into the container `path`'s suffix names."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        for start in range(0, samples.size, rate):
            frame = av.AudioFrame.from_ndarray(
                samples[start:start + rate].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident memory since it started or since `reset_peak_rss`."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def reset_peak_rss(pid: int) -> None:
    """Start the process's peak-memory count again from its current use (Linux clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def lying_matroska(path: Path, seconds: float, declared: float) -> Path:
    """A Matroska file holding `seconds` of speech whose header says it lasts `declared`: the
    recordings of `tests/data` one after another (JFK first), repeated as need be."""
    speech = np.concatenate([decode_audio(str(DATA / name)) for name in SPEECH_FILES])
    repeats = int(seconds // (speech.size / 16000)) + 1
    samples = (np.tile(speech, repeats)[: int(seconds * 16000)] * 32767).astype(np.int16)
    write_audio(path, samples, codec="pcm_s16le")
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Segment Info's Duration, an 8-byte float in ms
    assert at > 0
    data[at + 3:at + 11] = struct.pack(">d", declared * 1000)
    path.write_bytes(bytes(data))
    return path
