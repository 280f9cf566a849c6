"""LocalAgreement-2 and the live PCM decoder: pure logic, on made-up hypotheses and tones."""

from __future__ import annotations

import numpy as np
import pytest

from worker.agreement import LocalAgreement, TimedWord
from worker.live_audio import UndecodableAudio, decoder_for


def words(*spans: tuple[float, str]) -> list[TimedWord]:
    return [TimedWord(start, start + 0.4, text) for start, text in spans]


def timed(*spans: tuple[str, float, float]) -> list[TimedWord]:
    return [TimedWord(start, end, text) for text, start, end in spans]


def test_words_are_confirmed_once_two_hypotheses_agree_on_them() -> None:
    agreement = LocalAgreement()
    assert agreement.agree(words((0.0, " And"), (0.5, " so"))) == []
    confirmed = agreement.agree(words((0.0, " And"), (0.5, " so,"), (1.0, " my"), (1.5, " fellow")))
    assert [w.text for w in confirmed] == [" And", " so,"]  # case and punctuation aside
    assert [w.text for w in agreement.tentative] == [" my", " fellow"]
    # A hypothesis that disagrees confirms nothing new and replaces the tentative words.
    assert agreement.agree(words((0.0, " And"), (0.5, " so"), (1.0, " I"))) == []
    assert [w.text for w in agreement.tentative] == [" I"]


def test_confirmed_words_are_never_repeated() -> None:
    agreement = LocalAgreement()
    first = words((0.0, " ask"), (0.5, " not"), (1.0, " what"))
    agreement.agree(first)
    assert [w.text for w in agreement.agree(first)] == [" ask", " not", " what"]
    # The buffer was cut: the next decode starts again at the last confirmed words, a little
    # earlier than their timing said. They are dropped, by time and by the repeated n-gram.
    again = [TimedWord(1.35, 1.6, " what"), TimedWord(1.6, 2.0, " your"),
             TimedWord(2.0, 2.4, " country")]
    agreement.agree(again)
    assert [w.text for w in agreement.agree(again)] == [" your", " country"]
    assert [w.text for w in agreement.flush()] == []


def test_a_word_stretched_at_a_buffer_edge_hides_no_speech() -> None:
    """A decode that ends its buffer stretches its last words over speech it did not hear
    out; the next decode hears that speech, and it is confirmed, not dropped as old."""
    agreement = LocalAgreement()
    agreement.agree(timed(("of", 16.5, 16.66), ("the", 16.66, 16.8), ("nether", 16.8, 16.98)))
    stretched = agreement.agree(timed(("of", 16.48, 19.28), ("the", 19.28, 19.28)))
    assert [(w.text, w.start, w.end) for w in stretched] == [("of", 16.48, 16.66),
                                                          ("the", 16.66, 16.8)]
    heard = timed(("of", 16.5, 16.66), ("the", 16.66, 16.8), ("Netherlands", 16.8, 17.2),
                  ("by", 17.2, 17.4), ("a", 17.9, 18.0))
    agreement.agree(heard)
    assert [w.text for w in agreement.agree(heard)] == ["Netherlands", "by", "a"]


def test_flush_confirms_the_last_hypothesis() -> None:
    agreement = LocalAgreement()
    agreement.agree(words((0.0, " for"), (0.5, " your"), (1.0, " country.")))
    assert [w.text for w in agreement.flush()] == [" for", " your", " country."]
    assert agreement.confirmed_end == pytest.approx(1.4)


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_pcm_frames_of_any_size_become_16_khz_samples(rate: int) -> None:
    seconds = 2.0
    t = np.arange(int(rate * seconds)) / rate
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype("<i2").tobytes()
    decoder = decoder_for("pcm_s16le", rate)
    pieces = [decoder.feed(tone[i:i + 999]) for i in range(0, len(tone), 999)]  # odd sizes
    samples = np.concatenate([*pieces, decoder.close()])
    assert abs(len(samples) - 16000 * seconds) <= 2
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float32)))
    assert np.argmax(spectrum) * 16000 / len(samples) == pytest.approx(440, abs=2)


def test_an_encoding_without_a_decoder_is_undecodable() -> None:
    with pytest.raises(UndecodableAudio) as raised:
        decoder_for("pcm_s16le", None)
    assert raised.value.code == "decode_error"
