"""Redis Sentinel (issue 23): the API and a worker on `VERBATIM_REDIS_URL=sentinel://...`
carry on when the primary is killed under load and a replica is promoted. Every accepted job
completes and no client sees a 500; the time to recover is printed."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sentinels import SentinelGroup
from support import DATA, JOB_TIMEOUT_SECONDS, start_api, start_worker

SHORT = DATA / "1089-134686-0001.flac"  # "stuff it into you, his belly counselled him"
JOBS = 5
KILL_AFTER = 2  # jobs accepted before the primary is killed
RETRY_SECONDS = 0.2


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    started = SentinelGroup(tmp_path_factory.mktemp("sentinel")).start()
    try:
        yield started
    finally:
        started.stop()


def post(http: httpx.Client, seen: Counter[int]) -> httpx.Response:
    with SHORT.open("rb") as file:
        response = http.post("/v1/jobs", files={"file": (SHORT.name, file)})
    seen[response.status_code] += 1
    return response


def until_ended(http: httpx.Client, job_id: str, seen: Counter[int]) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        response = http.get(f"/v1/jobs/{job_id}")
        seen[response.status_code] += 1
        if response.status_code == 200 and response.json()["status"] in ("completed", "failed"):
            return response.json()
        time.sleep(0.1)
    pytest.fail(f"job {job_id} did not end")


def test_every_accepted_job_completes_across_a_failover(
    group: SentinelGroup, service_env: dict[str, str], tmp_path: Path
) -> None:
    env = service_env | {"VERBATIM_REDIS_URL": group.url,
                         "VERBATIM_DATA_DIR": str(tmp_path / "data"),
                         "VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
                         "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": "4"}
    api, url = start_api(env, tmp_path / "api.log")
    worker = start_worker(env, tmp_path / "worker.log", name="failover")
    first_primary = group.primary_port()
    seen: Counter[int] = Counter()
    accepted: list[str] = []
    killed_at = recovered_at = 0.0
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            while len(accepted) < JOBS:
                if len(accepted) == KILL_AFTER and not killed_at:
                    group.kill("primary")
                    killed_at = time.monotonic()
                response = post(http, seen)
                if response.status_code == 202:
                    accepted.append(response.json()["id"])
                    if killed_at and not recovered_at:
                        recovered_at = time.monotonic()
                    continue
                assert response.status_code == 503, response.text
                assert time.monotonic() - (killed_at or time.monotonic()) < 60, seen
                time.sleep(RETRY_SECONDS)
            print(f"\nfailover: the API accepted jobs again {recovered_at - killed_at:.2f} s "
                  f"after the primary was killed ({seen[503]} answers of 503 meanwhile)")
            jobs = [until_ended(http, job_id, seen) for job_id in accepted]
            texts = [http.get(f"/v1/jobs/{job['id']}/transcript.txt").text.lower()
                     for job in jobs]
    finally:
        worker.stop()
        api.stop()
    assert group.primary_port() == group.ports["replica"] != first_primary
    assert [job["status"] for job in jobs] == ["completed"] * JOBS
    assert all("belly" in text for text in texts), texts
    assert not [status for status in seen if status >= 500 and status != 503], seen
