"""A job's events on the relay (`shared/state/relay.py`): their names, payloads and stream.

`status` (queued, processing), `progress`, `segment` (as each is decoded), then `completed`
(with the links to the transcripts) or `failed` (with the error), after which the job's stream
ends; `deleted` ends it too. A job delivered again after a crash is decoded again from the
start: `restart` then says that the segments sent before it are void, and they (with the old
progress) are removed from the stream, so a later replay holds only the attempt that counts.
"""

from __future__ import annotations

from typing import Any

import redis

from shared.config import Settings
from shared.errors import JobNotFound, VerbatimError
from shared.output.formatters import FORMATS
from shared.schemas import JobStatus, Segment, Transcript
from shared.state.relay import EventLog

STATUS, PROGRESS, SEGMENT, RESTART = "status", "progress", "segment", "restart"
COMPLETED, FAILED, DELETED = "completed", "failed", "deleted"
FINAL = frozenset({COMPLETED, FAILED, DELETED})
# How long the stream of a deleted job stays, so that listeners blocked on it read `deleted`.
DELETED_TTL_SECONDS = 60


def stream_key(job_id: str) -> str:
    return f"verbatim:events:{job_id}"


def transcript_links(job_id: str) -> dict[str, str]:
    """Format -> the path of the job's transcript in it."""
    return {fmt: f"/v1/jobs/{job_id}/transcript.{fmt}" for fmt in FORMATS}


def segment_data(segment: Segment) -> dict[str, Any]:
    data = segment.model_dump(mode="json",
                              include={"id", "start", "end", "text", "words", "speaker"},
                              exclude_none=True)
    return data


def completed_data(job_id: str, transcript: Transcript) -> dict[str, Any]:
    return {
        "status": JobStatus.completed.value,
        "language": transcript.language,
        "duration": transcript.duration,
        "transcripts": transcript_links(job_id),
    } | ({"speakers": [s.model_dump(mode="json") for s in transcript.speakers]}
         if transcript.speakers is not None else {})


def error_data(status: str, error: VerbatimError) -> dict[str, Any]:
    return {"status": status, "error": {"code": error.code, "message": error.message}}


def deleted_data() -> dict[str, Any]:
    return error_data("deleted", JobNotFound("The job was deleted."))


class JobEvents:
    """What a job's writers publish: each event goes to the job's stream, which lives as long
    as the finished job's record would (`ttl_seconds`)."""

    def __init__(self, log: EventLog, ttl_seconds: int) -> None:
        self.log = log
        self.ttl = ttl_seconds

    @classmethod
    def on(cls, client: redis.Redis, settings: Settings) -> JobEvents:
        """Job events on `client` (the job store's), sized and kept as `settings` say."""
        return cls(EventLog(client, settings.events_max_length), settings.result_ttl_seconds)

    def publish(self, job_id: str, name: str, data: dict[str, Any]) -> str:
        return self.log.publish(stream_key(job_id), name, data, self.ttl)

    def status(self, job_id: str, status: JobStatus, attempt: int | None = None) -> str:
        data: dict[str, Any] = {"status": status.value}
        if attempt is not None:
            data["attempt"] = attempt
        return self.publish(job_id, STATUS, data)

    def restart(self, job_id: str, attempt: int) -> str:
        """A new attempt decodes from the start: void the segments of the earlier ones."""
        self.log.discard(stream_key(job_id), {SEGMENT, PROGRESS})
        return self.publish(job_id, RESTART, {"attempt": attempt})

    def progress(self, job_id: str, fraction: float) -> str:
        return self.publish(job_id, PROGRESS, {"progress": round(fraction, 4)})

    def segment(self, job_id: str, segment: Segment) -> str:
        return self.publish(job_id, SEGMENT, segment_data(segment))

    def completed(self, job_id: str, transcript: Transcript) -> str:
        return self.publish(job_id, COMPLETED, completed_data(job_id, transcript))

    def failed(self, job_id: str, error: VerbatimError) -> str:
        return self.publish(job_id, FAILED, error_data(JobStatus.failed.value, error))

    def deleted(self, job_id: str) -> str:
        return self.log.publish(stream_key(job_id), DELETED, deleted_data(), DELETED_TTL_SECONDS)
