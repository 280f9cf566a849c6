"""Service settings, read from `VERBATIM_*` environment variables (and a `.env` file)."""

from __future__ import annotations

import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.integration_settings import IntegrationSettings
from shared.model_files import REGISTRY, registered
from shared.models import (
    DEFAULT_CATALOGUE,
    ModelEntry,
    check_name,
    implicit_entry,
    implicit_name,
)
from shared.redis_url import check_url

GiB = 1024**3
S3_MAX_PARTS = 10_000  # S3's most parts of one multipart upload


class Settings(IntegrationSettings, BaseSettings):
    """Every knob of the service; one instance per process via `get_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix="VERBATIM_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        use_attribute_docstrings=True,
    )

    auth: Literal["required", "off"] = "required"
    """`required`: every `/v1/*` request needs `Authorization: Bearer <API key>` (keys are
    made with `verbatim keys create`); `off`: anyone who reaches the port may use the API."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis holding the job records, transcripts and the Celery queue: `redis://`,
    `rediss://`, `unix://`, or Redis Sentinels and the name of the primary they watch,
    `sentinel://[:password@]host:port[,host:port...]/master_name[/db]` (Redis Cluster is not
    supported)."""

    data_dir: Path = Path("./data")
    """Directory for uploads (`uploads/`) and the assembled offline model (`models/`).
    API and workers must see the same directory."""

    storage: Literal["local", "s3"] = "local"
    """Where uploads, a spread job's windows and kept audio live: `local`, files under
    `data_dir` (which the API and the workers must share); `s3`, objects in the S3-compatible
    bucket `s3_bucket`, so that hosts share nothing but Redis and the store."""

    s3_endpoint_url: str | None = None
    """With `storage=s3`: the store's URL (`http://minio:9000`), addressed path-style; unset
    means AWS S3 itself (or boto3's `AWS_ENDPOINT_URL`)."""

    s3_bucket: str | None = None
    """With `storage=s3`: the bucket holding the media (it must exist). Required."""

    s3_region: str | None = None
    """With `storage=s3`: the bucket's region; unset means boto3's own (`AWS_REGION`,
    `AWS_DEFAULT_REGION`, the AWS config file)."""

    s3_access_key_id: str | None = None
    """With `storage=s3`: the access key id; unset means boto3's own credentials
    (`AWS_ACCESS_KEY_ID`, the AWS config files, an instance role)."""

    s3_secret_access_key: SecretStr | None = None
    """With `storage=s3`: the secret access key of `s3_access_key_id`."""

    s3_part_mib: int = Field(default=8, ge=5, le=512)
    """With `storage=s3`: an upload streams into the store as a multipart upload of parts of
    this many MiB (S3 takes 5 MiB to 5 GiB, and at most 10,000 parts, so `max_upload_bytes`
    must fit in 10,000 parts)."""

    s3_parts_in_flight: int = Field(default=4, ge=1, le=32)
    """With `storage=s3`: parts of one upload sent to the store at once. More hide a distant
    store's latency; the API holds up to one part more than this per upload in memory."""

    model: str = "base"
    """The default model, for jobs that name none: a model of the catalogue (`base`, bundled,
    works offline; `tiny.en`; or one of `models`), else a local CTranslate2 model directory or
    a faster-whisper size name such as `small` (downloaded when online), which joins the
    catalogue under its own name (a directory's last part)."""

    models: dict[str, ModelEntry] = Field(default_factory=dict)
    """More catalogue entries (JSON), added to `base` and `tiny.en` or replacing them: each
    `{"source": "bundled" | "package" | "path" | "download", "location": ..., "multilingual":
    true, "device": "cpu", "compute_type": "int8", "sha256": {file: hash}}` (see Models)."""

    worker_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Models a worker serves, comma-separated (`base,tiny.en`); it consumes those models'
    queues alone (a live worker: their live queues, each model warmed up as it starts). Empty:
    the whole catalogue."""

    model_memory_mb: int = Field(default=0, ge=0)
    """Memory a worker process may fill with loaded models; past it, the least recently used
    model is unloaded before another loads. 0: no limit. A model's cost is measured on CPU (the
    growth of the process's resident memory as it loads) and estimated on CUDA (its weights'
    size on disk times 1.5). On a GPU, set it to the GPU memory the models may take."""

    model_idle_seconds: float = Field(default=0, ge=0)
    """A model a worker process has not used for this long is unloaded (checked with each
    heartbeat); 0 keeps it loaded."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the model runs; `auto` picks CUDA when a GPU is visible."""

    compute_type: str | None = None
    """CTranslate2 compute type; unset means `int8` on CPU and `int8_float16` on CUDA."""

    cpu_threads: int = Field(default=0, ge=0)
    """CPU threads of each job running at once (CTranslate2's `intra_threads` of each model
    copy or replica); 0 shares the machine's cores among a worker's jobs at once (and lets
    CTranslate2 choose for a worker of one job at a time)."""

    worker_pool: Literal["prefork", "threads"] = "prefork"
    """How `verbatim worker` and `verbatim serve` run their jobs: `prefork`, one process (and
    one copy of the model) per job at once; `threads`, one process whose jobs run in threads
    against one model (CTranslate2's `num_workers` replicas of its compute, sharing the
    weights). A worker started with `celery` itself follows its own `--pool`."""

    worker_concurrency: int | None = Field(default=None, ge=1, le=64)
    """Jobs one worker runs at once, unless `--concurrency` says otherwise: pool processes
    under `prefork`, threads sharing one model under `threads`. Unset: on CPU one per core,
    up to 4, each on its share of the cores (a job decodes no faster on two cores than on
    one); on a GPU 1."""

    beam_size: int = Field(default=5, ge=1, le=20)
    """Default beam size when a job does not set one."""

    vad_filter: bool = True
    """Skip non-speech with Silero VAD unless a job turns it off."""

    sounds: bool = False
    """Tag sounds besides speech (music, applause, laughter, ...) in jobs that leave `sounds`
    unset, and keep the decoder off stretches sure to be music (docs/guides/sounds.md)."""

    max_classify_seconds: float = Field(default=30.0, ge=1, le=600)
    """Longest clip `POST /v1/audio/classify` labels; a longer one is refused with
    `clip_too_long` (a recording is better sent as a job with `sounds=true`)."""

    multilingual: bool = False
    """Code-switching mode for jobs that leave `multilingual` unset: each stretch of speech is
    decoded in its own detected language."""

    multilingual_window_seconds: float = Field(default=30.0, ge=10, le=120)
    """Longest window of the code-switching mode, each detected and decoded on its own."""

    diarize: Literal["none", "channels", "voices"] = "none"
    """Speaker labels for jobs that leave `diarize` unset: `channels` labels each channel of a
    recording as a speaker (a mono recording is then refused), `voices` tells speakers apart
    by voice ([Speakers](guides/speakers.md))."""

    max_voices_per_key: int = Field(default=50, ge=1, le=1000)
    """Voices one key may enrol for named speakers (`POST /v1/speakers`)."""

    min_reference_seconds: float = Field(default=3.0, ge=1, le=60)
    """Speech a voice's reference clip must hold at least."""

    speaker_match: float = Field(default=0.55, gt=0, lt=1)
    """Cosine similarity of a speaker's voice to an enrolled voice from which the speaker takes
    that voice's name (`known_speakers`)."""

    batch_size: int | None = Field(default=None, ge=1, le=64)
    """Default `batch_size` of jobs that leave it unset and keep VAD on; unset means 1 on CPU
    (faster-whisper's own sequential decoding, temperature fallback included) and 8 on CUDA."""

    max_upload_bytes: int = Field(default=GiB, gt=0)
    """Largest accepted upload; larger ones are refused with 413 while streaming."""

    max_audio_seconds: float = Field(default=4 * 3600, gt=0)
    """Longest accepted recording; longer ones are refused with 413 `duration_exceeded`."""

    result_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    """How long a finished job and its transcript are kept."""

    max_attempts: int = Field(default=3, ge=1)
    """Deliveries of one job before it is failed (stops crash-redelivery loops)."""

    visibility_timeout_seconds: int = Field(default=12 * 3600, gt=0)
    """Redis broker visibility timeout: an unacknowledged job is redelivered after this.
    Must exceed the time the longest allowed recording takes to transcribe."""

    window_seconds: float = Field(default=600.0, ge=30)
    """Longest stretch of a recording decoded at once. Longer recordings are cut into windows
    at pauses, so a worker's memory does not grow with the recording's length."""

    window_search_seconds: float = Field(default=60.0, gt=0)
    """How far back from a window's longest possible end a pause to cut at is looked for."""

    split_seconds: float = Field(default=600.0, ge=0)
    """Recordings longer than this (their probed duration) are spread over the workers: cut
    into windows at pauses, each a task of its own that any worker may take, stitched back
    when the last one ends. 0 decodes every recording in one task."""

    spread_window_seconds: float = Field(default=120.0, ge=10)
    """Longest window of a spread recording. Its windows are of about equal length, so that
    workers taking one at a time end together: shorter ones share a recording more evenly
    among many workers, at the cost of more cuts (a window is decoded without the text of the
    one before it)."""

    delete_upload_when_done: bool = True
    """Remove the uploaded file once its job completes or fails."""

    keep_audio: bool = False
    """Keep each completed job's upload for as long as the job (`result_ttl_seconds`), so that
    the page can play it beside its transcript and `GET /v1/jobs/{id}/audio` serve it. It costs
    disk: every upload of the retention period, up to `max_upload_bytes` each, stays on the
    data volume (removed when its job is deleted, or by the upload sweep once it expires).
    Off, an upload is removed as soon as its job ends, as `delete_upload_when_done` says."""

    progress_interval_seconds: float = Field(default=1.0, ge=0)
    """Least time between two progress writes of one job."""

    heartbeat_interval_seconds: float = Field(default=10.0, gt=0)
    """How often each worker process with a loaded model reports itself in Redis."""

    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)
    """A worker silent for longer is gone: `/readyz` stops counting it, its record expires.
    Must exceed `heartbeat_interval_seconds`."""

    worker_metrics_port: int = Field(default=9101, ge=0, le=65535)
    """Port of a worker's Prometheus `/metrics` (one per Celery worker); 0 disables it."""

    log_format: Literal["json", "text"] = "json"
    """`json`: one JSON object per line, for log collectors; `text`: readable lines."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """Least severity logged by the API and the workers (it rules over celery's `--loglevel`)."""

    redis_retry_seconds: float = Field(default=60.0, ge=0)
    """How long a worker keeps retrying an unreachable Redis (a restart, a failover) before it
    gives its job back to the queue."""

    worker_shutdown_grace_seconds: float = Field(default=25.0, ge=0)
    """On SIGTERM a worker lets its running job finish for this long, then stops it and puts it
    back on the queue (Celery's soft shutdown; needs `REMAP_SIGTERM=SIGQUIT`, which
    `verbatim worker`, `verbatim serve` and the worker image set)."""

    openai_wait_seconds: float = Field(default=300, ge=0)
    """How long `/v1/audio/*` waits for its job; after that it answers 202 with the job id."""

    events_max_length: int = Field(default=50_000, ge=100)
    """Most events kept in one job's event stream (`GET /v1/jobs/{id}/events`); older ones are
    trimmed (approximately), so a replay of a longer history starts later."""

    events_ping_seconds: float = Field(default=15.0, gt=0)
    """Interval of the comment heartbeats on an idle event stream (proxies close silent ones)."""

    events_check_seconds: float = Field(default=15.0, gt=0)
    """How long an event stream waits for an event before it checks that its job still exists
    (a job that expired or vanished ends the stream with `deleted`)."""

    events_max_listeners: int = Field(default=5000, ge=1)
    """Event streams one API process serves at once (they share one Redis connection for their
    live events); more are refused with 503 `service_unavailable`."""

    events_max_streams_per_key: int = Field(default=100, ge=1)
    """Event streams (`GET /v1/jobs/{id}/events`, OpenAI's `stream=true`) one API key may have
    open at once, counted over every API replica in Redis; more are refused with 429
    `too_many_streams`. A stream whose API process died stops counting within
    `events_send_timeout_seconds + 3 * events_key_check_seconds` seconds."""

    events_send_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    """Longest a client may take to accept one event before its stream is dropped. A stream
    holds its key's slot for this long plus three key checks after its API process dies."""

    events_key_check_seconds: float = Field(default=5.0, gt=0, le=60)
    """How often an open event stream checks its API key: a revoked key's streams end within
    this time with an `error` event (`unauthorized`)."""

    request_head_timeout_seconds: float = Field(default=20.0, gt=0)
    """Longest time a client may take to send a request's line and headers (from the
    connection's first byte, or from the end of the previous response); a connection still
    short of a complete head is then closed. Needs uvicorn started with `--http
    api.protocol:HeadTimeoutProtocol`, as `verbatim api`, `verbatim serve` and the API image do."""

    upload_sweep_interval_seconds: float = Field(default=900.0, gt=0)
    """How often each API process removes upload files that no job owns (also once at
    start-up): files left by an API killed mid-upload, or kept past their job's expiry."""

    upload_sweep_grace_seconds: float = Field(default=3600.0, ge=0)
    """The sweep leaves alone every upload file modified less than this long ago, and never
    touches an unfinished upload that a live process still holds locked."""

    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Port of a listener of its own for the API's `/metrics`, which the API port then answers
    with 404; 0 serves `/metrics` on the API port."""

    metrics_host: str = "127.0.0.1"
    """Address the `/metrics` listener binds when `metrics_port` is set (`0.0.0.0` for a
    Prometheus on another host or container)."""

    docs_enabled: bool = True
    """Serve the interactive API documentation at `/docs` and `/redoc`."""

    openapi_enabled: bool = True
    """Serve the OpenAPI document at `/openapi.json` (the documentation pages need it)."""

    live_max_sessions: int = Field(default=1, ge=1, le=64)
    """Live sessions (`WS /v1/live`) that `verbatim serve` holds at once: it starts this many
    live workers, each holding one session with a model of its own. A session that finds
    every live worker busy is refused with `no_live_worker`."""

    live_claim_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    """How long the API waits for a live worker to take a new session before it answers
    `no_live_worker`."""

    live_max_session_seconds: float = Field(default=4 * 3600, gt=0)
    """Longest live session, in seconds of audio; it then ends with `session_too_long` (its
    transcript is kept)."""

    live_idle_timeout_seconds: float = Field(default=30.0, gt=0)
    """A live session that receives no audio for this long ends with `idle_timeout` (its
    transcript is kept)."""

    live_lost_seconds: float = Field(default=10.0, gt=0)
    """A live worker silent about a session for this long is gone: the session ends with
    `live_worker_lost`, and its job keeps the text confirmed so far."""

    live_step_seconds: float = Field(default=1.0, gt=0, le=10)
    """Least new audio between two decodes of a live session's buffer, for a model whose
    catalogue entry sets no `live_step_seconds` of its own (`tiny.en` sets 0.5)."""

    live_max_step_seconds: float = Field(default=10.0, gt=0, le=15)
    """Most new audio one decode takes in: a client ahead of real time is worked through in
    steps of this size (captions lag; no audio is skipped)."""

    live_buffer_seconds: float = Field(default=15.0, ge=5, le=15)
    """A live session's buffer is trimmed, at the end of a confirmed segment, once it is longer
    than this; it never grows past twice this (at most 30 s, Whisper's window)."""

    live_segment_seconds: float = Field(default=5.0, gt=0)
    """Confirmed words are sent as a `final` segment at a sentence's end, or once they span
    this long (cut at the last comma, if any)."""

    live_pause_seconds: float = Field(default=0.5, ge=0.2, le=5)
    """A pause in speech this long after confirmed words also ends their `final` segment, so
    that a caption settles while the speaker pauses."""

    live_beam_size: int = Field(default=1, ge=1, le=20)
    """Beam size of live decoding (each buffer is decoded about once a second)."""

    live_vad_filter: bool = True
    """Skip non-speech in a live session's buffer with Silero VAD (no captions from silence)."""

    live_max_frame_bytes: int = Field(default=256 * 1024, ge=1024)
    """Largest binary frame a live client may send; a larger one ends the session with
    `frame_too_large`."""

    live_backlog_frames: int = Field(default=2000, ge=10)
    """Audio frames that may wait in Redis for the live worker; more (a client far faster than
    real time) end the session with `backlog_exceeded`."""

    live_backlog_bytes: int = Field(default=16 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    """Bytes of audio that may wait in Redis for a session's live worker (it takes them in
    between two decodes); more end the session with `backlog_exceeded`."""

    live_backlog_seconds: float = Field(default=120.0, gt=0, le=3600)
    """Seconds of audio a live worker may hold received but not yet transcribed (a client
    ahead of real time); more end the session with `backlog_exceeded`. At least
    `live_max_step_seconds`."""

    live_max_sessions_per_key: int = Field(default=2, ge=1, le=64)
    """Live sessions one API key may hold at once (with `VERBATIM_AUTH=required`); another is
    refused with `too_many_live_sessions`. `live_max_sessions` still bounds them all."""

    @field_validator("worker_models", mode="before")
    @classmethod
    def _model_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, ModelEntry]) -> dict[str, ModelEntry]:
        for name in value:
            check_name(name)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+/?", value):
            raise ValueError("s3_endpoint_url must be an http:// or https:// URL of a host "
                             "(and port), with no path")
        return value

    @field_validator("s3_bucket")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        # S3's bucket naming rules (3-63 lowercase letters, digits, dots, hyphens).
        if value is not None and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value):
            raise ValueError("s3_bucket must be 3-63 lowercase letters, digits, dots or hyphens")
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("storage=s3 needs s3_bucket (VERBATIM_S3_BUCKET)")
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("s3_access_key_id and s3_secret_access_key are set together")
        if self.storage == "s3" and self.s3_part_mib * 1024**2 * S3_MAX_PARTS < \
                self.max_upload_bytes:
            raise ValueError(f"s3_part_mib: {S3_MAX_PARTS} parts of {self.s3_part_mib} MiB "
                             "cannot hold an upload of max_upload_bytes; raise s3_part_mib")
        if self.visibility_timeout_seconds <= self.max_audio_seconds:
            raise ValueError(
                "visibility_timeout_seconds must exceed max_audio_seconds, or long jobs "
                "would be delivered twice"
            )
        if self.window_search_seconds * 2 > self.window_seconds:
            raise ValueError("window_search_seconds must be at most half of window_seconds")
        if self.heartbeat_timeout_seconds <= self.heartbeat_interval_seconds:
            raise ValueError(
                "heartbeat_timeout_seconds must exceed heartbeat_interval_seconds, or live "
                "workers would be reported as gone between two heartbeats"
            )
        if self.live_max_step_seconds > self.live_buffer_seconds:
            raise ValueError("live_max_step_seconds must be at most live_buffer_seconds")
        if self.live_backlog_seconds < self.live_max_step_seconds:
            raise ValueError("live_backlog_seconds must be at least live_max_step_seconds")
        catalogue = self.catalogue  # read now: a bad registry stops the process at start-up
        unknown = [name for name in self.worker_models if name not in catalogue]
        if unknown:
            raise ValueError(f"worker_models names {', '.join(unknown)}, outside the catalogue "
                             f"({', '.join(sorted(catalogue))})")
        return self

    @cached_property
    def catalogue(self) -> dict[str, ModelEntry]:
        """Every model this deployment offers, by name (`shared/models.py`)."""
        try:
            added = registered(self.model_dir)
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            raise ValueError(f"{self.model_dir / REGISTRY} is unreadable: {exc}") from None
        catalogue = DEFAULT_CATALOGUE | added | self.models
        if self.model not in catalogue:
            catalogue[check_name(implicit_name(self.model))] = implicit_entry(self.model)
        return catalogue

    @property
    def default_model(self) -> str:
        """The catalogue name of the model of jobs that name none."""
        return self.model if self.model in self.catalogue else implicit_name(self.model)

    @property
    def served_models(self) -> list[str]:
        """The models this worker serves (`worker_models`, else the whole catalogue with the
        default first): the first is loaded as the worker starts."""
        others = [name for name in self.catalogue if name != self.default_model]
        return self.worker_models or [self.default_model, *others]

    @property
    def upload_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def model_dir(self) -> Path:
        return self.data_dir / "models"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, validated on first use."""
    return Settings()
