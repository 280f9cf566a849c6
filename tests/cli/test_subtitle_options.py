"""`verbatim transcribe` with the subtitle options, against the real API, worker and model."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import srt
from support import DATA

from shared.output.subtitles import display_width

Verbatim = Callable[..., CompletedProcess[str]]


def test_srt_is_cut_as_the_options_say(server: str, verbatim: Verbatim, tmp_path: Path) -> None:
    audio = Path(shutil.copy(DATA / "jfk.flac", tmp_path / "jfk.flac"))
    result = verbatim("transcribe", audio, "--format", "srt", "--server", server,
                      "--preset", "broadcast", "--max-line-width", "24")
    assert result.returncode == 0, result.stderr
    cues = list(srt.parse((tmp_path / "jfk.srt").read_text()))
    assert len(cues) >= 3
    for cue in cues:
        lines = cue.content.split("\n")
        assert len(lines) <= 2
        assert all(display_width(line) <= 24 for line in lines)
        assert (cue.end - cue.start).total_seconds() <= 7.0


@pytest.mark.parametrize(
    ("option", "value"),
    [("--max-line-width", "2"), ("--max-line-count", "0"), ("--preset", "cinema"),
     ("--max-chars-per-second", "0")],
)
def test_a_bad_value_fails_before_any_upload(
    verbatim: Verbatim, tmp_path: Path, dead_url: str, option: str, value: str
) -> None:
    audio = Path(shutil.copy(DATA / "jfk.flac", tmp_path / "jfk.flac"))
    result = verbatim("transcribe", audio, "--format", "srt", "--server", dead_url, option, value)
    assert result.returncode == 2
    assert option in result.stderr
