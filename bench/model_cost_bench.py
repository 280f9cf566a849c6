"""Where each model's time goes, bare faster-whisper: the encoder against the decoder.

Each catalogue model is loaded as the worker loads it, and every file is transcribed with the
worker's own arguments, the models taking turns file by file so that both meet the same load.
Variants change one argument at a time (beam size 1, temperature 0 only). Printed per model and
variant: decode seconds and CPU seconds, speed against real time, segments, segments decoded
at a temperature above 0 (fallbacks) and tokens; for the worker's own arguments, the encoder's
seconds alone (one `encode` per 30 s window, as the decoder runs it); then each model's speed
against the first one's.

    .venv/bin/python bench/model_cost_bench.py [--audio ../shared/audio] [--models base tiny.en]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import WhisperModel, decode_audio
from faster_whisper.audio import pad_or_trim
from stack import ROOT

from shared.config import Settings
from shared.schemas import JobOptions
from worker.model import resolve_device, resolve_model_path
from worker.transcriber import whisper_kwargs

SAMPLE_RATE = 16000
WINDOW_FRAMES = 3000  # 30 s of 10 ms feature frames
VARIANTS: dict[str, dict[str, Any]] = {
    "worker": {}, "beam 1": {"beam_size": 1}, "temp 0": {"temperature": 0.0}}


@dataclass
class Cost:
    seconds: float = 0.0
    cpu: float = 0.0
    encoder: float = 0.0
    segments: int = 0
    fallbacks: int = 0
    tokens: int = 0


def recordings(audio: Path) -> list[Path]:
    """The English recordings: LibriSpeech's readers and JFK."""
    found = sorted(p for p in (audio / "en_librispeech").glob("*")
                   if p.suffix in (".flac", ".wav"))
    return [*found, audio / "jfk.flac"]


def encoder_seconds(model: WhisperModel, samples: np.ndarray) -> float:
    features = model.feature_extractor(samples)
    started = time.perf_counter()
    for start in range(0, max(1, features.shape[-1]), WINDOW_FRAMES):
        model.encode(pad_or_trim(features[:, start:start + WINDOW_FRAMES]))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--audio", type=Path, default=ROOT.parent / "shared" / "audio")
    parser.add_argument("--models", nargs="+", default=["base", "tiny.en"])
    args = parser.parse_args()
    settings = Settings()
    kwargs = whisper_kwargs(JobOptions(language="en"), settings)
    models = {}
    for name in args.models:
        device, compute_type = resolve_device(settings, name)
        models[name] = WhisperModel(resolve_model_path(settings, name), device=device,
                                    compute_type=compute_type)
    files = recordings(args.audio)
    audio = {path: decode_audio(str(path)) for path in files}
    seconds = sum(len(samples) for samples in audio.values()) / SAMPLE_RATE
    costs = {(name, variant): Cost() for name in models for variant in VARIANTS}
    for path in files:
        for name, model in models.items():
            for variant, changes in VARIANTS.items():
                cost = costs[name, variant]
                started, cpu = time.perf_counter(), time.process_time()
                segments = list(model.transcribe(audio[path], **(kwargs | changes))[0])
                cost.seconds += time.perf_counter() - started
                cost.cpu += time.process_time() - cpu
                cost.segments += len(segments)
                cost.fallbacks += sum(segment.temperature > 0 for segment in segments)
                cost.tokens += sum(len(segment.tokens) for segment in segments)
            costs[name, "worker"].encoder += encoder_seconds(model, audio[path])
    print(f"{len(files)} files, {seconds:.1f} s of audio, load average "
          f"{os.getloadavg()[0]:.1f}; arguments {kwargs}")
    print(f"{'model':8} {'variant':8} {'decode s':>8} {'cpu s':>7} {'x rt':>6} {'encoder s':>9} "
          f"{'segments':>8} {'fallbacks':>9} {'tokens':>6}")
    for (name, variant), cost in costs.items():
        encoder = f"{cost.encoder:9.2f}" if variant == "worker" else f"{'':>9}"
        print(f"{name:8} {variant:8} {cost.seconds:8.2f} {cost.cpu:7.2f} "
              f"{seconds / cost.seconds:6.1f} {encoder} {cost.segments:8} {cost.fallbacks:9} "
              f"{cost.tokens:6}")
    first, *others = args.models
    for name in others:
        for variant in VARIANTS:
            mine, theirs = costs[name, variant], costs[first, variant]
            print(f"{variant}: {name} is {theirs.seconds / mine.seconds:.2f}x as fast as {first} "
                  f"(CPU {theirs.cpu / mine.cpu:.2f}x)")


if __name__ == "__main__":
    main()
