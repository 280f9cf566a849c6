"""`verbatim batch` over a folder of real speech and one broken file, then rerun to resume."""

from __future__ import annotations

import re
import shutil
import string
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import srt
from support import DATA

Verbatim = Callable[..., CompletedProcess[str]]
SPEECH = {"LJ001-0005.flac": 8.111, "LJ001-0007.flac": 8.39}
# Words of each reference transcript (tests/data/manifest.json) that the base model gets right.
HEARD = {
    "LJ001-0005": "the invention of movable metal letters in the middle of the",
    "LJ001-0007": "the earliest book printed with movable types",
}


def words(text: str) -> str:
    return " ".join(text.lower().translate(str.maketrans("", "", string.punctuation)).split())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """recordings/{day1/LJ001-0005.flac, day1/deeper/LJ001-0007.flac, broken.mp3, notes.txt}."""
    root = tmp_path_factory.mktemp("recordings")
    deeper = root / "day1" / "deeper"
    deeper.mkdir(parents=True)
    shutil.copy(DATA / "LJ001-0005.flac", root / "day1")
    shutil.copy(DATA / "LJ001-0007.flac", deeper)
    (root / "broken.mp3").write_bytes(b"ID3" + bytes(range(256)) * 8)
    (root / "notes.txt").write_text("not a recording, not looked at\n")
    return root


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("transcripts")


def batch(verbatim: Verbatim, server: str, folder: Path, out: Path) -> CompletedProcess[str]:
    return verbatim("batch", folder, "--recursive", "--formats", "srt,txt", "--out", out,
                    "--concurrency", "2", "--server", server)  # fmt: skip


@pytest.fixture(scope="module")
def first_run(server: str, verbatim: Verbatim, folder: Path, out: Path) -> CompletedProcess[str]:
    return batch(verbatim, server, folder, out)


def outputs(out: Path) -> dict[str, int]:
    """Every file written under `out`, relative, with its modification time."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_batch_transcribes_the_good_files_into_a_mirrored_tree(
    first_run: CompletedProcess[str], out: Path
) -> None:
    assert set(outputs(out)) == {
        "day1/LJ001-0005.srt", "day1/LJ001-0005.txt",
        "day1/deeper/LJ001-0007.srt", "day1/deeper/LJ001-0007.txt",
    }  # fmt: skip
    for name, folder in (("LJ001-0005", "day1"), ("LJ001-0007", "day1/deeper")):
        subtitles = list(srt.parse((out / folder / f"{name}.srt").read_text()))
        heard = words(" ".join(s.content for s in subtitles))
        assert HEARD[name] in heard
        assert words((out / folder / f"{name}.txt").read_text()) == heard


def test_batch_reports_the_broken_file_and_exits_1(first_run: CompletedProcess[str]) -> None:
    assert first_run.returncode == 1, first_run.stderr
    summary = first_run.stdout
    assert "2 ok, 1 failed, 0 skipped" in summary
    [failure] = [line for line in summary.splitlines() if "broken.mp3" in line]
    assert "unsupported_media" in failure
    assert "could not be decoded as audio or video" in failure


def test_batch_sums_audio_duration_and_speed(first_run: CompletedProcess[str]) -> None:
    found = re.search(r"([\d.]+) s of audio in ([\d.]+) s: real-time factor ([\d.]+)",
                      first_run.stdout)  # fmt: skip
    assert found, first_run.stdout
    audio, wall, factor = map(float, found.groups())
    assert audio == pytest.approx(sum(SPEECH.values()), abs=0.3)
    assert factor == pytest.approx(wall / audio, abs=0.01)


def test_rerun_skips_finished_files_and_retries_the_failed_one(
    first_run: CompletedProcess[str], server: str, verbatim: Verbatim, folder: Path, out: Path
) -> None:
    before = outputs(out)
    rerun = batch(verbatim, server, folder, out)
    assert rerun.returncode == 1
    assert "0 ok, 1 failed, 2 skipped" in rerun.stdout
    assert "broken.mp3" in rerun.stdout
    assert "LJ001" not in rerun.stdout + rerun.stderr
    assert outputs(out) == before
