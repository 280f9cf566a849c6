"""`POST /v1/jobs` beyond a plain upload: a media URL instead of a file (form field or JSON
body), the job's extras (webhook, metadata, retention), and `Idempotency-Key` (issue 13).

A URL job is recorded as `fetching` and handed to the I/O worker (`courier/fetching.py`); the
answer is 202 at once. Outbound URLs are checked here (422 `invalid_url` / `url_forbidden`)
and again by the I/O worker when it connects.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote

import anyio
from celery import Celery
from fastapi import Header
from starlette.requests import Request

from api.deps import run_sync
from api.model_choice import choose_model
from api.submission import admit, discarded_on_error, parse_options, submit
from api.uploads import Upload, receive_form
from shared import outbound
from shared.config import Settings
from shared.errors import (
    FetchFailed,
    IdempotencyInProgress,
    InvalidRequest,
    InvalidUrl,
    JobNotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)
from shared.extras import FIELDS, JobExtras, parse_extras
from shared.media.storage import clean_filename, media_store
from shared.schemas import Job, JobStatus
from shared.state.idempotency import Idempotency, fingerprint, scope
from shared.state.jobs import JobStore, new_job_id
from shared.state.keys import ApiKey
from shared.state.webhooks import FETCH_TASK, IO_QUEUE

REPLAYED_HEADER = "Idempotent-Replayed"
MAX_JSON_BYTES = 64 * 1024
# How long a repeat waits for the first request with its key to create the job.
REPLAY_WAIT_SECONDS = 30.0

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
    description="Any unique string (a UUID) of printable ASCII: repeating the request with it "
    "within 24 h returns the first job instead of creating another.",
)]
Create = Callable[[], Awaitable[Job]]


async def create_job(
    request: Request, settings: Settings, store: JobStore, celery: Celery,
    caller: ApiKey | None, key: str | None,
) -> tuple[Job, bool]:
    """The job the request of `caller` (None: auth is off) creates, or with a repeated
    Idempotency-Key `key` the one it created; whether it was replayed."""
    await admit(request, store, caller)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/json", "application/x-www-form-urlencoded"):
        fields = await _fields_body(request, content_type)
        return await _url_job(new_job_id(), fields, request, settings, store, celery, caller,
                              key)
    job_id = new_job_id()
    media = media_store(settings)
    received = await receive_form(
        request, lambda name: media.receive(media.upload_location(job_id, name)),
        settings.max_upload_bytes,
    )
    if isinstance(received, dict):
        fields = {name: values[-1] for name, values in received.items()}
        return await _url_job(job_id, fields, request, settings, store, celery, caller, key)
    return await _upload_job(job_id, received, request, settings, store, celery, caller, key)


async def _upload_job(
    job_id: str, upload: Upload, request: Request, settings: Settings, store: JobStore,
    celery: Celery, caller: ApiKey | None, key: str | None,
) -> tuple[Job, bool]:
    with discarded_on_error(upload):
        if "url" in upload.values:
            raise InvalidRequest("Send either `file` or `url`, not both.", param="url")
        digest = fingerprint(request.url.path, upload.sha256, upload.filename, upload.values)
        extras = await take_extras(upload, settings, caller)
        options = parse_options(upload.fields)

    async def create() -> Job:
        return await submit(job_id, upload, settings, store, celery, caller, options,
                            extras.record())

    return await once(settings, store, caller, key, digest, job_id, create,
                      upload.file.discard)


async def take_extras(upload: Upload, settings: Settings, caller: ApiKey | None) -> JobExtras:
    """The extras among the upload's fields, which then hold the options alone."""
    values = {name: upload.values.pop(name)[-1] for name in FIELDS if name in upload.values}
    return await checked_extras(values, settings, caller)


async def checked_extras(
    values: dict[str, Any], settings: Settings, caller: ApiKey | None
) -> JobExtras:
    """The job's extras; without a `webhook_url` of its own, a job takes its key's default."""
    extras = parse_extras(values, settings.result_ttl_seconds)
    if extras.webhook_url is None and caller is not None:
        extras.webhook_url = caller.webhook_url
    if extras.webhook_url is not None:
        await check_outbound(extras.webhook_url, settings, "webhook_url")
    return extras


async def check_outbound(url: str, settings: Settings, param: str) -> None:
    """422 unless the URL may be fetched (`shared/outbound.py`); resolves its host."""
    allow = outbound.Allowlist.parse(settings.fetch_allow)
    try:
        await run_sync(outbound.check_url, url, allow)
    except FetchFailed as exc:
        raise InvalidUrl(f"{param}: {exc.message}", param=param) from None
    except (InvalidUrl, InvalidRequest) as exc:
        exc.param = param
        raise


async def _url_job(
    job_id: str, fields: dict[str, Any], request: Request, settings: Settings,
    store: JobStore, celery: Celery, caller: ApiKey | None, key: str | None,
) -> tuple[Job, bool]:
    url = fields.pop("url", None)
    if not isinstance(url, str) or not url:
        raise InvalidRequest("`url` must be an http(s) URL of the media.", param="url")
    digest = fingerprint(request.url.path, url, fields)
    extras = await checked_extras(fields, settings, caller)
    options = await choose_model(parse_options(fields), settings, store.redis)
    await check_outbound(url, settings, "url")

    async def create() -> Job:
        return await _create_fetching(job_id, url, options, extras, settings, store, celery,
                                      caller)

    return await once(settings, store, caller, key, digest, job_id, create, lambda: None)


async def _create_fetching(
    job_id: str, url: str, options: Any, extras: JobExtras, settings: Settings,
    store: JobStore, celery: Celery, caller: ApiKey | None,
) -> Job:
    name = clean_filename(unquote(PurePosixPath(outbound.parse_url(url).path).name) or "media")
    location = media_store(settings).upload_location(job_id, name)
    record = extras.record() | {"source_url": url}
    job, _ = await run_sync(
        store.create, job_id, name, options, None, location, caller.id if caller else None,
        caller.limits if caller else None, record, JobStatus.fetching,
        keep_upload=settings.keep_audio,
    )
    try:
        await run_sync(celery.send_task, FETCH_TASK, args=[job_id], queue=IO_QUEUE)
    except Exception as exc:
        await run_sync(store.delete, job_id)
        raise ServiceUnavailable("The job queue is unreachable; try again later.") from exc
    return job


async def _fields_body(request: Request, content_type: str) -> dict[str, Any]:
    """A URL job's fields: a JSON object, or a url-encoded form (`curl -d url=...`)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise PayloadTooLarge(f"A request body without a file is at most {MAX_JSON_BYTES} "
                                  "bytes.")
    if content_type == "application/x-www-form-urlencoded":
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return dict(pairs)
    try:
        fields = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}") from None
    except ValueError:  # an integer past Python's 4300 digits (CVE-2020-10735)
        raise InvalidRequest("The JSON body holds a number too long to read.") from None
    if not isinstance(fields, dict):
        raise InvalidRequest('The JSON body must be an object: {"url": ..., options}.')
    return fields


async def once(
    settings: Settings, store: JobStore, caller: ApiKey | None, key: str | None, digest: str,
    job_id: str, create: Create, discard: Callable[[], None],
) -> tuple[Job, bool]:
    """`create()` the job unless an earlier request of `caller` with `key` did; then its job
    (replayed). `discard` drops what this request received when it creates nothing."""
    if key is None:
        return await create(), False
    claims = Idempotency(store.redis, settings.idempotency_ttl_seconds)
    owner = scope(caller.id if caller else None)
    deadline = time.monotonic() + REPLAY_WAIT_SECONDS
    try:
        while (claim := await run_sync(claims.claim, owner, key, digest, job_id)) is not None:
            job = await run_sync(store.get, claim.job_id)
            if job is not None:
                discard()
                return job, True
            if claim.created:
                raise JobNotFound("The job created with this Idempotency-Key was deleted.")
            if time.monotonic() > deadline:
                raise IdempotencyInProgress("The first request with this Idempotency-Key is "
                                            "still being handled; try again later.")
            await anyio.sleep(0.05)
    except BaseException:
        discard()
        raise
    try:
        job = await create()
    except BaseException:
        await run_sync(claims.release, owner, key, job_id)
        raise
    await run_sync(claims.created, owner, key, digest, job_id)
    return job, False
