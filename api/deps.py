"""Request dependencies: settings, the job store, the queue, and an existing job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import anyio
from celery import Celery
from fastapi import Depends, Request

from shared.config import Settings, get_settings
from shared.jobs import JobStore
from shared.schemas import Job

P = ParamSpec("P")
T = TypeVar("T")


async def run_sync(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work (Redis, disk, PyAV) in a worker thread, off the event loop."""
    return await anyio.to_thread.run_sync(lambda: func(*args, **kwargs))


def job_store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


def queue(request: Request) -> Celery:
    app: Celery = request.app.state.celery
    return app


SettingsDep = Annotated[Settings, Depends(get_settings)]
JobStoreDep = Annotated[JobStore, Depends(job_store)]
QueueDep = Annotated[Celery, Depends(queue)]


async def existing_job(job_id: str, store: JobStoreDep) -> Job:
    """The job named in the path; 404 `job_not_found` when there is none."""
    return await run_sync(store.require, job_id)


ExistingJob = Annotated[Job, Depends(existing_job)]
