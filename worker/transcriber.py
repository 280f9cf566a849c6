"""The one adapter to faster-whisper: audio file + options in, canonical transcript out."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
from faster_whisper import WhisperModel
from faster_whisper.transcribe import Segment as FWSegment

from shared.config import Settings
from shared.errors import DecodeError, short_reason
from shared.schemas import JobOptions, Segment, Transcript, Word

ProgressCallback = Callable[[float], None]


def whisper_kwargs(options: JobOptions, settings: Settings) -> dict[str, Any]:
    """The arguments to `WhisperModel.transcribe` for a job's options."""
    kwargs: dict[str, Any] = {
        "language": options.language,
        "task": options.task,
        "beam_size": options.beam_size or settings.beam_size,
        "vad_filter": settings.vad_filter if options.vad_filter is None else options.vad_filter,
        "word_timestamps": options.word_timestamps,
        "initial_prompt": options.initial_prompt,
        "hotwords": options.hotwords,
    }
    if options.temperature is not None:  # else faster-whisper's fallback schedule 0, 0.2 .. 1
        kwargs["temperature"] = options.temperature
    return kwargs


def transcribe(
    model: WhisperModel,
    audio: Path,
    options: JobOptions,
    settings: Settings,
    on_progress: ProgressCallback,
) -> Transcript:
    """Run the model over the whole file, reporting progress as segments arrive."""
    try:
        segments, info = model.transcribe(str(audio), **whisper_kwargs(options, settings))
    except (av.error.FFmpegError, OSError) as exc:
        raise DecodeError(f"The audio could not be decoded ({short_reason(exc)}).") from exc
    report = _throttled(on_progress, settings.progress_interval_seconds)
    collected: list[Segment] = []
    for segment in segments:
        collected.append(_segment(segment))
        report(min(segment.end / info.duration, 1.0) if info.duration else 1.0)
    return Transcript(
        language=info.language,
        language_probability=info.language_probability,
        duration=info.duration,
        text="".join(s.text for s in collected).strip(),
        segments=collected,
    )


def _segment(segment: FWSegment) -> Segment:
    words = None
    if segment.words is not None:
        words = [Word(start=w.start, end=w.end, word=w.word, probability=w.probability)
                 for w in segment.words]
    return Segment(
        id=segment.id,
        start=segment.start,
        end=segment.end,
        text=segment.text,
        avg_logprob=segment.avg_logprob,
        no_speech_prob=segment.no_speech_prob,
        words=words,
    )


def _throttled(callback: ProgressCallback, interval: float) -> ProgressCallback:
    """Pass progress on at most once per `interval` seconds (always when it reaches 1)."""
    last = float("-inf")

    def report(fraction: float) -> None:
        nonlocal last
        now = time.monotonic()
        if fraction >= 1.0 or now - last >= interval:
            last = now
            callback(fraction)

    return report
