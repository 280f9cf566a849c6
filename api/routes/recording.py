"""A job's recording, served back while it is kept, so the page can play it beside its
transcript (issue 14). Browsers seek in it with HTTP Range requests, which Starlette's
`FileResponse` answers (206 with `Content-Range`); a recording in the `s3` store is answered
the same way a range at a time (`api/ranges.py`)."""

from __future__ import annotations

import os
from pathlib import Path, PurePath

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from api.deps import JobStoreDep, QueryTokenJob, SettingsDep, run_sync
from api.errors import error_responses
from api.ranges import object_response
from shared.config import Settings
from shared.errors import (
    AudioNotKept,
    JobFailed,
    JobNotFound,
    JobNotReady,
    StorageUnavailable,
    Unauthorized,
    UnsupportedMedia,
)
from shared.media.probe import served_type
from shared.media.storage import clean_filename, media_store
from shared.schemas import JobStatus

router = APIRouter(prefix="/v1", tags=["jobs"])

# A recording opened as a page (a browser navigating to it) runs nothing and reaches nothing,
# whatever bytes it holds: its type is never guessed, and it is a sandboxed document with no
# origin of its own. An <audio> element ignores both (issue 26, item 7).
SANDBOX_HEADERS = {"Content-Security-Policy": "sandbox; default-src 'none'",
                   "X-Content-Type-Options": "nosniff"}

_AUDIO = {"description": "The recording as uploaded; `Range` requests are answered with 206.",
          "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}},
                      "video/*": {"schema": {"type": "string", "format": "binary"}}}}


@router.get(
    "/jobs/{job_id}/audio",
    response_class=FileResponse,
    responses={200: _AUDIO, **error_responses(JobNotFound, AudioNotKept, JobNotReady, JobFailed,
                                              Unauthorized, StorageUnavailable)},
)
async def get_audio(request: Request, job: QueryTokenJob, store: JobStoreDep,
                    settings: SettingsDep) -> Response:
    """The completed job's recording, while it is kept (`VERBATIM_KEEP_AUDIO`). (An `<audio>`
    element cannot send a header, so this also takes the key as `access_token`.)"""
    if job.status is JobStatus.failed:
        raise JobFailed("The job failed; its recording is not kept.")
    if job.status is not JobStatus.completed:
        raise JobNotReady(f"The job is {job.status}; its recording is served once it completes.")
    location = await run_sync(store.kept_upload, job.id)
    if location is not None and settings.storage == "s3":
        return await _stored(request, job.filename, location, settings)
    path = Path(location) if location is not None else None
    try:
        stat = await run_sync(os.stat, path) if path is not None else None
    except FileNotFoundError:
        stat = None
    if path is None or stat is None:
        raise AudioNotKept("This job's recording is not kept (the server's keep_audio is off).")
    try:
        media_type, extension = await run_sync(served_type, path)
    except UnsupportedMedia:
        raise AudioNotKept("This job's recording can no longer be read.") from None
    name = f"{PurePath(clean_filename(job.filename)).stem or 'recording'}{extension}"
    return FileResponse(path, media_type=media_type, stat_result=stat, filename=name,
                        content_disposition_type="inline", headers=SANDBOX_HEADERS)


async def _stored(request: Request, filename: str, key: str, settings: Settings) -> Response:
    """The recording from the bucket, a range at a time."""
    from shared.media.storage.s3 import S3Store  # boto3 is loaded only where the store is `s3`

    media = media_store(settings)
    assert isinstance(media, S3Store)
    if not await run_sync(media.exists, key):
        raise AudioNotKept("This job's recording is not kept (the server's keep_audio is off).")
    try:
        media_type, extension = await run_sync(served_type, media.source(key))
    except UnsupportedMedia:
        raise AudioNotKept("This job's recording can no longer be read.") from None
    name = f"{PurePath(clean_filename(filename)).stem or 'recording'}{extension}"
    return await run_sync(object_response, media, key, request.headers.get("range"),
                          media_type, name, SANDBOX_HEADERS)
