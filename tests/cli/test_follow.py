"""`verbatim transcribe --follow`: segments on stdout as they are decoded, against a real
API, worker and model."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^\[(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d)\.(\d{3})\] (.+)$")
TIMEOUT_SECONDS = 180


def seconds(minutes: str, secs: str, ms: str) -> float:
    return int(minutes) * 60 + int(secs) + int(ms) / 1000


def run_following(audio: Path, server: str) -> tuple[list[tuple[float, str]], float, str]:
    """Run the command; each stdout line with when it came, when it exited, its stderr."""
    env = {k: v for k, v in os.environ.items() if k != "VERBATIM_URL"}
    args = [sys.executable, "-m", "cli.main", "transcribe", str(audio), "--format", "json",
            "--follow", "--server", server]
    with subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        lines = []
        deadline = time.monotonic() + TIMEOUT_SECONDS
        assert process.stdout is not None
        for line in process.stdout:  # ends when the command closes stdout, at its exit
            lines.append((time.monotonic(), line.rstrip("\n")))
            assert time.monotonic() < deadline, "the command ran too long"
        stderr = process.stderr.read() if process.stderr else ""
        assert process.wait(timeout=30) == 0, stderr
        return lines, time.monotonic(), stderr


def test_follow_prints_each_segment_as_it_is_decoded(
    server: str, long_recording: Path, tmp_path: Path
) -> None:
    audio = Path(shutil.copy(long_recording, tmp_path / long_recording.name))
    lines, _, _ = run_following(audio, server)
    assert len(lines) >= 3
    # The last 30-s stretch is decoded after the first one's segments were printed.
    assert lines[-1][0] - lines[0][0] > 0.3, "the segments were printed all at once"
    parsed = [LINE.match(text) for _, text in lines]
    assert all(parsed), [text for _, text in lines]
    starts = [seconds(*m.groups()[:3]) for m in parsed if m]
    assert starts == sorted(starts)
    transcript = json.loads((tmp_path / f"{audio.stem}.json").read_text())
    assert [m.group(7) for m in parsed if m] == [s["text"].strip() for s in transcript["segments"]]
    assert starts == pytest.approx([s["start"] for s in transcript["segments"]], abs=0.001)


def test_follow_takes_no_value(server: str, tmp_path: Path) -> None:
    audio = tmp_path / "a.flac"
    audio.write_bytes(b"x")
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "transcribe", str(audio), "--follow=maybe",
         "--server", server], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "--follow" in result.stderr
