"""The job resource: submit, inspect, download and delete transcriptions."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from api.auth import Identity, owner_of
from api.deps import ExistingJob, JobStoreDep, QueryTokenJob, QueueDep, SettingsDep, run_sync
from api.errors import error_responses
from api.intake import REPLAYED_HEADER, IdempotencyKey
from api.intake import create_job as create_any_job
from api.rendering import off_loop, transcript_text
from shared.errors import (
    DurationExceeded,
    EmptyFile,
    IdempotencyConflict,
    IdempotencyInProgress,
    InvalidRequest,
    InvalidSpeakers,
    InvalidUrl,
    JobFailed,
    JobNotFound,
    JobNotReady,
    NotMultichannel,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    ServiceUnavailable,
    StorageUnavailable,
    TooManyActiveJobs,
    Unauthorized,
    UnsupportedMedia,
    UrlForbidden,
)
from shared.extras import JobExtras
from shared.languages import codes_pattern
from shared.media.storage import clean_filename, media_store
from shared.output.formatters import FORMATS
from shared.output.subtitles import SubtitleOptions
from shared.schemas import Job, JobOptions, JobStatus, Transcript
from shared.state.job_events import JobEvents
from shared.state.listing import CURSOR, list_jobs
from shared.turns import parse_renames

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["jobs"])

FormatName = Literal["json", "txt", "srt", "vtt", "tsv", "ass", "rttm"]
# Query parameters that cut srt, vtt and ass downloads into cues (`shared/output/subtitles.py`).
SubtitleQuery = Annotated[SubtitleOptions, Query()]
SpeakerNames = Annotated[str | None, Query(
    max_length=2000, description="Names for a diarized transcript's speakers in this download, "
    "`S1=Ann,S2=Bob`.")]


def _renames(text: str | None) -> dict[str, str]:
    try:
        return parse_renames(text)
    except ValueError as exc:
        raise InvalidRequest(f"speaker_names: {exc}", param="speaker_names") from None


def _form_field(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A `JobOptions` property as the form takes it. A form field is text, never JSON null (an
    empty one counts as unset), so the `null` alternative of an optional field is dropped;
    `language` takes the codes the form accepts."""
    field = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    variants = [v for v in schema.get("anyOf", []) if v.get("type") != "null"]
    if len(variants) == 1:
        field |= variants[0]
    if schema.get("default") is not None:
        field["default"] = schema["default"]
    if name == "language":
        field |= {"pattern": f"^auto$|{codes_pattern()}"}
        field.pop("maxLength", None)
    return field


_URL_FIELD = {"type": "string", "format": "uri", "maxLength": 2048,
              "description": "An http(s) URL of the media, fetched instead of an upload."}
_OPTION_FIELDS = {name: _form_field(name, schema) for name, schema
                  in JobOptions.model_json_schema()["properties"].items()}
_EXTRA_FIELDS = {name: _form_field(name, schema) for name, schema
                 in JobExtras.model_json_schema()["properties"].items()}
# A form sends `metadata` as JSON text.
_FORM_METADATA = {k: v for k, v in _EXTRA_FIELDS["metadata"].items()
                  if k != "additionalProperties"} | {"type": "string"}
_UPLOAD_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "`file` (an upload) or `url` (media to fetch).",
                    "oneOf": [{"required": ["file"]}, {"required": ["url"]}],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "url": _URL_FIELD,
                        **_OPTION_FIELDS,
                        **_EXTRA_FIELDS,
                        "metadata": _FORM_METADATA,
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["url"],
                    "additionalProperties": False,
                    "properties": {"url": _URL_FIELD, **_OPTION_FIELDS, **_EXTRA_FIELDS},
                }
            },
        },
    }
}


@router.post(
    "/jobs",
    status_code=202,
    openapi_extra=_UPLOAD_FORM,
    responses=error_responses(
        EmptyFile, InvalidRequest, InvalidSpeakers, NotMultichannel, InvalidUrl, UrlForbidden,
        IdempotencyConflict,
        IdempotencyInProgress, PayloadTooLarge, DurationExceeded, UnsupportedMedia,
        ServiceUnavailable, StorageUnavailable, Unauthorized, RateLimited, TooManyActiveJobs,
        QuotaExceeded,
    ),
)
async def create_job(
    request: Request, response: Response, settings: SettingsDep, store: JobStoreDep,
    celery: QueueDep, key: Identity, idempotency_key: IdempotencyKey = None,
) -> Job:
    """Upload audio or video, or name its URL, and queue it for transcription; poll the
    returned job (or give a `webhook_url`)."""
    job, replayed = await create_any_job(
        request, settings, store, celery, key, idempotency_key
    )
    response.headers["Location"] = str(request.url_for("get_job", job_id=job.id).path)
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return job


class JobList(BaseModel):
    """A page of the caller's jobs, newest first."""

    jobs: list[Job]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last one."""


@router.get("/jobs", responses=error_responses(InvalidRequest, Unauthorized))
async def list_own_jobs(
    store: JobStoreDep, key: Identity,
    limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page.")] = 20,
    cursor: Annotated[str | None, Query(
        pattern=CURSOR.pattern, description="`next_cursor` of the previous page.")] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
) -> JobList:
    """The caller's jobs, newest first, a page at a time (`cursor`), optionally of one status."""
    jobs, next_cursor = await run_sync(list_jobs, store, owner_of(key), limit, cursor, status)
    return JobList(jobs=jobs, next_cursor=next_cursor)


@router.get("/jobs/{job_id}", responses=error_responses(JobNotFound, Unauthorized))
async def get_job(job: ExistingJob) -> Job:
    """A job's status, progress, timings and, once failed, its error."""
    # Served by `api.routes.status`, ahead of this route: this one defines it (the schema, and
    # the answer that route must give byte for byte).
    return job


def _transcript_responses(formats: list[str]) -> dict[int | str, dict[str, Any]]:
    """The 200 answer in each format's own media type (json's is a `Transcript`)."""
    text = {FORMATS[fmt].media_type.split(";")[0]: {"schema": {"type": "string"}}
            for fmt in formats if fmt != "json"}
    ok = {"description": "The transcript, as an attachment named after the upload.",
          "model": Transcript, "content": text}
    return {200: ok, **error_responses(JobNotFound, JobNotReady, JobFailed, Unauthorized,
                                       InvalidRequest)}


@router.get(
    "/jobs/{job_id}/transcript.{fmt}",
    responses=_transcript_responses(list(FORMATS)),
)
async def get_transcript(
    request: Request, job: QueryTokenJob, fmt: FormatName, settings: SettingsDep,
    subtitles: SubtitleQuery, speaker_names: SpeakerNames = None,
) -> Response:
    """Download the transcript as json, txt, srt, vtt, tsv, ass or rttm (speaker turns); the
    subtitle formats are cut into cues by the query parameters (a `preset`, line width and
    count, cue length, reading speed, word highlighting), and `speaker_names` renames a
    diarized transcript's speakers. (A download link cannot send a header, so these also take
    the key as `access_token`.)"""
    renames = _renames(speaker_names)
    text = None
    if job.status in (JobStatus.completed, JobStatus.failed):
        # A failed job has a transcript only where it stopped at a limit (`quota_exceeded`):
        # what was decoded until then.
        text = await off_loop(request, transcript_text, settings.redis_url, job.id, fmt,
                              subtitles, renames)
    if text is None and job.status is JobStatus.failed:
        raise JobFailed(f"The job failed: {job.error.message if job.error else 'unknown'}")
    if text is None:
        raise JobNotReady(f"The job is {job.status}; the transcript is not ready yet.")
    _, media_type, extension = FORMATS[fmt]
    return Response(text, media_type=media_type,
                    headers={"Content-Disposition": _attachment(job.filename, extension)})


@router.get(
    "/jobs/{job_id}/transcript",
    responses=_transcript_responses(["json"]),
)
async def get_transcript_json(request: Request, job: QueryTokenJob, settings: SettingsDep
                              ) -> Response:
    """The transcript as JSON (same as `transcript.json`)."""
    return await get_transcript(request, job, "json", settings, SubtitleOptions())


@router.delete(
    "/jobs/{job_id}", status_code=204, responses=error_responses(JobNotFound, Unauthorized)
)
async def delete_job(job: ExistingJob, store: JobStoreDep, settings: SettingsDep) -> Response:
    """Delete a job, its upload and its transcript; a running job's result is dropped."""
    path = await run_sync(store.upload_path, job.id)
    await run_sync(store.delete, job.id)
    await run_sync(JobEvents.on(store.redis, settings).deleted, job.id)  # ends its streams
    try:
        await run_sync(media_store(settings).remove, path)
    except StorageUnavailable as exc:  # the job is gone all the same; the sweep takes its upload
        log.warning("upload left for the sweep: %s", exc.message)
    return Response(status_code=204)


def _attachment(filename: str, extension: str) -> str:
    # Cleaned again: a job stored before names were cleaned may hold control characters,
    # which no header may carry (uvicorn would drop the connection instead of answering).
    filename = clean_filename(filename)
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    name = f"{stem or 'transcript'}.{extension}"
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
