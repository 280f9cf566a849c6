"""`open_media` opens real recordings of every kind the service lists, and refuses every file that
would make FFmpeg open a second resource: a playlist, a concat list, a manifest, a track kept in
another file."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import pytest
from media_samples import KINDS, SPEECH_SECONDS, external_track, hostile_files
from support import DATA

from shared.errors import UnsupportedMedia
from shared.media.opening import open_media

JFK = DATA / "jfk.flac"


def decoded_seconds(container: av.container.InputContainer) -> float:
    stream = container.streams.audio[0]
    return sum(frame.samples for frame in container.decode(stream)) / stream.rate


@pytest.mark.parametrize("extension", [kind.extension for kind in KINDS])
def test_every_listed_kind_of_recording_opens(
    media_samples: dict[str, Path], extension: str
) -> None:
    with open_media(media_samples[extension]) as container:
        assert decoded_seconds(container) == pytest.approx(SPEECH_SECONDS, abs=0.2)


def test_an_hls_playlist_reads_the_file_it_names_unless_refused(tmp_path: Path) -> None:
    playlist = tmp_path / "x.m3u8"
    playlist.write_bytes(hostile_files(JFK.resolve())["x.m3u8"])
    with av.open(str(playlist)) as container:  # FFmpeg left to itself: 11 s of jfk.flac
        assert (container.format.name, round(decoded_seconds(container))) == ("hls", 11)
    with pytest.raises(UnsupportedMedia, match="playlists"):
        open_media(playlist)


@pytest.mark.parametrize("name", list(hostile_files(JFK)))
def test_files_that_name_other_resources_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(hostile_files(JFK.resolve())[name])
    with pytest.raises(UnsupportedMedia):
        open_media(path).close()


def test_a_quicktime_track_kept_in_another_file_is_not_read(
    tmp_path: Path, media_samples: dict[str, Path]
) -> None:
    sibling = "0123456789abcdef0123456789abcdef.m4a"  # another job's upload, beside this one
    shutil.copy(media_samples["m4a"], tmp_path / sibling)
    path = tmp_path / "fedcba9876543210fedcba9876543210.m4a"
    path.write_bytes(external_track(media_samples["m4a"].read_bytes(), sibling))
    with pytest.raises((UnsupportedMedia, av.error.FFmpegError)), open_media(path) as container:
        decoded_seconds(container)  # the samples it names are not in this file
