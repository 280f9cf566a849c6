"""Job lifecycle on the real worker: progress, crash redelivery, deletion, attempt limits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest
import redis
from support import (
    DATA,
    JOB_TIMEOUT_SECONDS,
    Process,
    pool_children,
    queue_damaged_upload,
    submit,
    wait_for_job,
)

from shared.config import Settings
from shared.queue import TRANSCRIBE_TASK, make_celery
from shared.schemas import JobOptions
from shared.state.jobs import JobStore


def wait_until_processing(client: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "processing" and job["progress"] > 0:
            return job
        assert job["status"] in ("queued", "processing"), job
        time.sleep(0.02)
    pytest.fail("the job never started")


def finish_queue(client: httpx.Client) -> None:
    """Run one short job; the worker takes one job at a time, so earlier ones are done."""
    wait_for_job(client, submit(client, DATA / "1089-134686-0001.flac")["id"])


def test_progress_climbs_while_the_worker_runs(client: httpx.Client, long_recording: Path) -> None:
    seen: list[float] = []
    job = wait_for_job(client, submit(client, long_recording)["id"], seen)
    assert job["status"] == "completed"
    assert any(0 < p < 1 for p in seen), seen
    assert seen == sorted(seen)
    assert seen[-1] == 1.0


def test_a_job_survives_its_worker_process_being_killed(
    client: httpx.Client, worker: Process, long_recording: Path
) -> None:
    job_id = submit(client, long_recording)["id"]
    wait_until_processing(client, job_id)
    children = pool_children(worker.popen.pid)
    assert children, "no pool process found"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    job = wait_for_job(client, job_id)
    assert job["status"] == "completed", job
    assert job["attempts"] == 2
    text = client.get(f"/v1/jobs/{job_id}/transcript.txt").text.lower()
    assert "printing" in text
    assert "arts" in text


def test_deleting_a_running_job_drops_its_result(
    client: httpx.Client, redis_client: redis.Redis, long_recording: Path, service_env: dict
) -> None:
    job_id = submit(client, long_recording)["id"]
    wait_until_processing(client, job_id)
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    finish_queue(client)
    assert redis_client.exists(JobStore.job_key(job_id), JobStore.transcript_key(job_id)) == 0
    uploads = Path(service_env["VERBATIM_DATA_DIR"]) / "uploads"
    assert not list(uploads.glob(f"{job_id}*"))


def test_delete_removes_a_finished_job(client: httpx.Client, redis_client: redis.Redis) -> None:
    job = wait_for_job(client, submit(client, DATA / "1089-134686-0001.flac")["id"])
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    for path in (f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/transcript.srt"):
        response = client.get(path)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "job_not_found")
    assert redis_client.exists(JobStore.transcript_key(job["id"])) == 0


def test_a_redelivered_finished_job_is_left_alone(
    client: httpx.Client, service_env: dict
) -> None:
    job = wait_for_job(client, submit(client, DATA / "1089-134686-0001.flac")["id"])
    transcript = client.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    make_celery(Settings(redis_url=service_env["VERBATIM_REDIS_URL"])).send_task(
        TRANSCRIBE_TASK, args=[job["id"]]
    )
    finish_queue(client)
    assert client.get(f"/v1/jobs/{job['id']}").json() == job
    assert client.get(f"/v1/jobs/{job['id']}/transcript.json").json() == transcript


def removed_soon(path: Path, timeout: float = 10) -> bool:
    """Whether `path` is gone within `timeout` s: the worker removes a job's upload just after
    it records the job's end, which a client may see first."""
    deadline = time.monotonic() + timeout
    while path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_job_delivered_too_often_fails(client: httpx.Client, service_env: dict) -> None:
    settings = Settings(
        redis_url=service_env["VERBATIM_REDIS_URL"], data_dir=service_env["VERBATIM_DATA_DIR"]
    )
    store = JobStore.from_url(settings.redis_url)
    job_id = "f" * 32
    upload = shutil.copy(DATA / "jfk.flac", settings.upload_dir / f"{job_id}.flac")
    store.create(job_id, "jfk.flac", JobOptions(), 11.0, Path(upload))
    store.update(job_id, attempts=settings.max_attempts)
    make_celery(settings).send_task(TRANSCRIBE_TASK, args=[job_id])
    job = wait_for_job(client, job_id)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "too_many_attempts"
    assert job["attempts"] == settings.max_attempts + 1
    failed = client.get(f"/v1/jobs/{job_id}/transcript.srt")
    assert (failed.status_code, failed.json()["error"]["code"]) == (409, "job_failed")
    assert removed_soon(Path(upload))
    assert json.loads(store.redis.hget(store.job_key(job_id), "status")) == "failed"


def test_an_undecodable_upload_fails_with_decode_error(
    client: httpx.Client, service_env: dict
) -> None:
    """The API's probe keeps such files out; a file damaged on disk later still fails cleanly."""
    upload = queue_damaged_upload(service_env, "d" * 32)
    job = wait_for_job(client, "d" * 32)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "decode_error"
    assert "Traceback" not in job["error"]["message"]
    assert service_env["VERBATIM_DATA_DIR"] not in job["error"]["message"]
    assert removed_soon(upload)


@pytest.mark.parametrize("reference", ["file://{path}", "{path}"])
def test_the_worker_opens_no_playlist(
    client: httpx.Client, service_env: dict, reference: str
) -> None:
    """Should a playlist reach a worker, it is refused: its segments are never read."""
    job_id = ("1" if reference.startswith("file") else "2") * 32
    playlist = "\n".join([
        "#EXTM3U", "#EXT-X-TARGETDURATION:12", "#EXTINF:11.0,",
        reference.format(path=(DATA / "jfk.flac").resolve()), "#EXT-X-ENDLIST", "",
    ])
    queue_damaged_upload(service_env, job_id, playlist.encode(), suffix=".m3u8")
    job = wait_for_job(client, job_id)
    assert (job["status"], job["error"]["code"]) == ("failed", "decode_error"), job
    assert client.get(f"/v1/jobs/{job_id}/transcript.txt").status_code == 409


def test_a_finished_job_expires_and_its_upload_is_removed(
    client: httpx.Client, redis_client: redis.Redis, service_env: dict
) -> None:
    job = wait_for_job(client, submit(client, DATA / "1089-134686-0001.flac")["id"])
    ttl = Settings().result_ttl_seconds
    for key in (JobStore.job_key(job["id"]), JobStore.transcript_key(job["id"])):
        assert 0 < redis_client.ttl(key) <= ttl
    uploads = Path(service_env["VERBATIM_DATA_DIR"]) / "uploads"
    assert not list(uploads.glob(f"{job['id']}*"))
