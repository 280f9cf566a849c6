"""The error hierarchy: each error has an HTTP status and a stable machine-readable code."""

from __future__ import annotations


def short_reason(exc: BaseException) -> str:
    """An OS or decoder error's reason without the file path it names (paths stay private)."""
    return getattr(exc, "strerror", None) or type(exc).__name__


class VerbatimError(Exception):
    """Base error; `code` is stable and documented, `message` is for people, `param` names
    the request field at fault where one is (OpenAI-style errors report it)."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer carries (`WWW-Authenticate`, `Retry-After`)."""
        return {}


class JobNotFound(VerbatimError):
    status_code = 404
    code = "job_not_found"


class JobNotReady(VerbatimError):
    status_code = 409
    code = "job_not_ready"


class AudioNotKept(VerbatimError):
    """The job's upload was not kept (`keep_audio` off when it was created) or is gone."""

    status_code = 404
    code = "audio_not_kept"


class JobFailed(VerbatimError):
    status_code = 409
    code = "job_failed"


class EmptyFile(VerbatimError):
    status_code = 400
    code = "empty_file"


class InvalidRequest(VerbatimError):
    status_code = 422
    code = "validation_error"


class RequestTimeout(VerbatimError):
    """The request head did not arrive in time (answered by `api/protocol.py` itself)."""

    status_code = 408
    code = "request_timeout"


class PayloadTooLarge(VerbatimError):
    status_code = 413
    code = "payload_too_large"


class DurationExceeded(VerbatimError):
    status_code = 413
    code = "duration_exceeded"


class ClipTooLong(VerbatimError):
    """A clip sent to `POST /v1/audio/classify` is longer than `max_classify_seconds`."""

    status_code = 413
    code = "clip_too_long"


class UnsupportedMedia(VerbatimError):
    status_code = 415
    code = "unsupported_media"


class InvalidSpeakers(VerbatimError):
    """A bad speaker option: a count out of range or contradicting another, channel names
    on a job that does not label channels (issue 21)."""

    status_code = 422
    code = "invalid_speakers"


class NotMultichannel(VerbatimError):
    """`diarize=channels` on a recording with one channel."""

    status_code = 422
    code = "not_multichannel"


class UnknownSpeaker(VerbatimError):
    """`known_speakers` names a voice the caller's key has not enrolled, or names saved for a
    job's speakers name a label its transcript does not have."""

    status_code = 422
    code = "unknown_speaker"


class VoiceNotFound(VerbatimError):
    status_code = 404
    code = "voice_not_found"


class ReferenceTooShort(VerbatimError):
    """A voice's reference clip holds less speech than `min_reference_seconds`."""

    status_code = 422
    code = "reference_too_short"


class NoSpeech(VerbatimError):
    """A voice's reference clip holds no speech at all."""

    status_code = 422
    code = "no_speech"


class TooManyVoices(VerbatimError):
    """The key has enrolled `max_voices_per_key` voices already."""

    status_code = 409
    code = "too_many_voices"


class ServiceUnavailable(VerbatimError):
    status_code = 503
    code = "service_unavailable"


class StorageUnavailable(ServiceUnavailable):
    """The media store (`VERBATIM_STORAGE=s3`) cannot be reached or refused a request: the
    upload is not kept and no job is created."""

    code = "storage_unavailable"


class NotReady(VerbatimError):
    """`/readyz`: Redis is down or no worker with a loaded model has reported in."""

    status_code = 503
    code = "not_ready"


# Failures recorded on a job by a worker (never raised to an HTTP client).
class DecodeError(VerbatimError):
    code = "decode_error"


class TranscriptionError(VerbatimError):
    code = "transcription_error"


class ModelUnavailable(VerbatimError):
    """A model that cannot be loaded, or (at submission) that no live worker serves."""

    status_code = 503
    code = "model_unavailable"


class ModelNotFound(VerbatimError):
    """A job's `model` outside the catalogue (`GET /v1/models`)."""

    status_code = 422
    code = "model_not_found"


class EnglishOnlyModel(VerbatimError):
    """Another language, translation or code-switching asked of an English-only model."""

    status_code = 422
    code = "english_only_model"


class InvalidModel(VerbatimError):
    """`verbatim models add`: a directory that is not a whole CTranslate2 Whisper model."""

    status_code = 422
    code = "invalid_model"


class TooManyAttempts(VerbatimError):
    code = "too_many_attempts"


class Unauthorized(VerbatimError):
    """No API key, or one that is unknown or revoked (`VERBATIM_AUTH=required`)."""

    status_code = 401
    code = "unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class TooManyRequests(VerbatimError):
    """A per-key limit refused the request; `retry_after` is when trying again may pass."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RateLimited(TooManyRequests):
    code = "rate_limited"


class TooManyActiveJobs(TooManyRequests):
    code = "too_many_active_jobs"


class QuotaExceeded(TooManyRequests):
    code = "quota_exceeded"


class TooManyStreams(TooManyRequests):
    """The key has `events_max_streams_per_key` event streams open already."""

    code = "too_many_streams"


# Outbound fetches, webhooks and idempotency (issue 13).
class InvalidUrl(VerbatimError):
    status_code = 422
    code = "invalid_url"


class UrlForbidden(VerbatimError):
    """An http(s) URL whose host is, or resolves to, an address the service may not reach."""

    status_code = 422
    code = "url_forbidden"


class FetchFailed(VerbatimError):
    """A media URL could not be downloaded (recorded on the job: HTTP status or reason)."""

    status_code = 502
    code = "fetch_failed"


class IdempotencyConflict(VerbatimError):
    status_code = 422
    code = "idempotency_conflict"


class IdempotencyInProgress(VerbatimError):
    """The first request with this key is still being handled."""

    status_code = 409
    code = "idempotency_in_progress"


# Live sessions (`WS /v1/live`): sent to the client as an `error` event, never as HTTP.
class InvalidMessage(VerbatimError):
    """A client message the protocol does not allow where it came (or not JSON at all)."""

    code = "invalid_message"


class UnsupportedEncoding(VerbatimError):
    code = "unsupported_encoding"


class InvalidOption(VerbatimError):
    """A `start` message's rate, language or task that a session cannot use."""

    code = "invalid_option"


class FrameTooLarge(VerbatimError):
    code = "frame_too_large"


class NoLiveWorker(VerbatimError):
    """No live worker took the session within `live_claim_timeout_seconds`."""

    code = "no_live_worker"


class SessionTooLong(VerbatimError):
    code = "session_too_long"


class IdleTimeout(VerbatimError):
    code = "idle_timeout"


class TooManyLiveSessions(VerbatimError):
    """The key already holds `live_max_sessions_per_key` live sessions."""

    status_code = 429
    code = "too_many_live_sessions"


class BacklogExceeded(VerbatimError):
    """Audio arrives faster than the live worker transcribes it, past `live_backlog_frames`,
    `live_backlog_bytes` or `live_backlog_seconds`."""

    code = "backlog_exceeded"


class LiveWorkerLost(VerbatimError):
    code = "live_worker_lost"


class StorageSettingsError(RuntimeError):
    """At start-up: the media store's settings do not reach a usable store; the message names
    the setting to fix (`shared/media/storage/`). Never an HTTP answer: the process stops."""
