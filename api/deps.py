"""Request dependencies: settings, the job store, the queue, and an existing job of the caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import anyio
from celery import Celery
from fastapi import Depends, Request

from api.auth import Identity, QueryTokenIdentity, app_settings
from shared.config import Settings
from shared.errors import JobNotFound
from shared.jobs import JobReader, JobStore
from shared.keys import ApiKey
from shared.schemas import Job

P = ParamSpec("P")
T = TypeVar("T")


async def run_sync(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work (Redis, disk, PyAV) in a worker thread, off the event loop."""
    return await anyio.to_thread.run_sync(lambda: func(*args, **kwargs))


async def job_store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


async def job_reader(request: Request) -> JobReader:
    reader: JobReader = request.app.state.reader
    return reader


async def queue(request: Request) -> Celery:
    app: Celery = request.app.state.celery
    return app


SettingsDep = Annotated[Settings, Depends(app_settings)]
JobStoreDep = Annotated[JobStore, Depends(job_store)]
QueueDep = Annotated[Celery, Depends(queue)]
JobReaderDep = Annotated[JobReader, Depends(job_reader)]


async def _caller_job(reader: JobReader, job_id: str, key: ApiKey | None) -> Job:
    """The job, when the caller may see it. Another key's job is refused exactly as one that
    does not exist (no 403 that would confirm it exists); with auth off every job is visible.
    Read on the asyncio client: every `/jobs/{id}` route starts here, status polls most."""
    found = await reader.get_owned(job_id)
    if found is None or (key is not None and found[1] != key.id):
        raise JobNotFound(f"No job with id {job_id!r}.")
    return found[0]


async def existing_job(job_id: str, reader: JobReaderDep, key: Identity) -> Job:
    """The caller's job named in the path; 404 `job_not_found` when there is none."""
    return await _caller_job(reader, job_id, key)


async def existing_job_query_token(
    job_id: str, reader: JobReaderDep, key: QueryTokenIdentity
) -> Job:
    """As `existing_job`, for routes that also take the key as `access_token` (`api/auth.py`)."""
    return await _caller_job(reader, job_id, key)


ExistingJob = Annotated[Job, Depends(existing_job)]
QueryTokenJob = Annotated[Job, Depends(existing_job_query_token)]
