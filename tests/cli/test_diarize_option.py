"""`verbatim transcribe --diarize` (issue 21), against the real API, worker and model."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from support import DATA

Verbatim = Callable[..., CompletedProcess[str]]


def test_a_stereo_call_is_written_with_its_speakers(server: str, verbatim: Verbatim,
                                                    tmp_path: Path) -> None:
    audio = Path(shutil.copy(DATA / "stereo_diarization.flac", tmp_path / "call.flac"))
    result = verbatim("transcribe", audio, "--server", server, "--diarize", "channels",
                      "--channel-names", "agent,customer")
    assert result.returncode == 0, result.stderr
    turns = (tmp_path / "call.txt").read_text().strip().split("\n\n")
    assert sorted(turn.split(": ")[0] for turn in turns) == ["agent", "customer"]
    assert any(t.startswith("agent: ") and "wizard" in t for t in turns)


def test_speaker_bounds_reach_the_worker(server: str, verbatim: Verbatim, tmp_path: Path) -> None:
    # One man speaking: left to itself, the clustering finds one speaker; at least two, it
    # must split him.
    audio = Path(shutil.copy(DATA / "jfk.flac", tmp_path / "jfk.flac"))
    result = verbatim("transcribe", audio, "--server", server, "--diarize", "voices",
                      "--min-speakers", "2", "--max-speakers", "2")
    assert result.returncode == 0, result.stderr
    turns = (tmp_path / "jfk.txt").read_text().strip().split("\n\n")
    assert {turn.split(": ")[0] for turn in turns} == {"S1", "S2"}


@pytest.mark.parametrize(("args", "option"), [
    (["--diarize", "faces"], "--diarize"),
    (["--diarize", "voices", "--speakers", "0"], "--speakers"),
    (["--diarize", "channels", "--speakers", "2"], "--speakers"),
    (["--diarize", "channels", "--channel-names", ","], "--channel-names"),
    (["--diarize", "voices", "--min-speakers", "0"], "--min-speakers"),
    (["--diarize", "voices", "--max-speakers", "21"], "--max-speakers"),
    (["--diarize", "voices", "--min-speakers", "3", "--max-speakers", "2"], "--max-speakers"),
    (["--diarize", "voices", "--speakers", "2", "--min-speakers", "1"], "--min-speakers"),
    (["--diarize", "channels", "--max-speakers", "2"], "--max-speakers"),
    (["--min-speakers", "two"], "--min-speakers"),
])
def test_a_bad_speaker_option_fails_before_any_upload(
    verbatim: Verbatim, tmp_path: Path, dead_url: str, args: list[str], option: str
) -> None:
    audio = Path(shutil.copy(DATA / "jfk.flac", tmp_path / "jfk.flac"))
    result = verbatim("transcribe", audio, "--server", dead_url, *args)
    assert result.returncode == 2
    assert option in result.stderr
