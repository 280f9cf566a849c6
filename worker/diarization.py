"""Who said what (issue 21): a job's transcription with speaker labels, as `diarize` asks.

`channels`: a call recorded with each party on a channel of its own. Each channel is decoded on
its own speech, as a recording of its own, and the segments are merged on the recording's
clock, each labelled with its channel (`S1` the first, named by `channel_names`). Crosstalk
heard on both channels stays in both. Word timings are on, as every diarized job has them.

A job without `diarize` is the plain transcription (`worker/transcriber.py`), unchanged.
"""

from __future__ import annotations

from pathlib import Path

from faster_whisper import WhisperModel

from shared.config import Settings
from shared.errors import NotMultichannel
from shared.media.probe import probe_channels
from shared.schemas import MAX_CHANNELS, JobOptions, Segment, Transcript
from shared.turns import label, renumbered, speakers_of
from worker import transcriber
from worker.transcriber import (
    DecodedCallback,
    PartlyDone,
    ProgressCallback,
    SegmentCallback,
)


def mode(options: JobOptions, settings: Settings) -> str:
    """The job's diarization: its own choice, else the server's default."""
    return options.diarize or settings.diarize


def transcribe(
    model: WhisperModel, audio: Path, options: JobOptions, settings: Settings,
    on_progress: ProgressCallback, expected_seconds: float | None = None,
    on_segment: SegmentCallback | None = None, on_decoded: DecodedCallback | None = None,
) -> Transcript:
    """`worker.transcriber.transcribe`, with speaker labels where the job is diarized."""
    if mode(options, settings) == "channels":
        return by_channel(model, audio, options, settings, on_progress, expected_seconds,
                          on_segment, on_decoded)
    return transcriber.transcribe(model, audio, options, settings, on_progress,
                                  expected_seconds, on_segment, on_decoded)


def by_channel(
    model: WhisperModel, audio: Path, options: JobOptions, settings: Settings,
    on_progress: ProgressCallback, expected_seconds: float | None,
    on_segment: SegmentCallback | None, on_decoded: DecodedCallback | None,
) -> Transcript:
    """Each channel transcribed on its own, merged on the recording's clock and labelled.

    The key's daily audio is charged once, on the first channel's pass; segments are
    published once merged, in time order, so that their numbers are the transcript's."""
    count = probe_channels(audio)
    if count < 2:
        raise NotMultichannel("diarize=channels needs a recording with a channel per speaker; "
                              "this one has one channel.")
    count = min(count, MAX_CHANNELS)
    timed = options.model_copy(update={"word_timestamps": True})
    heard: list[Transcript] = []
    for channel in range(count):
        def progress(fraction: float, done: int = channel) -> None:
            on_progress((done + fraction) / count)

        try:
            heard.append(transcriber.transcribe(
                model, audio, timed, settings, progress, expected_seconds,
                on_decoded=on_decoded if channel == 0 else None, channel=channel))
        except PartlyDone as exc:  # the key's day ran out on the first pass: keep what it has
            raise PartlyDone(exc.error, merged([exc.transcript], options)) from None
    transcript = merged(heard, options)
    for segment in transcript.segments:
        if on_segment is not None:
            on_segment(segment)
    return transcript


def merged(channels: list[Transcript], options: JobOptions) -> Transcript:
    """The channels' transcripts as one: segments and words labelled with their channel's
    speaker, in order of start time, renumbered; the words kept only where the job asked."""
    names = options.names_of_channels
    segments: list[Segment] = []
    for channel, heard in enumerate(channels):
        who = label(channel)
        for segment in heard.segments:
            words = None
            if options.word_timestamps and segment.words is not None:
                words = [w.model_copy(update={"speaker": who}) for w in segment.words]
            segments.append(segment.model_copy(update={"speaker": who, "words": words}))
    ordered = renumbered(sorted(segments, key=lambda s: (s.start, s.end)))
    first = channels[0]
    return first.model_copy(update={
        "duration": max(t.duration for t in channels),
        "text": " ".join(s.text.strip() for s in ordered),
        "segments": ordered,
        "speakers": speakers_of(
            ordered, {label(i): n for i, n in enumerate(names)},
            {label(i): i for i in range(len(channels))}),
        "languages": list(dict.fromkeys(lang for t in channels for lang in t.languages)),
    })
