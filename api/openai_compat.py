"""OpenAI's audio API on top of jobs: its form fields in, its response shapes out.

Field names and shapes follow https://platform.openai.com/docs/api-reference/audio.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from shared.errors import InvalidRequest
from shared.languages import language_name
from shared.output.formatters import FORMATS
from shared.output.formatters import render as render_format
from shared.output.subtitles import SubtitleOptions
from shared.schemas import JobOptions, Segment, Transcript
from shared.state.voices import NAME

Task = Literal["transcribe", "translate"]

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
STREAM_FORMATS = ("json", "text")
GRANULARITIES = ("word", "segment")
# OpenAI's SDKs send a list as repeated `name[]` fields; plain `name` is accepted too.
_GRANULARITY_FIELDS = ("timestamp_granularities[]", "timestamp_granularities")
# Accepted and without effect: the service has no logprobs or chunking.
IGNORED = frozenset({"include[]", "include", "chunking_strategy"})
# Verbatim's own: how `srt` and `vtt` answers are cut into cues, as on the transcript download.
SUBTITLE_FIELDS = frozenset(SubtitleOptions.model_fields)
_SUBTITLE_FORMATS = ("srt", "vtt")
_COMMON = frozenset({"model", "prompt", "response_format", "temperature", "stream",
                     *_GRANULARITY_FIELDS, *IGNORED, *SUBTITLE_FIELDS})
# OpenAI's named speakers of `diarized_json`: names, and a reference clip of each (data URLs).
_NAME_FIELDS = ("known_speaker_names[]", "known_speaker_names")
_REFERENCE_FIELDS = ("known_speaker_references[]", "known_speaker_references")
MAX_KNOWN_SPEAKERS = 4  # as OpenAI
_DATA_URL = re.compile(
    r"^data:[\w.+-]+/[\w.+-]+(;[\w-]+=[^;,]*)*;base64,(?P<data>[A-Za-z0-9+/=\s]+)$")
FIELDS: dict[Task, frozenset[str]] = {
    "transcribe": _COMMON | {"language", "multilingual", "script", *_NAME_FIELDS,
                             *_REFERENCE_FIELDS},
    "translate": _COMMON,
}
# OpenAI's field -> the JobOptions field it sets.
_JOB_OPTIONS = {"language": "language", "prompt": "initial_prompt", "temperature": "temperature",
                "multilingual": "multilingual", "script": "script", "model": "model"}
_OPENAI_NAMES = {option: name for name, option in _JOB_OPTIONS.items()}


@dataclass(frozen=True)
class AudioRequest:
    """A validated `/v1/audio/*` form: the job's options and how to answer."""

    task: Task
    response_format: str
    granularities: frozenset[str]
    options: JobOptions
    stream: bool = False
    subtitles: SubtitleOptions = field(default_factory=SubtitleOptions)
    references: tuple[tuple[str, bytes], ...] = ()  # known speakers' names and clips


def parse_form(values: dict[str, list[str]], task: Task) -> AudioRequest:
    """Read OpenAI's form fields; a bad one raises `InvalidRequest` naming it as `param`."""
    _known_names(values, task)
    fields = {name: given[-1] for name, given in values.items() if given[-1] != ""}
    response_format = fields.get("response_format", "json")
    if response_format not in RESPONSE_FORMATS:
        message = f"Invalid response_format {response_format!r}: use one of {RESPONSE_FORMATS}."
        raise InvalidRequest(message, param="response_format")
    if response_format == "diarized_json" and task != "transcribe":
        raise InvalidRequest("diarized_json is only supported by transcriptions.",
                             param="response_format")
    stream = _stream(fields.get("stream"), task, response_format)
    granularities = _granularities(values, response_format)
    subtitles = _subtitles(fields, response_format)
    word_timings = "word" in granularities or subtitles.limits() != SubtitleOptions().limits()
    options = _options(fields, task, word_timestamps=word_timings)
    references = _references(values, response_format)
    if response_format == "diarized_json":  # OpenAI's speaker labels: told apart by voice
        named = ",".join(name for name, _ in references) or None
        options = options.model_copy(update={"diarize": "voices", "known_speakers": named})
    return AudioRequest(task, response_format, granularities, options, stream, subtitles,
                        references)


def _references(values: dict[str, list[str]], response_format: str
                ) -> tuple[tuple[str, bytes], ...]:
    """`known_speaker_names[]` with `known_speaker_references[]`: each name and its clip."""
    names = [v for name in _NAME_FIELDS for v in values.get(name, []) if v != ""]
    urls = [v for name in _REFERENCE_FIELDS for v in values.get(name, []) if v != ""]
    if not names and not urls:
        return ()
    param = "known_speaker_names"
    if response_format != "diarized_json":
        raise InvalidRequest(f"{param} is only supported with response_format=diarized_json.",
                             param=param)
    if len(names) != len(urls) or len(names) > MAX_KNOWN_SPEAKERS:
        raise InvalidRequest(f"Give 1 to {MAX_KNOWN_SPEAKERS} known_speaker_names and as many "
                             "known_speaker_references, in the same order.", param=param)
    if len(set(names)) != len(names) or not all(NAME.match(name) for name in names):
        raise InvalidRequest("known_speaker_names must differ and be 1 to 40 letters, digits, "
                             "spaces, dots, apostrophes or hyphens.", param=param)
    return tuple(zip(names, map(_clip, urls), strict=True))


def _clip(url: str) -> bytes:
    """A reference clip's bytes from its data URL (`data:audio/wav;base64,...`)."""
    found = _DATA_URL.match(url[:64_000_000])
    try:
        clip = base64.b64decode(found["data"], validate=False) if found else b""
    except binascii.Error:
        clip = b""
    if not clip:
        raise InvalidRequest("known_speaker_references takes data URLs of audio "
                             "(data:audio/wav;base64,...).", param="known_speaker_references")
    return clip


def _stream(value: str | None, task: Task, response_format: str) -> bool:
    """`stream`: a boolean as OpenAI's SDKs send it; as OpenAI, only transcriptions in `json`
    or `text` stream (the stream carries text, not timestamps)."""
    if value is None or value.lower() in ("false", "0"):
        return False
    if value.lower() not in ("true", "1"):
        raise InvalidRequest(f"stream takes true or false, not {value[:40]!r}.", param="stream")
    if task != "transcribe":
        raise InvalidRequest("Translations do not stream; leave `stream` unset.", param="stream")
    if response_format not in STREAM_FORMATS:
        message = f"stream=true needs response_format json or text, not {response_format!r}."
        raise InvalidRequest(message, param="stream")
    return True


def _subtitles(fields: dict[str, str], response_format: str) -> SubtitleOptions:
    given = {name: fields[name] for name in sorted(SUBTITLE_FIELDS) if name in fields}
    if given and response_format not in _SUBTITLE_FORMATS:
        name = next(iter(given))
        message = f"{name} is only supported with response_format srt or vtt."
        raise InvalidRequest(message, param=name)
    try:
        return SubtitleOptions.model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "min_cue_seconds"
        raise InvalidRequest(f"{name}: {error['msg']}", param=name) from None


def _known_names(values: dict[str, list[str]], task: Task) -> None:
    for name in values:
        if name == "language" and task == "translate":
            message = "Translations take no `language`: the speech's language is detected."
            raise InvalidRequest(message, param=name)
        if name not in FIELDS[task]:
            raise InvalidRequest(f"Unrecognized request argument supplied: {name}", param=name)


def _granularities(values: dict[str, list[str]], response_format: str) -> frozenset[str]:
    given = {v for name in _GRANULARITY_FIELDS for v in values.get(name, []) if v != ""}
    if not given <= set(GRANULARITIES):
        message = f"timestamp_granularities takes {GRANULARITIES}, not {sorted(given)}."
        raise InvalidRequest(message, param="timestamp_granularities")
    if given and response_format != "verbose_json":
        message = "timestamp_granularities is only supported with response_format=verbose_json."
        raise InvalidRequest(message, param="timestamp_granularities")
    return frozenset(given or {"segment"})


def _options(fields: dict[str, str], task: Task, word_timestamps: bool) -> JobOptions:
    data: dict[str, Any] = {"task": task, "word_timestamps": word_timestamps}
    data |= {option: fields[name] for name, option in _JOB_OPTIONS.items() if name in fields}
    try:
        options = JobOptions.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "form"
        param = _OPENAI_NAMES.get(name, name)
        raise InvalidRequest(f"{param}: {error['msg']}", param=param) from None
    # OpenAI: "If set to 0, the model will use log probability to automatically increase the
    # temperature until certain thresholds are hit" - faster-whisper's default fallback.
    if options.temperature == 0:
        options = options.model_copy(update={"temperature": None})
    return options


class Transcription(BaseModel):
    """`response_format=json`."""

    text: str


class TranscriptionSegment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class TranscriptionWord(BaseModel):
    word: str
    start: float
    end: float


class VerboseTranscription(BaseModel):
    """`response_format=verbose_json`: `segments` and `words` as `timestamp_granularities` ask."""

    task: Task
    language: str
    duration: float
    text: str
    segments: list[TranscriptionSegment] | None = None
    words: list[TranscriptionWord] | None = None


class DiarizedSegment(BaseModel):
    type: Literal["transcript.text.segment"] = "transcript.text.segment"
    id: str
    start: float
    end: float
    text: str
    speaker: str


class DurationUsage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class DiarizedTranscription(BaseModel):
    """`response_format=diarized_json`: segments with speakers, as OpenAI's
    `gpt-4o-transcribe-diarize` answers (speakers `A`, `B`... unless named)."""

    task: Literal["transcribe"] = "transcribe"
    duration: float
    text: str
    segments: list[DiarizedSegment]
    usage: DurationUsage


def diarized(transcript: Transcript) -> DiarizedTranscription:
    """The speakers named as their names where they have one, the others `A`, `B`..."""
    letters: dict[str, str] = {}
    unnamed = 0
    for speaker in transcript.speakers or []:
        letters[speaker.label] = speaker.name or _letter(unnamed)
        unnamed += not speaker.name
    segments = [
        DiarizedSegment(id=f"seg_{s.id}", start=s.start, end=s.end, text=s.text.strip(),
                        speaker=letters.get(s.speaker or "", "A"))
        for s in transcript.segments
    ]
    return DiarizedTranscription(duration=transcript.duration, text=transcript.text,
                                 segments=segments,
                                 usage=DurationUsage(seconds=transcript.duration))


def _letter(index: int) -> str:
    """`A`..`Z`, then `AA`, `AB`..."""
    return (_letter(index // 26 - 1) if index >= 26 else "") + chr(ord("A") + index % 26)


def render(form: AudioRequest, transcript: Transcript) -> tuple[str, str]:
    """The finished transcript in the requested `response_format`, and its media type."""
    fmt = form.response_format
    if fmt == "diarized_json":
        return _json(diarized(transcript).model_dump(mode="json")), "application/json"
    if fmt == "json":
        return _json({"text": transcript.text}), "application/json"
    if fmt == "text":
        return transcript.text + "\n", "text/plain"
    if fmt in _SUBTITLE_FORMATS:
        return render_format(transcript, fmt, form.subtitles), FORMATS[fmt].media_type
    body = verbose(form, transcript).model_dump(mode="json", exclude_none=True)
    return _json(body), "application/json"


def _json(body: dict[str, Any]) -> str:
    """As `JSONResponse` writes it."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def verbose(form: AudioRequest, transcript: Transcript) -> VerboseTranscription:
    temperature = form.options.temperature or 0.0
    segments = [_segment(i, s, temperature) for i, s in enumerate(transcript.segments)]
    words = [TranscriptionWord(word=w.word.strip(), start=w.start, end=w.end)
             for s in transcript.segments for w in s.words or []]
    return VerboseTranscription(
        task=form.task,
        language=language_name(transcript.language),
        duration=transcript.duration,
        text=transcript.text,
        segments=segments if "segment" in form.granularities else None,
        words=words if "word" in form.granularities else None,
    )


def _segment(index: int, segment: Segment, temperature: float) -> TranscriptionSegment:
    """OpenAI's segment (numbered from 0, as OpenAI's) from a stored one (from 1). The store
    keeps no tokens, decoding window or temperature used, so `tokens` is empty, `seek` is the
    start in 10 ms frames, and `temperature` the requested one (0 for the fallback schedule)."""
    return TranscriptionSegment(
        id=index,
        seek=round(segment.start * 100),
        start=segment.start,
        end=segment.end,
        text=segment.text,
        tokens=[],
        temperature=temperature,
        avg_logprob=segment.avg_logprob or 0.0,
        compression_ratio=compression_ratio(segment.text),
        no_speech_prob=segment.no_speech_prob or 0.0,
    )


def compression_ratio(text: str) -> float:
    """gzip ratio of the text, as Whisper computes it to spot repetition loops."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class OpenAIErrorDetail(BaseModel):
    message: str
    type: Literal["invalid_request_error", "rate_limit_error", "server_error"]
    param: str | None
    code: str


class OpenAIError(BaseModel):
    """Every error under `/v1/audio/`; `code` is the service's stable code."""

    error: OpenAIErrorDetail
