"""The worker's Prometheus metrics: recorded by the pool processes, served by the main one.

Celery forks its pool processes from the main process, so their values go through
prometheus-client's multiprocess mode: one file per process in `PROMETHEUS_MULTIPROC_DIR`,
added up by the `/metrics` server that `start_server()` runs in the main process on
`worker_metrics_port`. Unless `PROMETHEUS_MULTIPROC_DIR` is already set, that directory is a
private temporary one (`verbatim-worker-metrics-*` under the system's temporary directory),
created empty at start and removed at shutdown. prometheus-client chooses where values live
when it is first imported, so this module imports it only after `start_server()` has set the
directory (Celery imports the task modules, and so this one, before any worker signal fires),
and the metrics are built on first use, in the pool process.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.config import Settings
from shared.errors import DecodeError, ModelUnavailable, TooManyAttempts, TranscriptionError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import Metric
    from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"
# The errors a worker records on a job.
FAILURES = (DecodeError, TranscriptionError, ModelUnavailable, TooManyAttempts)
_LIVE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")

# Set in the main process by start_server(): what stop_server() undoes.
_server: Any = None
_private_dir: Path | None = None


@dataclass(frozen=True)
class _Metrics:
    completed: Counter
    failed: Counter
    transcription: Histogram
    audio: Counter
    realtime_factor: Histogram
    model_load: Gauge
    models_loaded: Gauge
    in_flight: Gauge
    queue_wait: Histogram
    slots: Gauge
    live_slots: Gauge
    live_in_flight: Gauge


_build_lock = threading.Lock()
_built: _Metrics | None = None


def _metrics() -> _Metrics:
    """The metrics, built on first use; the heartbeat thread and a job may get here at once."""
    global _built
    with _build_lock:
        if _built is None:
            _built = _build()
        return _built


def _build() -> _Metrics:
    from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

    disable_created_metrics()
    failed = Counter("verbatim_worker_jobs_failed_total", "Jobs failed, by error code.", ["code"])
    for error in FAILURES:  # at 0 from the start, so a first failure is an increase
        failed.labels(error.code)
    return _Metrics(
        completed=Counter("verbatim_worker_jobs_completed_total", "Jobs transcribed."),
        failed=failed,
        transcription=Histogram(
            "verbatim_worker_transcription_seconds",
            "Time to transcribe one completed job, decoding included.",
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400),
        ),
        audio=Counter(
            "verbatim_worker_audio_seconds_total", "Seconds of audio in the completed jobs."
        ),
        realtime_factor=Histogram(
            "verbatim_worker_realtime_factor",
            "Transcription time divided by audio duration, per completed job (below 1 is "
            "faster than real time).",
            buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5),
        ),
        model_load=Gauge(
            "verbatim_worker_model_load_seconds",
            "Time the slowest live pool process took to load its model.",
            multiprocess_mode="livemax",
        ),
        models_loaded=Gauge(
            "verbatim_worker_models_loaded",
            "Live pool processes holding each model loaded.",
            ["model"],
            multiprocess_mode="livesum",
        ),
        in_flight=Gauge(
            "verbatim_worker_jobs_in_flight",
            "Jobs being transcribed right now.",
            multiprocess_mode="livesum",
        ),
        queue_wait=Histogram(
            "verbatim_worker_queue_wait_seconds",
            "Time from a job's creation to the start of its first attempt, by the priority "
            "it was queued at (0 is taken first).",
            ["priority"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400),
        ),
        slots=Gauge(
            "verbatim_worker_slots",
            "Jobs this transcription worker runs at once (its pool's concurrency).",
            multiprocess_mode="livesum",
        ),
        live_slots=Gauge(
            "verbatim_live_worker_slots",
            "Live sessions this live worker can hold at once, once its model is warmed up.",
            multiprocess_mode="livesum",
        ),
        live_in_flight=Gauge(
            "verbatim_live_sessions_in_flight",
            "Live sessions being held right now.",
            multiprocess_mode="livesum",
        ),
    )


@contextmanager
def in_flight() -> Iterator[None]:
    gauge = _metrics().in_flight
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


@contextmanager
def live_session() -> Iterator[None]:
    gauge = _metrics().live_in_flight
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def live_ready() -> None:
    """A live worker (one session at a time) has warmed up its model."""
    _metrics().live_slots.set(1)


def slots(jobs: int) -> None:
    """A transcription worker runs `jobs` at once (set by its main process)."""
    _metrics().slots.set(jobs)


def job_started(priority: int, created: datetime, started: datetime) -> None:
    """A job's first attempt started: it waited in the queue since it was created."""
    wait = (started - created).total_seconds()
    _metrics().queue_wait.labels(str(priority)).observe(max(wait, 0.0))


def job_completed(seconds: float, audio_seconds: float) -> None:
    metrics = _metrics()
    metrics.completed.inc()
    metrics.transcription.observe(seconds)
    metrics.audio.inc(audio_seconds)
    if audio_seconds > 0:
        metrics.realtime_factor.observe(seconds / audio_seconds)


def job_failed(code: str) -> None:
    _metrics().failed.labels(code).inc()


def model_loaded(seconds: float, model: str) -> None:
    _metrics().model_load.set(seconds)
    _metrics().models_loaded.labels(model).set(1)


def model_unloaded(model: str) -> None:
    _metrics().models_loaded.labels(model).set(0)


def start_server(settings: Settings) -> None:
    """Serve `/metrics` from the main process (`worker_init`, before the pool forks)."""
    global _server, _private_dir
    if settings.worker_metrics_port == 0:
        return
    if ENV not in os.environ:
        if "prometheus_client" in sys.modules:
            log.warning("prometheus_client was imported before %s was set: the pool "
                        "processes' metrics will be missing", ENV)
        # Private to this run, so nothing old is added to the new values, and off the shared
        # data volume: what a killed worker leaves goes with its container's filesystem.
        _private_dir = Path(tempfile.mkdtemp(prefix="verbatim-worker-metrics-"))
        os.environ[ENV] = str(_private_dir)  # inherited by the pool processes
    from prometheus_client import start_http_server

    try:
        _server, _ = start_http_server(
            settings.worker_metrics_port, registry=registry(Path(os.environ[ENV]))
        )
    except OSError as exc:  # the worker still works; only its metrics are missing
        log.error("worker metrics: cannot listen on port %d: %s",
                  settings.worker_metrics_port, exc)
        return
    log.info("worker metrics on :%d/metrics", settings.worker_metrics_port,
             extra={"metrics_dir": os.environ[ENV]})


def registry(path: Path) -> CollectorRegistry:
    """What `/metrics` serves: the pool processes' values in `path`, and GPU memory."""
    from prometheus_client import CollectorRegistry

    served = CollectorRegistry()
    served.register(_LiveProcesses(path))
    gpu = _gpu_collector()
    if gpu is not None:
        served.register(gpu)
    return served


def stop_server() -> None:
    """Stop serving and remove the private metrics directory (`worker_shutdown`)."""
    if _server is not None:
        _server.shutdown()
    if _private_dir is not None:
        shutil.rmtree(_private_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _LiveProcesses:
    """The multiprocess collector, after dropping the live gauges of pool processes that have
    exited, cleanly or not (SIGKILL, OOM), so a killed job is not in flight forever."""

    def __init__(self, path: Path) -> None:
        from prometheus_client import multiprocess

        self.path = path
        self.multiprocess = multiprocess
        self.collector = multiprocess.MultiProcessCollector(None, str(path))

    def collect(self) -> Iterator[Metric]:
        for file in self.path.glob("gauge_live*.db"):
            match = _LIVE_FILE.match(file.name)
            if match and not _alive(int(match[1])):
                self.multiprocess.mark_process_dead(int(match[1]), str(self.path))
        yield from self.collector.collect()


def gpu_count() -> int:
    """GPUs NVML sees: 0 on CPU-only hosts or without pynvml. Unlike asking CUDA, this leaves
    the CUDA driver uninitialised, so a prefork pool's parent may call it before forking."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:  # no package, no driver, no device
        return 0


def _gpu_collector() -> Collector | None:
    """GPU memory gauges where NVML sees a GPU; None on CPU-only hosts or without pynvml."""
    if not (count := gpu_count()):
        return None
    import pynvml

    return _GpuMemory(pynvml, count)


class _GpuMemory:
    def __init__(self, nvml: Any, count: int) -> None:
        self.nvml = nvml
        self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        used = GaugeMetricFamily(
            "verbatim_worker_gpu_memory_bytes",
            "GPU memory in use on the device (all its processes), by GPU index.",
            labels=["gpu"],
        )
        capacity = GaugeMetricFamily(
            "verbatim_worker_gpu_memory_capacity_bytes", "GPU memory, by GPU index.",
            labels=["gpu"],
        )
        for index, handle in enumerate(self.handles):
            info = self.nvml.nvmlDeviceGetMemoryInfo(handle)
            used.add_metric([str(index)], info.used)
            capacity.add_metric([str(index)], info.total)
        yield used
        yield capacity
