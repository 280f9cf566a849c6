"""The one adapter to faster-whisper: audio file + options in, canonical transcript out."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.transcribe import Segment as FWSegment
from faster_whisper.transcribe import TranscriptionInfo
from faster_whisper.vad import VadOptions, get_speech_timestamps

from shared.config import Settings
from shared.schemas import JobOptions, Segment, Transcript, Word
from worker.audio import pcm_blocks, to_float
from worker.model import resolve_device
from worker.windows import Window, windows

# `batch_size` where neither the job nor the settings choose one. On CPU, sequential decoding
# keeps faster-whisper's exact output and its temperature fallback (batching 4 measured 1.3 to
# 1.5x faster on 2 loaded cores: README); a GPU decodes eight 30-second stretches at once for
# little more than the cost of one.
DEFAULT_BATCH_SIZE = {"cpu": 1, "cuda": 8}
# Segments of text before a window that prompt its decoding.
PROMPT_SEGMENTS = 8
# The loudest int16 sample a window may hold and still be silence (-80 dBFS).
SILENCE_PEAK = 3
_CUT_VAD = VadOptions(min_silence_duration_ms=300, speech_pad_ms=100)

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


def batch_size(options: JobOptions, settings: Settings) -> int:
    """How many stretches of speech to decode at once: the job's choice, else the server's
    default for this device wherever VAD is on (batched decoding needs it), else 1."""
    if options.batch_size is not None:
        return options.batch_size
    vad = settings.vad_filter if options.vad_filter is None else options.vad_filter
    if not vad:
        return 1
    device, _ = resolve_device(settings)
    return settings.batch_size or DEFAULT_BATCH_SIZE[device]


def transcribe(
    model: WhisperModel,
    audio: Path,
    options: JobOptions,
    settings: Settings,
    on_progress: ProgressCallback,
    expected_seconds: float | None = None,
) -> Transcript:
    """Run the model over the recording window by window (`worker/windows.py`), reporting
    progress as segments arrive against `expected_seconds` (the probed duration).

    The first window's language (detected unless the job names one) is the whole recording's,
    and each window after the first is prompted with the text before it, as faster-whisper's
    own `condition_on_previous_text` would; a recording no longer than one window is decoded
    exactly as faster-whisper decodes the file."""
    kwargs = whisper_kwargs(options, settings)
    decode = model.transcribe
    if (size := batch_size(options, settings)) > 1:
        decode = partial(BatchedInferencePipeline(model).transcribe, batch_size=size)
    blocks = pcm_blocks(audio, settings.max_audio_seconds)
    report = _monotonic(_throttled(on_progress, settings.progress_interval_seconds))
    collected: list[Segment] = []
    first: TranscriptionInfo | None = None
    end = 0.0
    cut = settings.window_seconds, settings.window_search_seconds
    for window in windows(blocks, *cut, find_speech=speech_regions):
        end = window.end_seconds
        total = max(expected_seconds or 0.0, end)
        if _silent(window.samples):
            continue  # nothing to hear, and Whisper would make words up
        segments, info = decode(to_float(window.samples), **kwargs)
        if first is None:
            first = info
            kwargs["language"] = info.language
        for segment in segments:
            collected.append(_segment(segment, len(collected), window))
            report(min(collected[-1].end / total, 1.0) if total else 1.0)
        if options.initial_prompt is None and collected and size == 1:
            kwargs["initial_prompt"] = _previous_text(collected)
    return Transcript(
        language=first.language if first else options.language,
        language_probability=first.language_probability if first else None,
        duration=end,
        text="".join(s.text for s in collected).strip(),
        segments=collected,
    )


def speech_regions(samples: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) sample offsets of the speech in int16 `samples`, by Silero VAD with pauses
    of 300 ms or more between regions (shorter ones can fall inside a word)."""
    found = get_speech_timestamps(to_float(samples), _CUT_VAD)
    return [(region["start"], region["end"]) for region in found]


def _silent(samples: np.ndarray) -> bool:
    """Digital silence: no sample above -80 dBFS (dither at most)."""
    return not samples.size or int(np.abs(samples).max()) <= SILENCE_PEAK


def _previous_text(segments: list[Segment]) -> str:
    """The end of the text so far: faster-whisper keeps only the last 223 prompt tokens."""
    return "".join(s.text for s in segments[-PROMPT_SEGMENTS:]).strip()


def _segment(segment: FWSegment, number: int, window: Window) -> Segment:
    """The segment on the recording's clock (it came from `window`), numbered from 0."""
    offset, limit = window.start_seconds, window.end_seconds

    def at(seconds: float) -> float:
        return round(min(offset + seconds, limit), 3) if offset else min(seconds, limit)

    words = None
    if segment.words is not None:
        words = [Word(start=at(w.start), end=at(w.end), word=w.word, probability=w.probability)
                 for w in segment.words]
    return Segment(
        id=number,
        start=at(segment.start),
        end=at(segment.end),
        text=segment.text,
        avg_logprob=segment.avg_logprob,
        no_speech_prob=segment.no_speech_prob,
        words=words,
    )


def _monotonic(callback: ProgressCallback) -> ProgressCallback:
    """Never report less than before (a later window may start before an earlier one's end
    was estimated)."""
    best = 0.0

    def report(fraction: float) -> None:
        nonlocal best
        if fraction >= best:
            best = fraction
            callback(fraction)

    return report


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
