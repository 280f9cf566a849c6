"""A pool process whose model cannot be prepared fails its jobs with `model_unavailable`, says
why in its JSON log, and tries again: once the model loads it reports in for `/readyz`. While
it loads it beats as starting, so the reapers never take a job it holds from it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import DATA, JOB_TIMEOUT_SECONDS, Process, start_worker, wait_until

from shared.config import Settings
from shared.localredis import LocalRedis
from shared.queue import TRANSCRIBE_TASK, make_celery
from shared.schemas import Job, JobOptions
from shared.state.heartbeats import STARTING, Heartbeats
from shared.state.jobs import JobStore, new_job_id

TIMEOUT_SECONDS = 2.0
FAST_HEARTBEATS = {
    "VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
}
NOT_LOADED = "model not loaded"


@pytest.fixture
def settings(service_env: dict[str, str], tmp_path: Path) -> Iterator[Settings]:
    """A Redis and a data directory of its own, whose `models` is a file, not a directory."""
    data = tmp_path / "data"
    (data / "uploads").mkdir(parents=True)
    (data / "models").write_bytes(b"")
    with LocalRedis(tmp_path) as server:
        yield Settings(redis_url=server.url, data_dir=data)


@pytest.fixture
def worker(settings: Settings, service_env: dict[str, str], tmp_path: Path) -> Iterator[Process]:
    env = service_env | FAST_HEARTBEATS | {
        "VERBATIM_REDIS_URL": settings.redis_url, "VERBATIM_DATA_DIR": str(settings.data_dir)}
    process = start_worker(env, tmp_path / "worker.log", name="warm-up", wait_for_model=False)
    yield process
    process.stop()


def run_job(settings: Settings, worker: Process) -> Job:
    store = JobStore.from_url(settings.redis_url)
    job_id = new_job_id()
    upload = Path(shutil.copy(DATA / "jfk.flac", settings.upload_dir / f"{job_id}.flac"))
    store.create(job_id, "jfk.flac", JobOptions(), 11.0, upload)
    make_celery(settings).send_task(TRANSCRIBE_TASK, args=[job_id])
    job: Job | None = None

    def finished() -> bool:
        nonlocal job
        job = store.get(job_id)
        return job is not None and job.status.terminal

    wait_until(finished, "job", worker, timeout=JOB_TIMEOUT_SECONDS)
    assert job is not None
    return job


def failed_loads(worker: Process) -> list[dict]:
    return [r for r in worker.records() if r["message"].startswith(NOT_LOADED)]


def test_a_model_that_cannot_be_prepared_fails_jobs_until_a_retry_loads_it(
    settings: Settings, worker: Process
) -> None:
    heartbeats = Heartbeats(JobStore.from_url(settings.redis_url).redis)
    starting = Heartbeats(heartbeats.redis, STARTING)
    job = run_job(settings, worker)
    assert job.status == "failed"
    assert job.error is not None
    assert job.error.code == "model_unavailable", job.error
    assert str(settings.model_dir) in job.error.message
    assert "writ" in job.error.message
    wait_until(lambda: len(failed_loads(worker)) >= 2, "the load is tried again", worker)
    assert not heartbeats.live(TIMEOUT_SECONDS)  # not ready, but alive for the reapers:
    [loading] = starting.live(TIMEOUT_SECONDS)
    assert loading.node == f"{loading.hostname}:{worker.popen.pid}"  # a pool process of it
    assert "Exception in thread" not in worker.output()
    for record in failed_loads(worker):  # one line per try, with the reason
        assert record["level"] == "ERROR"
        assert str(settings.model_dir) in record["message"]
        assert "exc_info" not in record

    (settings.model_dir).unlink()  # the operator fixes the volume; no restart
    wait_until(lambda: heartbeats.live(TIMEOUT_SECONDS), "ready once the model loads", worker,
               timeout=120)
    tries = len(failed_loads(worker))
    assert run_job(settings, worker).status == "completed"
    time.sleep(1)  # two more intervals: the thread no longer tries
    assert len(failed_loads(worker)) == tries
    [beat] = heartbeats.live(TIMEOUT_SECONDS)
    assert beat.jobs_done >= 1
    assert beat.id == loading.id
    assert not starting.live(TIMEOUT_SECONDS)  # withdrawn once it beat as loaded
    assert sum(r["message"] == "model loaded" for r in worker.records()) == 1
    assert not [r for r in worker.records() if "exc_info" in r]
