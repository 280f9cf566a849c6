"""The models of one worker process (issue 22): each loaded on first use and kept, within a
memory budget.

A process serves the models of `VERBATIM_WORKER_MODELS` and keeps the ones in use loaded: before
a model loads it unloads the least recently used ones until the model fits
`VERBATIM_MODEL_MEMORY_MB` (by what it cost when it last loaded here, else by its weights on
disk, and again once it has loaded, by what it costs), and it unloads any model idle for longer
than `VERBATIM_MODEL_IDLE_SECONDS`. A model is never unloaded under a job that
uses it: the job holds its own reference until it ends.

What a loaded model costs is counted as it loads (`_cost_mb`):

- On CPU, it is measured: the growth of the process's resident memory (psutil) over the load,
  which runs under the cache's lock, so no other load overlaps it (a `threads` pool's jobs may
  still allocate meanwhile: a figure to within their working buffers). Memory that unloaded
  models freed is handed back to the system first (glibc's `malloc_trim`): the allocator would
  otherwise keep it, and the next load, reusing it, would look free. The first load of a
  process also counts what CTranslate2 sets up once (its thread pools, kernels); that errs
  towards unloading early, never towards running out.
- On CUDA the weights live in GPU memory, which the process's resident memory does not show
  and which other processes share, and CTranslate2 reports no figure per model (its Python
  `Whisper` has `model_is_loaded`, `load_model` and `unload_model`, nothing of size). So it is
  estimated: the size of the weights on disk times `CUDA_MEMORY_FACTOR`.

A process that runs several jobs at once (Celery's `threads` pool) loads each model with that
many CTranslate2 replicas (`num_workers`): the weights are held once, and calls from that many
threads run in parallel instead of queueing for one replica.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import ctranslate2
import psutil
from faster_whisper import WhisperModel
from faster_whisper.utils import download_model

from shared.config import Settings
from shared.errors import ModelUnavailable, short_reason
from shared.models import ModelEntry
from worker import concurrency, metrics
from worker.offline_model import (
    MODEL_NAME,
    files_present,
    offline_base_model,
    package_data_dirs,
    package_dir,
    package_model,
    verify,
)

log = logging.getLogger(__name__)

BUNDLED_MODEL = "base"
MiB = 1024 * 1024
# GPU memory a model holds per byte of its weights on disk. faster-whisper's own benchmark
# (README, large-v2 on an RTX 3070 Ti, beam size 5) held 4525 MB at float16 and 2926 MB with
# int8 weights, for a float16 `model.bin` of 3.09 GB: 1.46 and 0.95 times it, working memory and
# CUDA's context included. 1.5 covers both, erring towards unloading early.
CUDA_MEMORY_FACTOR = 1.5


@dataclass
class Loaded:
    """A model held by this process."""

    key: tuple[str, str, str, int, int]
    model: WhisperModel
    size_mb: float
    used_at: float = field(default_factory=time.monotonic)


_lock = threading.Lock()
_loaded: OrderedDict[str, Loaded] = OrderedDict()  # least recently used first
_costs: dict[str, float] = {}  # what each model cost when it last loaded in this process
# Model replicas this process loads (`use_replicas`), set by `worker_init` before the first load.
_replicas = 1


def entry_of(settings: Settings, name: str | None = None) -> tuple[str, ModelEntry]:
    """The catalogue name and entry of `name` (None: the default model)."""
    name = name or settings.default_model
    entry = settings.catalogue.get(name)
    if entry is None:
        raise ModelUnavailable(f"Model {name!r} is not in this worker's catalogue.")
    return name, entry


def resolve_device(settings: Settings, name: str | None = None) -> tuple[str, str]:
    """A model's device and compute type: its entry's, else the settings', else INT8 on CPU
    and INT8 weights with FP16 on CUDA."""
    _, entry = entry_of(settings, name)
    device = entry.device or settings.device
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    default = "int8_float16" if device == "cuda" else "int8"
    return device, entry.compute_type or settings.compute_type or default


def check_compute_type(name: str, device: str, compute_type: str) -> None:
    """`ModelUnavailable` unless CTranslate2 can run `compute_type` on `device` here."""
    if compute_type in ("default", "auto"):
        return
    try:
        supported = ctranslate2.get_supported_compute_types(device)
    except (RuntimeError, ValueError) as exc:  # CUDA asked for on a machine without it
        raise ModelUnavailable(f"Model {name!r} asks for device {device!r}, which is not "
                               f"available here ({short_reason(exc)}).") from exc
    if compute_type not in supported:
        raise ModelUnavailable(
            f"Model {name!r}: compute type {compute_type!r} is not supported on {device} here; "
            f"supported: {', '.join(sorted(supported))}."
        )


def resolve_model_path(settings: Settings, name: str | None = None) -> str:
    """A model's directory (bundled or packaged models verified first), or the faster-whisper
    name that is downloaded when online."""
    name, entry = entry_of(settings, name)
    if entry.source == "bundled":
        return str(offline_base_model(settings.model_dir))
    if entry.source == "package":
        return str(package_model(entry.location, entry.sha256))
    if entry.source == "path" and entry.sha256:
        verify(Path(entry.location), entry.sha256)
    return entry.location


def prepare(settings: Settings) -> None:
    """Load the first model this worker serves, then check the others (device, compute type,
    files present; their hashes are checked as each loads): a model it cannot serve is a clear
    error as it starts, not at its first job."""
    first, *others = settings.served_models
    get_model(settings, first)
    for name in others:
        check_compute_type(name, *resolve_device(settings, name))
        _, entry = entry_of(settings, name)
        if entry.source == "bundled":
            package_data_dirs()
        elif entry.source in ("package", "path"):
            files_present(_directory(entry), name)


def _directory(entry: ModelEntry) -> Path:
    if entry.source == "package":
        return package_dir(entry.location)
    return Path(entry.location)


def use_replicas(count: int) -> None:
    """Make the models this process loads able to run `count` jobs at once (`worker_init` of
    a `threads` pool, before any load)."""
    global _replicas
    _replicas = count


def get_model(settings: Settings, name: str | None = None) -> WhisperModel:
    """Model `name` (None: the default), loading it on first use (never at import, never per
    job) and unloading others as the budget and idle time say."""
    name, _ = entry_of(settings, name)
    device, compute_type = resolve_device(settings, name)
    key = (name, device, compute_type, settings.cpu_threads, _replicas)
    with _lock:
        held = _loaded.get(name)
        if held is None or held.key != key:
            _loaded.pop(name, None)
            check_compute_type(name, device, compute_type)
            _make_room(settings, _costs.get(name) or _expected_mb(settings, name, device))
            model, size_mb = _load(settings, name, device, compute_type, _replicas)
            held = _loaded[name] = Loaded(key, model, size_mb)
            _costs[name] = size_mb
        held.used_at = time.monotonic()
        _loaded.move_to_end(name)
        _unload_beyond(settings, keep=name)
        return held.model


def loaded_models() -> list[str]:
    """The models this process holds, least recently used first."""
    with _lock:
        return list(_loaded)


def unload_idle(settings: Settings) -> list[str]:
    """Unload the models idle for longer than `model_idle_seconds` (each heartbeat)."""
    with _lock:
        return _unload_beyond(settings, keep=None)


def _make_room(settings: Settings, coming_mb: float) -> list[str]:
    """Before a model that costs about `coming_mb` loads: unload idle models, then the least
    recently used ones while it would not fit the memory budget beside them."""
    return _unload_beyond(settings, keep=None, coming_mb=coming_mb)


def _unload_beyond(settings: Settings, keep: str | None, coming_mb: float = 0.0) -> list[str]:
    """Unload idle models, then the least recently used ones while over the memory budget
    (with `coming_mb` more to load); never `keep`, the model just asked for."""
    now, dropped = time.monotonic(), []
    for name, held in list(_loaded.items()):
        idle = settings.model_idle_seconds and now - held.used_at > settings.model_idle_seconds
        over = settings.model_memory_mb and _held_mb() + coming_mb > settings.model_memory_mb
        if name != keep and (idle or over):
            del _loaded[name]
            dropped.append(name)
    for name in dropped:
        metrics.model_unloaded(name)
        log.info("model unloaded", extra={"model": name})
    if dropped:
        _trim()
    return dropped


def _held_mb() -> float:
    return sum(held.size_mb for held in _loaded.values())


def held_mb() -> dict[str, float]:
    """What each model this process holds costs, in MiB (`_cost_mb`)."""
    with _lock:
        return {name: held.size_mb for name, held in _loaded.items()}


def _load(
    settings: Settings, name: str, device: str, compute_type: str, replicas: int
) -> tuple[WhisperModel, float]:
    started = time.perf_counter()
    try:
        path = resolve_model_path(settings, name)
    except OSError as exc:  # the bundled model is assembled on first use: mkdir, copy, rename
        raise ModelUnavailable(_unwritable_message(settings, exc)) from exc
    resident = _resident_after_trim() if device == "cpu" else None
    try:
        model = WhisperModel(
            path,
            device=device,
            compute_type=compute_type,
            cpu_threads=concurrency.threads_per_job(settings),
            num_workers=replicas,
            download_root=str(settings.model_dir / "hub"),
        )
    except Exception as exc:  # faster-whisper raises hub, OS and runtime errors alike
        raise ModelUnavailable(_unavailable_message(settings, name, exc)) from exc
    seconds = time.perf_counter() - started
    size_mb = _cost_mb(device, _weights(settings, path), resident)
    metrics.model_loaded(seconds, name)
    log.info("model loaded", extra={
        "model": name, "device": device, "compute_type": compute_type,
        "replicas": replicas, "cpu_threads": concurrency.threads_per_job(settings),
        "seconds": round(seconds, 2), "memory_mb": round(size_mb, 1),
    })
    return model, size_mb


def _cost_mb(device: str, weights: Path | None, resident_before: int | None) -> float:
    """What a model just loaded holds, in MiB: on CPU the growth of resident memory since
    `resident_before`; on CUDA (or should resident memory not have grown: another thread freed
    as much meanwhile) the weights' size on disk, times `CUDA_MEMORY_FACTOR` on CUDA."""
    if device == "cpu" and resident_before is not None:
        grown = (_resident() - resident_before) / MiB
        if grown > 0:
            return grown
    on_disk = weights.stat().st_size / MiB if weights is not None else 0.0
    return on_disk * (CUDA_MEMORY_FACTOR if device == "cuda" else 1.0)


def _expected_mb(settings: Settings, name: str, device: str) -> float:
    """What model `name`, never loaded here yet, will cost, about: its weights on disk (times
    `CUDA_MEMORY_FACTOR` on CUDA), found without verifying or assembling anything (0 when they
    are not found: the budget is then kept once it has loaded)."""
    _, entry = entry_of(settings, name)
    try:
        if entry.source == "bundled":
            weights: Path | None = settings.model_dir / MODEL_NAME / "model.bin"
        elif entry.source == "download":
            weights = _weights(settings, entry.location)
        else:
            weights = _directory(entry) / "model.bin"
    except ModelUnavailable:  # a package that is not installed: its load will say so
        return 0.0
    if weights is None or not weights.is_file():
        return 0.0
    return weights.stat().st_size / MiB * (CUDA_MEMORY_FACTOR if device == "cuda" else 1.0)


def _weights(settings: Settings, path: str) -> Path | None:
    """The `model.bin` of a loaded model: in its directory, or in the hub's cache for a model
    downloaded by name (None if neither has it)."""
    weights = Path(path) / "model.bin"
    if weights.is_file():
        return weights
    try:
        cached = download_model(path, local_files_only=True,
                                cache_dir=str(settings.model_dir / "hub"))
    except Exception:  # huggingface_hub raises its own errors, OS and value errors alike
        return None
    weights = Path(cached) / "model.bin"
    return weights if weights.is_file() else None


def _resident() -> int:
    """This process's resident memory, in bytes."""
    return int(psutil.Process().memory_info().rss)


def _resident_after_trim() -> int:
    _trim()
    return _resident()


_libc = ctypes.CDLL(ctypes.util.find_library("c") or None)


def _trim() -> None:
    """Hand the memory that freed models left in the allocator back to the system (glibc's
    `malloc_trim`; nothing elsewhere), so that resident memory drops with an unload."""
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _unwritable_message(settings: Settings, exc: OSError) -> str:
    return (
        f"Could not prepare the bundled Whisper model {BUNDLED_MODEL!r} in {settings.model_dir} "
        f"({type(exc).__name__}: {short_reason(exc)}). The worker assembles it there on first "
        "use: that path must be a directory the worker can write to, with about 150 MB free."
    )


def _unavailable_message(settings: Settings, name: str, exc: Exception) -> str:
    return (
        f"Could not load Whisper model {name!r} ({type(exc).__name__}: {exc}). "
        "Without network access, set VERBATIM_MODEL to `base` (bundled) or to a local "
        "CTranslate2 model directory (for example one converted with ct2-transformers-converter "
        f"or copied from a machine that has it), or pre-fill {settings.model_dir / 'hub'}."
    )
