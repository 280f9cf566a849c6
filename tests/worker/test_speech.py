"""One voice-activity pass per window (`worker/speech.py`): the speech regions and the speech
decoded, read from one set of Silero VAD probabilities, are exactly what faster-whisper's own
`get_speech_timestamps` finds running the model itself, on real speech with pauses of every
length around it (a faster-whisper upgrade that changes its VAD shows here)."""

from __future__ import annotations

import numpy as np
import pytest
from faster_whisper import decode_audio
from faster_whisper.vad import VadOptions, get_speech_timestamps
from support import DATA

from shared.config import Settings
from shared.schemas import JobOptions
from worker.audio import SAMPLE_RATE, to_float
from worker.speech import activity, decoded_speech, regions_of, speech_regions
from worker.transcriber import whisper_kwargs


def recording(*names: str) -> np.ndarray:
    """The files as int16, after 2.5 s of silence, with pauses of 0.2, 1.0 and 3.0 s between
    them in turn."""
    pieces = [np.zeros(int(2.5 * SAMPLE_RATE), np.int16)]
    for i, name in enumerate(names):
        said = decode_audio(str(DATA / name), sampling_rate=SAMPLE_RATE)
        pieces += [(said * 32767).astype(np.int16),
                   np.zeros(int((0.2, 1.0, 3.0)[i % 3] * SAMPLE_RATE), np.int16)]
    return np.concatenate(pieces)


@pytest.mark.parametrize("names", [
    ("jfk.flac",),
    ("LJ001-0001.flac", "1089-134691-0000.flac", "LJ001-0008.flac", "2412-153948-0000.flac"),
])
def test_the_regions_and_the_speech_decoded_are_faster_whispers_own(
        names: tuple[str, ...]) -> None:
    samples = recording(*names)
    own = [(c["start"], c["end"]) for c in get_speech_timestamps(to_float(samples), VadOptions())]
    probabilities = activity(samples)
    decoded = [(c["start"], c["end"]) for c in decoded_speech(probabilities, samples.size)]
    assert decoded == own
    assert len(own) >= 1
    cut = VadOptions(min_silence_duration_ms=300, speech_pad_ms=100)
    regions = [(c["start"], c["end"]) for c in get_speech_timestamps(to_float(samples), cut)]
    assert regions_of(probabilities, samples.size) == regions == speech_regions(samples)
    assert len(regions) > len(own)  # the short pauses part regions, not decoded chunks


def test_the_speech_decoded_is_faster_whispers_default_vad() -> None:
    """The job's `vad_filter` passes no options: faster-whisper's defaults are the ones read."""
    kwargs = whisper_kwargs(JobOptions(), Settings())
    assert kwargs["vad_filter"] is True
    assert "vad_parameters" not in kwargs
