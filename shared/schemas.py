"""The data that crosses process boundaries: job options and records, the canonical transcript."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shared.languages import WHISPER_LANGUAGES

# Speaker counts a job may ask for, and channels a `channels` job may label (issue 21).
MAX_SPEAKERS = 20
MAX_CHANNELS = 8
# The error type of a bad speaker option, answered as `invalid_speakers` (`api/submission.py`).
SPEAKERS_ERROR = "invalid_speakers"


class JobStatus(StrEnum):
    fetching = "fetching"  # a media URL being downloaded, before it is probed and queued
    queued = "queued"
    processing = "processing"
    completed = "completed"
    failed = "failed"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.completed, JobStatus.failed)


class JobOptions(BaseModel):
    """What a client may choose per job; unset fields fall back to the service settings."""

    model_config = ConfigDict(extra="forbid")

    language: str | None = Field(
        default=None,
        description="ISO 639-1 code such as `en`; unset or `auto` detects the language; "
        "several codes, comma-separated (`ko,en`), detect it among those only.",
        max_length=400,
    )
    model: str | None = Field(
        default=None, max_length=64,
        description="A model of the catalogue (`GET /v1/models`); unset: the server's default. "
        "The job records the model it ran on.",
    )
    task: Literal["transcribe", "translate"] = Field(
        default="transcribe", description="`translate` renders the speech in English."
    )
    word_timestamps: bool = Field(default=False, description="Add per-word timings.")
    vad_filter: bool | None = Field(
        default=None, description="Skip non-speech with voice-activity detection."
    )
    beam_size: int | None = Field(default=None, ge=1, le=20, description="Beam search width.")
    initial_prompt: str | None = Field(
        default=None, max_length=2000, description="Text that sets style and vocabulary."
    )
    hotwords: str | None = Field(
        default=None, max_length=1000, description="Words to bias recognition towards."
    )
    multilingual: bool | None = Field(
        default=None,
        description="Code-switching mode: detect the language of every stretch of speech "
        "and decode each in its own. Unset: the server's default.",
    )
    script: Literal["simplified", "traditional"] | None = Field(
        default=None, description="Write Chinese in Simplified or Traditional characters."
    )
    temperature: float | None = Field(
        default=None, ge=0, le=1,
        description="Decode at this one sampling temperature; unset starts at 0 and raises it "
        "in steps of 0.2 up to 1 when a window's decoding looks like a failure.",
    )
    batch_size: int | None = Field(
        default=None, ge=1, le=64,
        description="Decode this many 30-second stretches of speech at once (faster-whisper's "
        "batched pipeline); 1 decodes them one after another. Batched decoding needs "
        "voice-activity detection, decodes at one temperature (the job's, else 0) and does not "
        "condition each stretch on the text before it. Unset: the server's default, which "
        "applies only where VAD is on.",
    )

    diarize: Literal["none", "channels", "voices"] | None = Field(
        default=None,
        description="Label who speaks: `channels` (each channel of the recording is one "
        "speaker), `voices` (speakers told apart by voice on a mixed recording) or `none`. "
        "Unset: the server's default.",
    )
    speakers: int | None = Field(
        default=None, description=f"`voices`: the exact number of speakers (1 to {MAX_SPEAKERS}).")
    min_speakers: int | None = Field(
        default=None, description="`voices`: the fewest speakers to find.")
    max_speakers: int | None = Field(
        default=None, description="`voices`: the most speakers to find.")
    known_speakers: str | None = Field(
        default=None, max_length=2000,
        description="`voices`: voices enrolled for the key (`POST /v1/speakers`) to name the "
        "speakers by, comma-separated, or `*` for all of them; a speaker whose voice matches "
        "one takes its name.",
    )
    channel_names: str | None = Field(
        default=None, max_length=400,
        description="`channels`: comma-separated names of the channels' speakers, in channel "
        "order (`agent,customer`).",
    )

    @model_validator(mode="after")
    def _speaker_counts(self) -> JobOptions:
        counts = {"speakers": self.speakers, "min_speakers": self.min_speakers,
                  "max_speakers": self.max_speakers}
        for name, count in counts.items():
            if count is not None and not 1 <= count <= MAX_SPEAKERS:
                raise _speakers_error(f"{name} must be between 1 and {MAX_SPEAKERS}")
        if self.speakers is not None and (self.min_speakers or self.max_speakers) is not None:
            raise _speakers_error("give either speakers or min_speakers/max_speakers, not both")
        if (self.min_speakers or 0) > (self.max_speakers or MAX_SPEAKERS):
            raise _speakers_error("min_speakers must not exceed max_speakers")
        if any(counts.values()) and self.diarize not in (None, "voices"):
            raise _speakers_error("speaker counts apply only to diarize=voices")
        if self.known_speakers is not None and self.diarize not in (None, "voices"):
            raise _speakers_error("known_speakers applies only to diarize=voices")
        if self.channel_names is not None:
            if self.diarize not in (None, "channels"):
                raise _speakers_error("channel_names applies only to diarize=channels")
            names = self.names_of_channels
            if not names or len(names) > MAX_CHANNELS or "" in names:
                raise _speakers_error(
                    f"channel_names takes 1 to {MAX_CHANNELS} non-empty names, comma-separated")
        return self

    @property
    def names_of_channels(self) -> list[str]:
        """The `channel_names`, in channel order."""
        return [n.strip() for n in self.channel_names.split(",")] if self.channel_names else []

    sounds: bool | None = Field(
        default=None,
        description="Tag what is heard besides speech (music, applause, laughter, ...) in the "
        "transcript's `sounds`, and keep the decoder off stretches sure to be music and not "
        "speech (no lyrics made up). Unset: the server's default.",
    )

    @model_validator(mode="after")
    def _batching_needs_vad(self) -> JobOptions:
        if (self.batch_size or 1) > 1 and self.vad_filter is False:
            raise ValueError("batch_size above 1 needs vad_filter: batched decoding decodes "
                             "the stretches of speech that voice-activity detection finds")
        return self

    @field_validator("language")
    @classmethod
    def _auto_is_none(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in ("", "auto"):
            return None
        codes = [code.strip().lower() for code in value.split(",")]
        for code in codes:
            if code not in WHISPER_LANGUAGES:
                raise ValueError(f"unknown language code {code!r}; use ISO 639-1 codes "
                                 "(one, or several comma-separated) or auto")
        return ",".join(dict.fromkeys(codes))

    @property
    def candidates(self) -> list[str]:
        """The languages detection may choose among; empty means any."""
        return self.language.split(",") if self.language else []

    @property
    def fixed_language(self) -> str | None:
        """The one language the job names, if it names exactly one."""
        return self.language if self.language and "," not in self.language else None


def _speakers_error(message: str) -> PydanticCustomError:
    return PydanticCustomError(SPEAKERS_ERROR, message)


class LanguageProbability(BaseModel):
    language: str
    probability: float


class ErrorInfo(BaseModel):
    code: str
    message: str


class WebhookState(BaseModel):
    """How the delivery of the job's webhook event went so far."""

    attempts: int = 0
    last_status: int | None = Field(default=None, description="HTTP status of the last try.")
    last_error: str | None = Field(default=None, description="Why the last try failed.")
    delivered_at: datetime | None = None


class Job(BaseModel):
    """A job as clients see it."""

    id: str
    status: JobStatus
    progress: float = Field(ge=0, le=1)
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    filename: str
    options: JobOptions
    audio_duration: float | None = Field(default=None, description="Seconds of audio.")
    language: str | None = None
    language_probability: float | None = None
    languages: list[str] | None = Field(
        default=None, description="Every language the transcript's segments are in."
    )
    language_alternatives: list[LanguageProbability] | None = Field(
        default=None, description="The likeliest languages detection weighed, best first."
    )
    attempts: int = 0
    error: ErrorInfo | None = None
    # Integrations (issue 13; `shared/extras.py`).
    source_url: str | None = Field(default=None, description="The media URL fetched.")
    webhook_url: str | None = None
    webhook: WebhookState | None = None
    metadata: dict[str, Any] | None = Field(default=None, description="The caller's tags.")
    retention_seconds: int | None = Field(
        default=None, description="How long the finished job is kept (else the server's).")
    speakers: list[Speaker] | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="Who speaks, once a diarized job is completed (issue 21).")


class Word(BaseModel):
    start: float
    end: float
    word: str
    probability: float
    speaker: str | None = Field(
        default=None, exclude_if=lambda v: v is None, description="The label of who said it.")


class Speaker(BaseModel):
    """One speaker of a diarized transcript."""

    label: str = Field(description="`S1`, `S2`... in order of first speech.")
    name: str | None = Field(
        default=None, description="The channel's or the enrolled voice's name, if any.")
    talk_seconds: float = Field(description="Seconds of the speaker's segments.")
    turns: int = Field(description="Runs of segments in a row by this speaker.")
    channel: int | None = Field(default=None, description="`channels`: the channel, from 0.")


class Segment(BaseModel):
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    words: list[Word] | None = None
    language: str | None = None
    speaker: str | None = Field(
        default=None, exclude_if=lambda v: v is None, description="The label of who said it.")


class Sound(BaseModel):
    """A stretch of the recording where a sound other than speech is heard (issue 25)."""

    start: float
    end: float
    label: str = Field(description="What is heard: `music`, `applause`, `laughter`, ... "
                       "(docs/guides/sounds.md lists them and the classes behind each).")
    confidence: float = Field(ge=0, le=1, description="The classifier's mean score over it.")


class ClassLabel(BaseModel):
    """One of the classifier's AudioSet classes with its score over a whole clip."""

    label: str = Field(description="The AudioSet class, as YAMNet names it: `Speech`, "
                       "`Music`, `Applause`, ...")
    score: float = Field(ge=0, le=1, description="Its mean score over the clip.")


class ClipLabels(BaseModel):
    """What a short clip holds (`POST /v1/audio/classify`, issue 25)."""

    duration: float = Field(description="Seconds of audio classified.")
    labels: list[ClassLabel] = Field(description="The clip's best-scoring AudioSet classes, "
                                     "best first.")
    sounds: list[Sound] = Field(description="The sounds heard, merged as a job's `sounds` "
                                "are (speech is not among them).")


class Transcript(BaseModel):
    """The one stored form of a result; every download format is rendered from it."""

    language: str | None
    language_probability: float | None = None
    languages: list[str] = Field(default_factory=list)
    language_alternatives: list[LanguageProbability] = Field(default_factory=list)
    duration: float
    text: str
    segments: list[Segment]
    speakers: list[Speaker] | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="Who speaks, where the job was diarized.")
    sounds: list[Sound] | None = Field(
        default=None, description="What is heard besides speech, in order; only where the job "
        "asks for `sounds`.")
