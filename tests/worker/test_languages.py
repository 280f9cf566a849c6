"""Pure logic of the code-switching mode and of detection among candidates (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from shared.schemas import JobOptions, Segment, Word
from worker.detection import detect, ranked
from worker.script import in_script
from worker.windows import Window, split_by_language


def test_a_window_splits_in_the_pause_where_the_language_changes() -> None:
    window = Window(3, 1000, np.arange(100, dtype=np.int16))
    regions = [(0, 20), (30, 40), (60, 90)]
    parts = split_by_language(window, regions, ["en", "en", "de"])
    assert [(p.start, p.samples.size, language) for p, language in parts] == [
        (1000, 50, "en"), (1050, 50, "de")]
    assert np.array_equal(np.concatenate([p.samples for p, _ in parts]), window.samples)


def test_a_window_in_one_language_stays_whole() -> None:
    window = Window(0, 0, np.zeros(50, np.int16))
    [(part, language)] = split_by_language(window, [(0, 10), (20, 30)], ["ko", "ko"])
    assert (part.start, part.samples.size, language) == (0, 50, "ko")


def test_candidates_restrict_and_renormalise() -> None:
    found = ranked({"th": 0.7, "en": 0.2, "ko": 0.05}, ["ko", "en"])
    assert [(c.language, c.probability) for c in found.ranked] == [("en", 0.8), ("ko", 0.2)]
    assert ranked({"en": 0.9}, ["ko"]).language == "ko"  # never another language


class Unsure:
    """A model that hears Spanish weakly in each 30 s, then surely."""

    def __init__(self) -> None:
        self.calls = 0

    def detect_language(self, audio: np.ndarray) -> tuple[str, float, list[tuple[str, float]]]:
        self.calls += 1
        if self.calls == 1:
            return "hi", 0.22, [("hi", 0.22), ("es", 0.2), ("en", 0.1)]
        return "es", 0.9, [("es", 0.9), ("hi", 0.05)]


def test_detection_listens_further_while_unsure() -> None:
    model = Unsure()
    found = detect(model, np.zeros(90 * 16000, np.float32), [])
    assert (found.language, model.calls) == ("es", 2)
    assert found.alternatives()[0].language == "es"


def test_detection_of_short_speech_asks_once() -> None:
    model = Unsure()
    assert detect(model, np.zeros(4 * 16000, np.float32), []).language == "hi"
    assert model.calls == 1


@pytest.mark.parametrize(("script", "expected"), [("simplified", "汉语说话"),
                                                  ("traditional", "漢語說話")])
def test_chinese_segments_are_converted(script: str, expected: str) -> None:
    segment = Segment(id=0, start=0, end=1, text="漢語说话", language="zh",
                      words=[Word(start=0, end=1, word="漢語说话", probability=0.9)])
    converted = in_script(segment, script)
    assert converted.text == expected
    assert converted.words is not None
    assert converted.words[0].word == expected
    english = segment.model_copy(update={"language": "en"})
    assert in_script(english, script) == english


@pytest.mark.parametrize(("given", "stored", "fixed"), [
    ("KO, en", "ko,en", None), ("en", "en", "en"), ("ko,en,ko", "ko,en", None),
    ("auto", None, None)])
def test_language_candidates_are_normalised(given: str, stored: str | None,
                                            fixed: str | None) -> None:
    options = JobOptions(language=given)
    assert (options.language, options.fixed_language) == (stored, fixed)
    assert options.candidates == (stored.split(",") if stored else [])
