"""One Whisper model per worker process, loaded once (by `worker/heartbeat.py` as the process
starts, or by whichever caller comes first) and kept.

A process that runs several jobs at once (Celery's `threads` pool) loads one model with that
many CTranslate2 replicas (`num_workers`): the weights are held once, and calls from that many
threads run in parallel instead of queueing for one replica.
"""

from __future__ import annotations

import logging
import threading
import time

import ctranslate2
from faster_whisper import WhisperModel

from shared.config import Settings
from shared.errors import ModelUnavailable, short_reason
from worker import concurrency, metrics
from worker.offline_model import offline_base_model

log = logging.getLogger(__name__)

BUNDLED_MODEL = "base"

_lock = threading.Lock()
_cached: tuple[tuple[str, str, str, int, int], WhisperModel] | None = None
# Model replicas this process loads (`use_replicas`), set by `worker_init` before the first load.
_replicas = 1


def resolve_device(settings: Settings) -> tuple[str, str]:
    """The device and compute type to use: INT8 on CPU, INT8 weights with FP16 on CUDA."""
    device = settings.device
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    default = "int8_float16" if device == "cuda" else "int8"
    return device, settings.compute_type or default


def resolve_model_path(settings: Settings) -> str:
    """The bundled model's directory for `base`; otherwise a local directory or a size name,
    both of which faster-whisper accepts as they are."""
    if settings.model == BUNDLED_MODEL:
        return str(offline_base_model(settings.model_dir))
    return settings.model


def use_replicas(count: int) -> None:
    """Make the model this process loads able to run `count` jobs at once (`worker_init` of
    a `threads` pool, before any load)."""
    global _replicas
    _replicas = count


def get_model(settings: Settings) -> WhisperModel:
    """The process's model, loading it on first use (never at import, never per job)."""
    global _cached
    device, compute_type = resolve_device(settings)
    key = (settings.model, device, compute_type, settings.cpu_threads, _replicas)
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = (key, _load(settings, device, compute_type, _replicas))
        return _cached[1]


def _load(settings: Settings, device: str, compute_type: str, replicas: int) -> WhisperModel:
    started = time.perf_counter()
    try:
        path = resolve_model_path(settings)
    except OSError as exc:  # the bundled model is assembled on first use: mkdir, copy, rename
        raise ModelUnavailable(_unwritable_message(settings, exc)) from exc
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
        raise ModelUnavailable(_unavailable_message(settings, exc)) from exc
    seconds = time.perf_counter() - started
    metrics.model_loaded(seconds)
    log.info("model loaded", extra={
        "model": settings.model, "device": device, "compute_type": compute_type,
        "replicas": replicas, "cpu_threads": concurrency.threads_per_job(settings),
        "seconds": round(seconds, 2),
    })
    return model


def _unwritable_message(settings: Settings, exc: OSError) -> str:
    return (
        f"Could not prepare the bundled Whisper model {BUNDLED_MODEL!r} in {settings.model_dir} "
        f"({type(exc).__name__}: {short_reason(exc)}). The worker assembles it there on first "
        "use: that path must be a directory the worker can write to, with about 150 MB free."
    )


def _unavailable_message(settings: Settings, exc: Exception) -> str:
    return (
        f"Could not load Whisper model {settings.model!r} ({type(exc).__name__}: {exc}). "
        "Without network access, set VERBATIM_MODEL to `base` (bundled) or to a local "
        "CTranslate2 model directory (for example one converted with ct2-transformers-converter "
        f"or copied from a machine that has it), or pre-fill {settings.model_dir / 'hub'}."
    )
