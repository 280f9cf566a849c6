"""Sounds in the downloads (issue 25): `[MUSIC]`-style cues of the `sdh` preset between speech
cues, in the transcript's language or the caller's words; the tsv's sound rows; the json's
`sounds` only where the job asked for them."""

from __future__ import annotations

import json

import pytest
import srt
from pydantic import ValidationError

from shared.output.formatters import render
from shared.output.subtitles import SubtitleOptions
from shared.schemas import Segment, Sound, Transcript

SPEECH = " And so my fellow Americans, ask not what your country can do for you."


def transcript(language: str = "en", sounds: list[Sound] | None = None) -> Transcript:
    return Transcript(
        language=language, duration=30.0, text=SPEECH.strip(),
        segments=[Segment(id=0, start=0.0, end=6.0, text=SPEECH),
                  Segment(id=1, start=20.0, end=23.0, text=" Thank you.")],
        sounds=sounds,
    )


HEARD = [Sound(start=5.5, end=19.0, label="music", confidence=0.9),
         Sound(start=23.0, end=28.0, label="applause", confidence=0.4)]


def cues(text: str) -> list[tuple[float, float, str]]:
    return [(c.start.total_seconds(), c.end.total_seconds(), c.content)
            for c in srt.parse(text)]


def test_sdh_puts_sound_cues_in_the_gaps_between_speech() -> None:
    found = cues(render(transcript(sounds=HEARD), "srt", SubtitleOptions(preset="sdh")))
    texts = [text for _, _, text in found]
    assert texts[-3:] == ["[MUSIC]", "Thank you.", "[APPLAUSE]"]
    assert all("[" not in text for text in texts[:-3])
    music = found[-3]
    assert music[0] == 6.0, "the music cue starts where the speech cue ends"
    assert music[1] <= 20.0
    assert found[-1][:2] == (23.0, 28.0)
    assert [start for start, _, _ in found] == sorted(start for start, _, _ in found)


def test_other_presets_and_no_preset_show_no_sounds() -> None:
    for options in (None, SubtitleOptions(preset="broadcast")):
        assert "[MUSIC]" not in render(transcript(sounds=HEARD), "srt", options)


def test_the_words_follow_the_language_or_the_callers_own() -> None:
    sdh = SubtitleOptions(preset="sdh")
    german = render(transcript("de", HEARD), "vtt", sdh)
    assert "[MUSIK]" in german
    assert "[APPLAUS]" in german
    unknown = render(transcript("sw", HEARD), "vtt", sdh)
    assert "[MUSIC]" in unknown, "a language without a table gets English words"
    own = SubtitleOptions(preset="sdh", sound_words="music=♪ MUSIC ♪, applause=CLAPPING")
    text = render(transcript(sounds=HEARD), "ass", own)
    assert "[♪ MUSIC ♪]" in text
    assert "[CLAPPING]" in text


@pytest.mark.parametrize("value", [
    "noise=HISS", "music", "music=", "music=[LOUD]", "music=A\nB", "=MUSIC",
])
def test_bad_sound_words_are_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="sound_words"):
        SubtitleOptions(preset="sdh", sound_words=value)


def test_the_tsv_has_a_sound_row_kind_in_time_order() -> None:
    rows = render(transcript(sounds=HEARD), "tsv").splitlines()
    assert rows[0] == "start\tend\ttext\tkind"
    assert [row.split("\t")[2:] for row in rows[1:]] == [
        [SPEECH.strip(), "speech"], ["music", "sound"], ["Thank you.", "speech"],
        ["applause", "sound"]]
    assert rows[2].split("\t")[:2] == ["5500", "19000"]
    assert render(transcript(), "tsv").splitlines()[0] == "start\tend\ttext"


def test_the_json_holds_sounds_only_where_asked() -> None:
    asked = json.loads(render(transcript(sounds=HEARD), "json"))
    assert asked["sounds"][0] == {"start": 5.5, "end": 19.0, "label": "music",
                                  "confidence": 0.9}
    assert json.loads(render(transcript(sounds=[]), "json"))["sounds"] == []
    assert "sounds" not in json.loads(render(transcript(), "json"))
