"""Live captions' final segments, with the real `tiny.en` model on real speech: the decoder is
stepped as a live worker steps it, one step of audio at a time."""

from __future__ import annotations

import json

import jiwer
import numpy as np
import pytest
from faster_whisper import decode_audio
from support import DATA

from shared.config import Settings
from worker.agreement import TimedWord
from worker.live_decoder import RATE, Hypothesis, StreamingTranscriber, whisper_decode
from worker.model import get_model

TINY = "tiny.en"
# "And so, my fellow Americans, [pause] ask not what your country can do for you, [pause] ask
# what you can do for your country." One sentence, with pauses of about 1.5 s and 0.3 s.
JFK = DATA / "jfk.flac"
REFERENCE = next(e["reference"] for e in json.loads((DATA / "manifest.json").read_text())
                 if e["file"] == "jfk.flac")


def words(text: str) -> list[str]:
    return jiwer.RemovePunctuation()(text.lower()).split()


def captions(settings: Settings, step_seconds: float | None = None) -> list[tuple[float, str]]:
    """Each final segment's text, with how much of the recording had been sent when it came."""
    audio = (decode_audio(str(JFK)) * 32767).astype(np.int16)
    decode = whisper_decode(get_model(settings, TINY), "transcribe", settings)
    stream = StreamingTranscriber(decode, settings, "en", False, step_seconds)
    step, finals = int(stream.step_seconds * RATE), []
    for offset in range(0, len(audio), step):
        stream.append(audio[offset:offset + step])
        if stream.ready:
            finals += [(stream.stream_seconds, s.text) for s in stream.step().finals]
    return finals + [(stream.stream_seconds, s.text) for s in stream.finish().finals]


def test_a_pause_ends_a_caption_before_the_sentence_does() -> None:
    # Segments as long as the sentence: only its end or a pause can end a caption.
    finals = captions(Settings(live_segment_seconds=30), step_seconds=0.5)
    texts = [text for _, text in finals]
    assert len(finals) >= 2, texts
    # The first caption is out while the sentence is still being spoken, and is not one word.
    assert finals[0][0] < len(decode_audio(str(JFK))) / RATE - 1, finals
    assert len(words(texts[0])) >= 2, texts
    # Every word once, in order: a caption cut at a pause loses and repeats nothing.
    assert jiwer.wer(" ".join(words(REFERENCE)), " ".join(words("".join(texts)))) <= 0.1, texts


# Made-up speech for the rule alone: no punctuation, so only a pause can end a caption early.
SPOKEN = [TimedWord(0.2, 0.5, " ask"), TimedWord(0.5, 0.8, " not"), TimedWord(0.8, 1.1, " what"),
          TimedWord(1.9, 2.3, " your"), TimedWord(2.3, 2.8, " country"),
          TimedWord(2.8, 3.0, " can"), TimedWord(3.0, 3.2, " do")]


def scripted(audio: np.ndarray, language: str | None, prompt: str) -> Hypothesis:
    """Whisper as if it heard `SPOKEN`: every word whose end the buffer has reached."""
    heard = len(audio) / RATE
    return Hypothesis([w for w in SPOKEN if w.end <= heard], [heard], language)


def scripted_captions(settings: Settings, step: float,
                      audio: np.ndarray | None = None) -> list[tuple[float, str]]:
    """The finals of `SPOKEN` over `audio` (else 4 s of silence), decoded every `step` s."""
    stream = StreamingTranscriber(scripted, settings, "en", False, step)
    audio = np.zeros(4 * RATE, dtype=np.int16) if audio is None else audio
    finals, size = [], int(step * RATE)
    for number in range(len(audio) // size):
        stream.append(audio[number * size:(number + 1) * size])
        finals += [(stream.stream_seconds, s.text) for s in stream.step().finals]
    return finals


@pytest.mark.parametrize(("pause", "step", "finals"), [
    # Decoded twice a second, "what" is confirmed at 2.0 s with 0.9 s heard after it and no
    # word there; "do" at 4.0 s with 0.8 s after it.
    (0.5, 0.5, [(2.0, " ask not what"), (4.0, " your country can do")]),
    # Decoded once a second, "what" is confirmed at 3.0 s with "your" heard 0.8 s after it.
    (0.7, 1.0, [(3.0, " ask not what")]),
    (1.0, 0.5, []),  # no pause that long: the words wait for a sentence's end or their span
    (1.0, 1.0, []),
])
def test_a_pause_after_confirmed_words_ends_their_caption(
    pause: float, step: float, finals: list[tuple[float, str]]
) -> None:
    assert scripted_captions(Settings(live_segment_seconds=30, live_pause_seconds=pause),
                             step) == finals


def test_speech_after_the_last_word_decoded_is_no_pause() -> None:
    # Whisper leaves out words at a buffer's end. Over the president's speech, "what" is
    # confirmed at 2.0 s with 0.9 s after it and no word decoded there: that is no pause.
    speech = (decode_audio(str(JFK))[:2 * RATE] * 32767).astype(np.int16)
    assert scripted_captions(Settings(live_segment_seconds=30), 0.5, speech) == []
    # Over silence the same words end a caption then.
    assert scripted_captions(Settings(live_segment_seconds=30), 0.5,
                             np.zeros(2 * RATE, dtype=np.int16)) == [(2.0, " ask not what")]


@pytest.mark.parametrize(("step_seconds", "settings", "ready_after"), [
    (0.5, Settings(), 0.5),  # the model's own step (tiny.en's catalogue entry)
    (None, Settings(), 1.0),  # none: VERBATIM_LIVE_STEP_SECONDS
    (None, Settings(live_step_seconds=2), 2.0),
])
def test_a_buffer_is_decoded_again_after_the_models_live_step(
    step_seconds: float | None, settings: Settings, ready_after: float
) -> None:
    stream = StreamingTranscriber(whisper_decode(get_model(settings, TINY), "transcribe",
                                                 settings), settings, "en", False, step_seconds)
    stream.append(np.zeros(int((ready_after - 0.1) * RATE), dtype=np.int16))
    assert not stream.ready
    stream.append(np.zeros(int(0.1 * RATE), dtype=np.int16))
    assert stream.ready
