"""Request dependencies: settings, the job store, the queue, and an existing job of the caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import anyio
from celery import Celery
from fastapi import Depends, Request

from api.auth import AccessToken, accepted, app_settings, bearer_token, require_token
from shared.config import Settings
from shared.errors import JobNotFound
from shared.schemas import Job
from shared.state.jobs import JobReader, JobStore

P = ParamSpec("P")
T = TypeVar("T")


async def run_sync(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work (Redis, disk, PyAV) in a worker thread, off the event loop."""
    return await anyio.to_thread.run_sync(lambda: func(*args, **kwargs))


async def job_store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


async def queue(request: Request) -> Celery:
    app: Celery = request.app.state.celery
    return app


SettingsDep = Annotated[Settings, Depends(app_settings)]
JobStoreDep = Annotated[JobStore, Depends(job_store)]
QueueDep = Annotated[Celery, Depends(queue)]


async def _caller_job(request: Request, job_id: str, token: str | None) -> Job:
    """The job, when the caller may see it. Another key's job is refused exactly as one that
    does not exist (no 403 that would confirm it exists); with auth off every job is visible.

    Every `/jobs/{id}` route starts here, status polls most: the key lookup (never cached, so
    a revoked key is refused at once) and the job read share one round trip to Redis, and the
    app's state is read directly rather than through a dependency each, whose solving cost a
    status read more than its own work."""
    state = request.app.state
    reader: JobReader = state.reader
    if state.settings.auth == "off":
        found = await reader.get_owned(job_id)
        owner = None
    else:
        key, found = await reader.get_owned_with_key(
            state.key_finder, require_token(token), job_id)
        owner = accepted(key).id
    if found is None or (owner is not None and found[1] != owner):
        raise JobNotFound(f"No job with id {job_id!r}.")
    return found[0]


async def existing_job(request: Request, job_id: str) -> Job:
    """The caller's job named in the path; 404 `job_not_found` when there is none. The key is
    checked here, as `api.auth.caller` would (401 `unauthorized`)."""
    return await _caller_job(request, job_id, bearer_token(request))


async def existing_job_query_token(
    request: Request, job_id: str, access_token: AccessToken = None
) -> Job:
    """As `existing_job`, for routes that also take the key as `access_token` (`api/auth.py`)."""
    return await _caller_job(request, job_id, bearer_token(request) or access_token)


ExistingJob = Annotated[Job, Depends(existing_job)]
QueryTokenJob = Annotated[Job, Depends(existing_job_query_token)]
