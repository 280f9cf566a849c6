"""Which files a batch picks, skips and refuses, and where their transcripts go (pure logic)."""

from __future__ import annotations

from pathlib import Path

from cli.batch import find_media, plan
from cli.main import Format
from cli.outputs import output_paths, write_atomic
from shared.output.formatters import FORMATS


def touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_the_commands_formats_are_the_servers() -> None:
    assert [f.value for f in Format] == list(FORMATS)


def test_find_media_by_extension_leaving_hidden_files_out(tmp_path: Path) -> None:
    touch(tmp_path / "a.MP3", tmp_path / "b.webm", tmp_path / "notes.txt", tmp_path / "._a.mp3",
          tmp_path / "sub" / "c.flac", tmp_path / ".cache" / "d.wav")  # fmt: skip
    assert [p.name for p in find_media(tmp_path, recursive=False)] == ["a.MP3", "b.webm"]
    assert [str(p.relative_to(tmp_path)) for p in find_media(tmp_path, recursive=True)] == [
        "a.MP3", "b.webm", "sub/c.flac",
    ]  # fmt: skip


def test_outputs_go_beside_the_input_or_mirror_the_tree(tmp_path: Path) -> None:
    source = tmp_path / "in" / "day1" / "talk.mp3"
    assert output_paths(source, ["srt"]) == {"srt": tmp_path / "in" / "day1" / "talk.srt"}
    mirrored = output_paths(source, ["srt", "json"], tmp_path / "out", root=tmp_path / "in")
    folder = tmp_path / "out" / "day1"
    assert mirrored == {"srt": folder / "talk.srt", "json": folder / "talk.json"}


def test_plan_skips_finished_inputs_and_refuses_clashing_names(tmp_path: Path) -> None:
    touch(tmp_path / "a.mp3", tmp_path / "a.wav", tmp_path / "b.flac", tmp_path / "c.ogg",
          tmp_path / "b.srt", tmp_path / "b.txt", tmp_path / "c.srt")  # fmt: skip
    result = plan(find_media(tmp_path, recursive=False), tmp_path, ["srt", "txt"], None)
    assert [r.label for r in result.requests] == ["a.mp3", "c.ogg"]  # c.ogg lacks its .txt
    assert result.skipped == 1
    assert result.refused == [("a.wav", "its transcripts would overwrite those of a.mp3")]


def test_write_atomic_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "new" / "talk.srt"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["talk.srt"]
