"""Test media made with PyAV from real speech: one file of every kind the README's CLI extension
list names that FFmpeg can write, and files that make FFmpeg open a second resource (playlists,
concat lists, manifests, a QuickTime track kept in another file)."""

from __future__ import annotations

import shutil
import struct
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from faster_whisper import decode_audio
from support import DATA

SPEECH = DATA / "1089-134686-0001.flac"  # 3.3 s
SPEECH_SECONDS = 3.275


class Kind(NamedTuple):
    extension: str
    container: str
    audio: str
    rate: int
    video: str | None = None
    # A kind FFmpeg reads but not every PyAV build writes is a file of tests/data instead.
    file: Path | None = None


KINDS = [
    Kind("wav", "wav", "pcm_s16le", 16000), Kind("flac", "flac", "flac", 16000),
    Kind("mp3", "mp3", "libmp3lame", 16000), Kind("ogg", "ogg", "libopus", 48000),
    Kind("oga", "ogg", "flac", 16000), Kind("opus", "ogg", "libopus", 48000),
    Kind("m4a", "ipod", "aac", 16000), Kind("aac", "adts", "aac", 16000),
    Kind("aif", "aiff", "pcm_s16be", 16000), Kind("aiff", "aiff", "pcm_s16be", 16000),
    Kind("amr", "amr", "libopencore_amrnb", 8000, file=DATA / "1089-134686-0001.amr"),
    Kind("mka", "matroska", "libopus", 48000),
    Kind("weba", "webm", "libopus", 48000), Kind("wma", "asf", "wmav2", 22050),
    Kind("webm", "webm", "libopus", 48000, "libvpx"),
    Kind("mkv", "matroska", "aac", 16000, "libx264"),
    Kind("mp4", "mp4", "aac", 16000, "libx264"), Kind("m4v", "mp4", "aac", 16000, "mpeg4"),
    Kind("mov", "mov", "aac", 16000, "mpeg4"), Kind("3gp", "3gp", "aac", 16000, "mpeg4"),
    Kind("avi", "avi", "libmp3lame", 16000, "mpeg4"), Kind("flv", "flv", "aac", 44100, "flv"),
    Kind("mpg", "mpeg", "mp2", 16000, "mpeg1video"),
    Kind("mpeg", "mpeg", "mp2", 48000, "mpeg2video"),
    Kind("ts", "mpegts", "mp2", 48000, "mpeg2video"), Kind("wmv", "asf", "wmav2", 22050, "wmv2"),
]  # fmt: skip


def make_sample(path: Path, kind: Kind) -> Path:
    """The speech in `kind`'s container and codec (with a small video track where it has one).
    AMR comes from tests/data: FFmpeg decodes it itself, but encodes it only through
    libopencore, which PyAV's wheels dropped in 18.1.1."""
    if kind.file is not None:
        return Path(shutil.copy(kind.file, path))
    speech = decode_audio(str(SPEECH))
    count = int(len(speech) * kind.rate / 16000)
    samples = np.interp(np.linspace(0, len(speech) - 1, count), np.arange(len(speech)), speech)
    with av.open(str(path), "w", format=kind.container) as out:
        video = _video_stream(out, kind.video) if kind.video else None
        audio = out.add_stream(kind.audio, rate=kind.rate)
        audio.layout, audio.bit_rate = "mono", 64000
        _encode_audio(out, audio, samples.astype(np.float32), kind.rate)
        if video is not None:
            _encode_video(out, video, round(count / kind.rate * 25))
    return path


def _video_stream(out: av.container.OutputContainer, codec: str) -> av.VideoStream:
    stream = out.add_stream(codec, rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    return stream


def _encode_audio(
    out: av.container.OutputContainer, stream: av.AudioStream, samples: np.ndarray, rate: int
) -> None:
    size = stream.codec_context.frame_size or 1024
    for start in range(0, len(samples), size):
        chunk = samples[start:start + size]
        if stream.codec_context.frame_size:
            chunk = np.pad(chunk, (0, size - len(chunk)))
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def _encode_video(out: av.container.OutputContainer, stream: av.VideoStream, frames: int) -> None:
    for index in range(frames):
        image = np.full((64, 64, 3), index % 256, np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = index
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def hls(uri: str, key: str = "") -> str:
    """A minimal HLS playlist of one 11 s segment at `uri` (optionally AES-keyed from `key`)."""
    key_line = f'#EXT-X-KEY:METHOD=AES-128,URI="{key}"\n' if key else ""
    return (f"#EXTM3U\n#EXT-X-TARGETDURATION:12\n{key_line}#EXTINF:11.0,\n{uri}\n"
            "#EXT-X-ENDLIST\n")


def dash(uri: str) -> str:
    """A DASH manifest (as ffmpeg's webm_dash_manifest muxer writes them) naming `uri`."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" minBufferTime="PT1S" '
        'mediaPresentationDuration="PT11S" profiles="urn:mpeg:dash:profile:webm-on-demand:2012">'
        '<Period><AdaptationSet mimeType="audio/webm" codecs="opus">'
        f'<Representation id="0" bandwidth="64000"><BaseURL>{uri}</BaseURL></Representation>'
        "</AdaptationSet></Period></MPD>\n"
    )


def hostile_files(target: Path) -> dict[str, bytes]:
    """Upload name -> content, each naming `target` (a file the service can read) or another
    resource for FFmpeg to open."""
    size = target.stat().st_size
    texts = {
        "x.m3u8": hls(f"file://{target}"),
        "bare.m3u8": hls(str(target)),
        "renamed.mp3": hls(str(target)),
        "concat.m3u8": hls(f"concat:{target}|{target}"),
        "subfile.m3u8": hls(f"subfile,,start,0,end,{size},,:{target}"),
        "keyed.m3u8": hls(str(target), key="file:///etc/hostname"),
        "list.ffconcat": f"ffconcat version 1.0\nfile '{target}'\nfile 'file:{target}'\n",
        "manifest.mpd": dash(f"file://{target}"),
        "stream.sdp": "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\n"
                      "t=0 0\r\nm=audio 5004 RTP/AVP 0\r\n",
        "beats.sbg": "-SE\na: 300+10/30\nNOW a\n",
        "chapters.txt": ";FFMETADATA1\ntitle=x\n[CHAPTER]\nTIMEBASE=1/1\nSTART=0\nEND=11\n",
        "subs.idx": "# VobSub index file, v7 (do not modify this line!)\nsize: 720x480\n"
                    "id: en, index: 0\ntimestamp: 00:00:00:000, filepos: 000000000\n",
    }
    # image2 reads a numbered sequence of files when the name is a pattern.
    return {name: text.encode() for name, text in texts.items()} | {"frame%03d.png": PNG}


# A 1x1 grey PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a49444154789c636000000002000148afa4710000000049454e44ae426082"
)


# QuickTime boxes: a track's data reference (`dref`) may name another file through an alias
# record, whose layout is read by FFmpeg's mov_read_dref (libavformat/mov.c).
_DREF_PATH = [b"moov", b"trak", b"mdia", b"minf", b"dinf", b"dref"]


def external_track(m4a: bytes, sibling: str) -> bytes:
    """`m4a` without its samples, its track's data reference pointing at the file `sibling`
    in the same directory (where another job's upload is kept)."""
    boxes = list(_boxes(m4a))
    header = b"".join(box for kind, box in boxes if kind in (b"ftyp", b"moov"))
    return _replace(header, _DREF_PATH, _alias_dref(sibling))


def _boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    found, pos = [], 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        found.append((kind, data[pos:pos + size]))
        pos += size
    return found


def _replace(data: bytes, path: list[bytes], box: bytes) -> bytes:
    """`data`'s boxes with the one at `path` replaced by `box`, its parents resized."""
    out = b""
    for kind, old in _boxes(data):
        if kind == path[0]:
            if len(path) == 1:
                old = box
            else:
                inner = _replace(old[8:], path[1:], box)
                old = struct.pack(">I4s", 8 + len(inner), kind) + inner
        out += old
    return out


def _alias_dref(sibling: str) -> bytes:
    name = sibling.encode()
    alias = (bytes(10) + bytes(28) + bytes(12) + bytes([len(name)]) + name.ljust(63, b"\0")
             + bytes(16) + struct.pack(">HH", 1, 1) + bytes(16))
    path = b"uploads/" + name + (b"\0" if len(name) % 2 else b"")
    alias += struct.pack(">hH", 18, len(path)) + path + struct.pack(">hH", -1, 0)
    entry = struct.pack(">I4sI", 12 + len(alias), b"alis", 0) + alias
    payload = struct.pack(">II", 0, 1) + entry
    return struct.pack(">I4s", 8 + len(payload), b"dref") + payload
