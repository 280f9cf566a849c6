"""Opening uploaded media safely: the one place where an upload becomes a demuxer.

FFmpeg's demuxers include some that read other resources named inside the file: HLS and DASH
playlists, concat lists, image sequences, tee and the like. An upload holding such a playlist
could name any file the service can read (another job's upload, a key on disk) and have it
transcribed. So the API's probe and the worker's decoder open uploads only through
`open_media`, which lets FFmpeg pick among real media containers alone and read local files
alone (https://ffmpeg.org/ffmpeg-formats.html#Format-Options: `format_whitelist`,
`protocol_whitelist`). FFmpeg checks the demuxer it probed against the list and fails the open
(EINVAL) instead of trying another, so a playlist is refused before it names anything.

Of the allowed demuxers only `mov` can read another file: a QuickTime track may keep its samples
in a file named by an alias record (`dref`). FFmpeg ignores those unless `enable_drefs` is set;
`open_media` says so explicitly, so that no default of a future FFmpeg can turn it on.

Imported by the API and the worker (both install PyAV); nothing else in `shared/` needs it.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import IO, Protocol

import av

from shared.errors import UnsupportedMedia, short_reason

# Demuxers of self-contained audio and video containers. A demuxer whose name lists several
# (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`) is allowed when any of its names is here.
ALLOWED_DEMUXERS = frozenset({
    "aac", "ac3", "aiff", "amr", "amrnb", "amrwb", "ape", "asf", "au", "avi", "caf", "dts",
    "eac3", "flac", "flv", "matroska", "mov", "mp3", "mpeg", "mpegts", "ogg", "tta", "w64",
    "wav", "wv",
})

# Local files only: no network, and no `concat:`, `subfile:` or `data:` tricks in nested opens.
ALLOWED_PROTOCOLS = "file"

# `mov`: never follow a track's data reference to another file, by relative or absolute path.
_NO_EXTERNAL_TRACKS = {"enable_drefs": "0", "use_absolute_path": "0"}

_NOT_ALLOWED = (
    "The file is not in an accepted audio or video format (playlists, concat lists and other "
    "files that name further files or URLs are refused)."
)


class Stored(Protocol):
    """Media in an object store, opened as a seekable file (`shared/media/storage/s3.py`)."""

    def open(self) -> IO[bytes]: ...


MediaSource = Path | Stored


def open_media(path: MediaSource) -> av.container.InputContainer:
    """Open an upload for reading; `UnsupportedMedia` unless it is a plain media container.
    An object is read through PyAV's file-object I/O: the whitelists still bind the demuxer
    and any nested open."""
    options = {
        "format_whitelist": ",".join(sorted(ALLOWED_DEMUXERS)),
        "protocol_whitelist": ALLOWED_PROTOCOLS,
        **_NO_EXTERNAL_TRACKS,
    }
    try:
        target = str(path) if isinstance(path, Path) else path.open()
        return av.open(target, "r", metadata_errors="ignore", container_options=options)
    except av.error.FFmpegError as exc:
        if exc.errno == errno.EINVAL:  # the probed demuxer or a nested protocol is not allowed
            raise UnsupportedMedia(_NOT_ALLOWED) from exc
        message = f"The file could not be decoded as audio or video ({short_reason(exc)})."
        raise UnsupportedMedia(message) from exc
