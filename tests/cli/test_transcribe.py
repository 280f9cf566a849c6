"""`verbatim transcribe` against a real API, worker and model, run as a user runs it."""

from __future__ import annotations

import json
import shutil
import string
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import srt
from gateway import Proxy
from support import DATA

from shared.output.formatters import FORMATS

Verbatim = Callable[..., CompletedProcess[str]]
SHORT = "1089-134686-0001.flac"  # 3.3 s of speech


def copy(name: str, folder: Path) -> Path:
    return Path(shutil.copy(DATA / name, folder / name))


def words(text: str) -> str:
    return " ".join(text.lower().translate(str.maketrans("", "", string.punctuation)).split())


def said(stderr: str) -> str:
    """A usage error's text, out of its box and unwrapped."""
    return " ".join(stderr.replace("│", " ").split())


def test_writes_srt_beside_the_input(server: str, verbatim: Verbatim, tmp_path: Path) -> None:
    audio = copy("jfk.flac", tmp_path)
    result = verbatim("transcribe", audio, "--format", "srt", "--server", server)
    assert result.returncode == 0, result.stderr
    subtitles = list(srt.parse((tmp_path / "jfk.srt").read_text()))
    assert subtitles
    heard = words(" ".join(subtitle.content for subtitle in subtitles))
    assert "ask not what your country can do for you" in heard
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jfk.flac", "jfk.srt"]  # no temp files


def test_out_dir_and_json(server: str, verbatim: Verbatim, tmp_path: Path) -> None:
    audio = copy(SHORT, tmp_path)
    out = tmp_path / "transcripts" / "new"
    result = verbatim("transcribe", audio, "--out", out, "--format", "json", "--server", server)
    assert result.returncode == 0, result.stderr
    transcript = json.loads((out / "1089-134686-0001.json").read_text())
    assert transcript["duration"] == pytest.approx(3.275, abs=0.1)
    assert transcript["segments"]
    assert not (tmp_path / "1089-134686-0001.json").exists()


def test_verbatim_url_names_the_server(server: str, verbatim: Verbatim, tmp_path: Path) -> None:
    audio = copy(SHORT, tmp_path)
    result = verbatim("transcribe", audio, env={"VERBATIM_URL": server})
    assert result.returncode == 0, result.stderr
    assert words((tmp_path / "1089-134686-0001.txt").read_text())


def test_server_option_wins_over_verbatim_url(
    server: str, dead_url: str, verbatim: Verbatim, tmp_path: Path
) -> None:
    audio = copy(SHORT, tmp_path)
    result = verbatim("transcribe", audio, "--server", dead_url, env={"VERBATIM_URL": server})
    assert result.returncode == 1
    assert dead_url in result.stderr


def test_refused_upload_shows_the_servers_message_and_the_rest_go_on(
    server: str, verbatim: Verbatim, tmp_path: Path
) -> None:
    fake = tmp_path / "x.mp3"
    fake.write_text("this is not audio\n" * 50)
    audio = copy(SHORT, tmp_path)
    result = verbatim("transcribe", fake, audio, "--server", server)
    assert result.returncode == 1
    [failure] = [line for line in (result.stdout + result.stderr).splitlines() if "x.mp3" in line]
    assert "unsupported_media" in failure
    assert "could not be decoded as audio or video" in failure
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [audio.name, "1089-134686-0001.txt", "x.mp3"]  # the next file went on


def test_unreachable_server_is_one_clear_line(
    dead_url: str, verbatim: Verbatim, tmp_path: Path
) -> None:
    audio = copy(SHORT, tmp_path)
    result = verbatim("transcribe", audio, "--server", dead_url)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"verbatim: cannot reach the Verbatim server at {dead_url}: ")
    assert "Traceback" not in result.stdout + result.stderr


def test_usage_errors_exit_2(verbatim: Verbatim, tmp_path: Path) -> None:
    audio = copy(SHORT, tmp_path)
    bad_language = verbatim("transcribe", audio, "--language", "xx")
    assert bad_language.returncode == 2
    assert "unknown language code 'xx'" in bad_language.stderr
    assert verbatim("transcribe", tmp_path / "missing.mp3").returncode == 2
    assert verbatim("batch", tmp_path, "--formats", "srt,doc").returncode == 2
    bad_format = verbatim("transcribe", audio, "--format", "doc")
    assert bad_format.returncode == 2
    assert "'doc' is not one of" in said(bad_format.stderr)
    assert all(f"'{name}'" in said(bad_format.stderr) for name in FORMATS)


@pytest.mark.parametrize(
    ("names", "options", "clash"),
    [
        (["talk.mp3", "talk.wav"], [], "talk.wav: its transcripts would overwrite those of"),
        (["a/talk.mp3", "b/talk.mp3"], ["--out", "out"], "b/talk.mp3: its transcripts would"),
    ],
)
def test_inputs_that_would_write_the_same_transcript_are_refused_before_any_upload(
    proxy: Proxy, verbatim: Verbatim, tmp_path: Path, names: list[str], options: list[str],
    clash: str,
) -> None:
    files = [tmp_path / name for name in names]
    for file in files:
        file.parent.mkdir(exist_ok=True)
        shutil.copy(DATA / SHORT, file)
    options = [o if o != "out" else str(tmp_path / "out") for o in options]
    result = verbatim("transcribe", *files, *options, "--server", proxy.url)
    assert result.returncode == 2
    assert clash in said(result.stderr)
    assert proxy.seen == []
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        map(Path, names)
    )


def test_candidates_and_the_code_switching_mode_reach_the_job(
    server: str, verbatim: Verbatim, tmp_path: Path
) -> None:
    audio = copy(SHORT, tmp_path)
    result = verbatim("transcribe", audio, "--format", "json", "--server", server,
                      "--language", "de,en", "--multilingual", "--script", "simplified")
    assert result.returncode == 0, result.stderr
    transcript = json.loads((tmp_path / "1089-134686-0001.json").read_text())
    assert transcript["languages"] == ["en"]
    assert {a["language"] for a in transcript["language_alternatives"]} == {"en", "de"}
    bad = verbatim("transcribe", audio, "--script", "cyrillic")
    assert bad.returncode == 2
    assert "'cyrillic' is not one of" in said(bad.stderr)
    bad = verbatim("transcribe", audio, "--language", "ko,xx")
    assert bad.returncode == 2
    assert "unknown language code 'xx'" in bad.stderr
