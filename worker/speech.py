"""The speech finder: where a recording has speech, and whether a decoded segment is speech.

Silero VAD (as faster-whisper ships it) finds the speech regions that windows are cut between
and that decoding is kept to; a segment Whisper returns is kept only where it overlaps them and
passes the model's own no-speech and repetition checks, so words made up over silence, noise or
music are dropped. A deployment with another voice-activity model replaces this module.

The model's speech probabilities for a window are found once (`activity`) and read twice: as
the regions above, and as the speech faster-whisper's `vad_filter` decodes (`decoded_speech`),
which it would otherwise find again by running the model over the whole window a second time.
"""

from __future__ import annotations

import numpy as np
from faster_whisper.transcribe import Segment as FWSegment
from faster_whisper.vad import VadOptions, get_vad_model

from shared.schemas import Segment
from worker.audio import SAMPLE_RATE, to_float
from worker.windows import Window

Regions = list[tuple[int, int]]
# Speech as (start, end) seconds on the recording's clock.
Spans = list[tuple[float, float]]

# Samples Silero VAD scores at a time.
FRAME = 512
# The loudest int16 sample a window may hold and still be silence (-80 dBFS).
SILENCE_PEAK = 3
_CUT_VAD = VadOptions(min_silence_duration_ms=300, speech_pad_ms=100)
# faster-whisper's `vad_filter` options where none are given (`WhisperModel.transcribe`).
_DECODE_VAD = VadOptions()
# Segments whose span meets less VAD speech than this (seconds, regions padded by SPEECH_PAD)
# are words Whisper made up over silence or noise (issue 11: "You" over 30 s of silence).
MIN_SPEECH_OVERLAP = 0.1
SPEECH_PAD = 0.5
# faster-whisper's own thresholds, applied to each segment it returns: a segment likely not
# speech, decoded with little confidence, or as repetitive as a failed decoding is dropped.
NO_SPEECH_PROB = 0.6
LOG_PROB = -1.0
COMPRESSION_RATIO = 2.4
# Over music, a segment this repetitive is a chorus made up (faster-whisper #777).
MUSIC_COMPRESSION_RATIO = 2.0


def speech_regions(samples: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) sample offsets of the speech in int16 `samples`, by Silero VAD with pauses
    of 300 ms or more between regions (shorter ones can fall inside a word)."""
    return regions_of(activity(samples), samples.size)


def activity(samples: np.ndarray) -> np.ndarray:
    """Silero VAD's speech probability for each frame of int16 `samples`, as faster-whisper's
    `get_speech_timestamps` finds them (the samples padded to whole frames)."""
    audio = to_float(samples)
    return np.asarray(get_vad_model()(np.pad(audio, (0, FRAME - audio.size % FRAME))))


def regions_of(probabilities: np.ndarray, size: int) -> Regions:
    """The speech regions (`speech_regions`) of `size` samples with these probabilities."""
    return [(r["start"], r["end"]) for r in _timestamps(probabilities, size, _CUT_VAD)]


def decoded_speech(probabilities: np.ndarray, size: int) -> list[dict[str, int]]:
    """The speech chunks faster-whisper's `vad_filter` would keep of `size` samples with these
    probabilities, in its own form."""
    return _timestamps(probabilities, size, _DECODE_VAD)


def _timestamps(probabilities: np.ndarray, size: int, options: VadOptions
                ) -> list[dict[str, int]]:
    """faster-whisper's `get_speech_timestamps` (1.2.1, MIT; after snakers4/silero-vad) from
    the probabilities it would compute itself; `max_speech_duration_s` is never set here."""
    threshold, rate = options.threshold, SAMPLE_RATE
    negative = options.neg_threshold or max(threshold - 0.15, 0.01)
    least_speech = rate * options.min_speech_duration_ms / 1000
    pad = rate * options.speech_pad_ms / 1000
    least_silence = rate * options.min_silence_duration_ms / 1000
    speeches: list[dict[str, int]] = []
    current: dict[str, int] = {}
    triggered, silence_from = False, 0
    for i, probability in enumerate(probabilities):
        at = FRAME * i
        if probability >= threshold and silence_from:
            silence_from = 0
        if probability >= threshold and not triggered:
            triggered, current["start"] = True, at
            continue
        if probability < negative and triggered:
            silence_from = silence_from or at
            if at - silence_from < least_silence:
                continue
            current["end"] = silence_from
            if current["end"] - current["start"] > least_speech:
                speeches.append(current)
            current, silence_from, triggered = {}, 0, False
    if current and size - current["start"] > least_speech:
        current["end"] = size
        speeches.append(current)
    return _padded(speeches, pad, size)


def _padded(speeches: list[dict[str, int]], pad: float, size: int) -> list[dict[str, int]]:
    """Each chunk widened by `pad` samples each side, or by half the silence to the next where
    that is shorter than two pads (as `get_speech_timestamps` ends)."""
    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - pad))
        if i != len(speeches) - 1:
            silence = speeches[i + 1]["start"] - speech["end"]
            if silence < 2 * pad:
                speech["end"] += int(silence // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - silence // 2))
            else:
                speech["end"] = int(min(size, speech["end"] + pad))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - pad))
        else:
            speech["end"] = int(min(size, speech["end"] + pad))
    return speeches


def within(speech: Regions, part: Window, window: Window) -> Regions:
    """The window's speech regions that fall in `part`, as offsets in it."""
    shift, size = part.start - window.start, part.samples.size
    return [(max(a - shift, 0), min(b - shift, size)) for a, b in speech
            if b > shift and a < shift + size]


def is_speech(segment: FWSegment, speech: Regions) -> bool:
    """Whether a segment is speech: it has text, overlaps VAD speech, and passes the model's
    own no-speech and repetition checks."""
    if not segment.text.strip():
        return False
    if segment.no_speech_prob > NO_SPEECH_PROB and segment.avg_logprob < LOG_PROB:
        return False
    if segment.compression_ratio > COMPRESSION_RATIO:
        return False
    pad = SPEECH_PAD * SAMPLE_RATE
    low, high = segment.start * SAMPLE_RATE, segment.end * SAMPLE_RATE
    overlap = sum(max(0.0, min(high, b + pad) - max(low, a - pad)) for a, b in speech)
    return overlap >= MIN_SPEECH_OVERLAP * SAMPLE_RATE


def doubtful(segment: FWSegment) -> bool:
    """Any one of the model's own signs of a failed decoding, where `is_speech` needs two:
    for segments over what the sound classifier is sure is music (`worker/sounds.py`)."""
    return (segment.no_speech_prob > NO_SPEECH_PROB or segment.avg_logprob < LOG_PROB
            or segment.compression_ratio > MUSIC_COMPRESSION_RATIO)


def silent(samples: np.ndarray) -> bool:
    """Digital silence: no sample above -80 dBFS (dither at most)."""
    return not samples.size or int(np.abs(samples).max()) <= SILENCE_PEAK


def spans(window: Window, speech: Regions) -> Spans:
    """A window's speech regions as seconds on the recording's clock."""
    return [((window.start + a) / SAMPLE_RATE, (window.start + b) / SAMPLE_RATE)
            for a, b in speech]


def to_speech_edges(segments: list[Segment], speech: Spans) -> list[Segment]:
    """The segments (in time order) with each start moved back to the start of the speech it
    begins in, and each end on to the end of the speech it ends in, never over the segment
    before or after it; words untouched. Whisper's word timings end a turn early (the last
    word's fading sound, and faster-whisper cuts a sentence's last word to twice the median
    word length), so a speaker's turn (`diarize`) would miss the end of its speech."""
    ordered = sorted(speech)
    fitted: list[Segment] = []
    for i, segment in enumerate(segments):
        floor = fitted[-1].end if fitted else 0.0
        ceiling = segments[i + 1].start if i + 1 < len(segments) else float("inf")
        start, end = segment.start, segment.end
        for a, b in ordered:
            if a <= segment.start <= b and max(a, floor) < start:
                start = round(max(a, floor), 3)
            if a <= segment.end <= b and min(b, ceiling) > end:
                end = round(min(b, ceiling), 3)
        fitted.append(segment.model_copy(update={"start": start, "end": end}))
    return fitted
