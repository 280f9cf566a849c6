"""Probing uploads with PyAV before a job is created, so bad input never reaches a worker."""

from __future__ import annotations

import av

from shared.errors import UnsupportedMedia, short_reason
from shared.media.opening import MediaSource, open_media


def probe_duration(path: MediaSource) -> float:
    """Seconds of audio in the file; raises `UnsupportedMedia` when none can be decoded."""
    try:
        with open_media(path) as container:
            if not container.streams.audio:
                raise UnsupportedMedia("The file has no audio stream.")
            stream = container.streams.audio[0]
            duration = _declared_duration(container, stream)
            if next(container.decode(stream), None) is None:
                raise UnsupportedMedia("The audio stream holds no decodable audio.")
            return duration if duration is not None else _demuxed_duration(path)
    except av.error.FFmpegError as exc:
        message = f"The file could not be decoded as audio or video ({short_reason(exc)})."
        raise UnsupportedMedia(message) from exc


def probe_channels(path: MediaSource) -> int:
    """How many channels the file's first audio stream has (0 when it has none)."""
    with open_media(path) as container:
        streams = container.streams.audio
        return streams[0].channels if streams else 0


def _declared_duration(
    container: av.container.InputContainer, stream: av.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _demuxed_duration(path: MediaSource) -> float:
    """Duration from packet timestamps, for containers that do not declare one (WebM)."""
    end = 0.0
    with open_media(path) as container:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return end


# A demuxer's first name -> the audio type and extension a kept recording is served with (the
# video type when the file has a picture stream). Never derived from the client's file name.
_SERVED = {
    "wav": ("audio/wav", "", ".wav"), "w64": ("audio/wav", "", ".w64"),
    "flac": ("audio/flac", "", ".flac"), "mp3": ("audio/mpeg", "", ".mp3"),
    "ogg": ("audio/ogg", "video/ogg", ".ogg"), "matroska": ("audio/webm", "video/webm", ".webm"),
    "mov": ("audio/mp4", "video/mp4", ".mp4"), "aac": ("audio/aac", "", ".aac"),
    "asf": ("audio/x-ms-wma", "video/x-ms-asf", ".asf"), "amr": ("audio/amr", "", ".amr"),
    "aiff": ("audio/aiff", "", ".aiff"), "au": ("audio/basic", "", ".au"),
    "caf": ("audio/x-caf", "", ".caf"), "avi": ("audio/x-msvideo", "video/x-msvideo", ".avi"),
    "mpeg": ("audio/mpeg", "video/mpeg", ".mpg"), "mpegts": ("audio/mp2t", "video/mp2t", ".ts"),
    "flv": ("audio/x-flv", "video/x-flv", ".flv"), "ac3": ("audio/ac3", "", ".ac3"),
}  # fmt: skip


def served_type(path: MediaSource) -> tuple[str, str]:
    """The media type and extension to serve a kept recording with, from the format PyAV
    probes in it: always `audio/*` or `video/*`, whatever the upload was named."""
    with open_media(path) as container:
        demuxer = container.format.name.split(",")[0]
        has_video = bool(container.streams.video)
    audio_type, video_type, extension = _SERVED.get(demuxer, (f"audio/x-{demuxer}", "", ""))
    return (video_type if has_video and video_type else audio_type), extension
