"""Opening uploaded media safely: the one place where an upload becomes a demuxer.

FFmpeg's demuxers include some that read other resources named inside the file: HLS and DASH
playlists, concat lists, image sequences, tee and the like. An upload holding such a playlist
could name any file the service can read (another job's upload, a key on disk) and have it
transcribed. So the API's probe and the worker's decoder open uploads only through
`open_media`, which lets FFmpeg pick among real media containers alone and read local files
alone (https://ffmpeg.org/ffmpeg-formats.html#Format-Options: `format_whitelist`,
`protocol_whitelist`).

Imported by the API and the worker (both install PyAV); nothing else in `shared/` needs it.
"""

from __future__ import annotations

from pathlib import Path

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


def open_media(path: Path) -> av.container.InputContainer:
    """Open an upload for reading; `UnsupportedMedia` unless it is a plain media container."""
    options = {
        "format_whitelist": ",".join(sorted(ALLOWED_DEMUXERS)),
        "protocol_whitelist": ALLOWED_PROTOCOLS,
    }
    try:
        return av.open(str(path), metadata_errors="ignore", container_options=options)
    except av.error.FFmpegError as exc:
        message = f"The file could not be decoded as audio or video ({short_reason(exc)})."
        raise UnsupportedMedia(message) from exc
