"""Hosts that share nothing but Redis and the object store (issue 23): an API and two workers,
each with a data directory of its own, on `VERBATIM_STORAGE=s3` with a real SeaweedFS. Short,
spread and URL jobs, kept audio played back by ranges, deletion and a webhook; the store down
gives `storage_unavailable` and creates no job."""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from faster_whisper import decode_audio
from objectstore import SeaweedStore
from receivers import Receiver, media_server, webhook_receiver
from support import (
    DATA,
    TINY_MODEL,
    Process,
    kill_whole_worker,
    pool_children,
    spawn,
    start_api,
    start_worker,
    submit,
    wait_for_job,
    wait_until,
    write_wav,
)

from cli.serve import api_command, io_worker_command
from shared.config import Settings
from shared.localredis import LocalRedis, free_port
from shared.media.storage import media_store
from shared.media.storage.s3 import S3Store
from shared.media.sweep import sweep_objects
from shared.state.spread_plans import plan_key

SHORT = DATA / "LJ001-0001.flac"
ENV = {
    "VERBATIM_KEEP_AUDIO": "true",
    # Recordings past 30 s are spread over windows of at most 30 s.
    "VERBATIM_SPLIT_SECONDS": "30",
    "VERBATIM_WINDOW_SECONDS": "30",
    "VERBATIM_WINDOW_SEARCH_SECONDS": "10",
    "VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": "4",
    "VERBATIM_IO_METRICS_PORT": "0",
}
HOSTS = ("api", "worker-1", "worker-2", "io")


@dataclass
class Hosts:
    http: httpx.Client
    store: SeaweedStore
    redis: redis.Redis
    workers: list[Process]
    data_dirs: dict[str, Path]
    env: dict[str, str]


@pytest.fixture(scope="module")
def hosts(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Hosts]:
    """The store, Redis, and the four hosts started side by side."""
    root = tmp_path_factory.mktemp("shared-nothing")
    store = SeaweedStore(root).start()
    dirs = {name: root / f"data-{name}" for name in HOSTS}
    processes: list[Process] = []
    with LocalRedis(root / "redis") as server:
        env = service_env | ENV | TINY_MODEL | store.env() | {"VERBATIM_REDIS_URL": server.url}

        def on(host: str) -> dict[str, str]:
            return env | {"VERBATIM_DATA_DIR": str(dirs[host])}

        client = redis.Redis.from_url(server.url)
        try:
            with ThreadPoolExecutor(max_workers=3) as pool:
                api = pool.submit(start_api, on("api"), root / "api.log")
                workers = [pool.submit(start_worker, on(f"worker-{n}"), root / f"worker-{n}.log",
                                       f"host{n}") for n in (1, 2)]
                io = spawn(io_worker_command(2), on("io"), root / "io.log")
                processes.append(io)
                try:
                    wait_until(lambda: " ready." in io.output(), "I/O worker start", io)
                finally:
                    for started in (api, *workers):
                        if started.exception() is None:
                            found = started.result()
                            processes.append(found[0] if isinstance(found, tuple) else found)
            with httpx.Client(base_url=api.result()[1], timeout=30) as http:
                yield Hosts(http, store, client, [w.result() for w in workers], dirs, env)
        finally:
            client.close()
            for process in processes:
                process.stop()
            store.stop()


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 40 s of read speech: two windows."""
    gap = np.zeros(8000, np.float32)
    names = ("LJ001-0001", "LJ001-0003", "jfk", "LJ001-0005")
    parts = [piece for name in names for piece in (decode_audio(str(DATA / f"{name}.flac")), gap)]
    return write_wav(tmp_path_factory.mktemp("audio") / "long.wav", np.concatenate(parts))


def media_files(data_dir: Path) -> list[str]:
    """What a host wrote under its data directory besides its assembled model."""
    if not data_dir.exists():
        return []
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")
                  if p.is_file() and p.relative_to(data_dir).parts[0] != "models")


def no_windows_soon(hosts: Hosts, job_id: str, timeout: float = 15) -> bool:
    """Whether the job's window objects are gone within `timeout`: the last window's worker
    removes them just after it records the job as completed."""
    deadline = time.monotonic() + timeout
    while hosts.store.keys(f"windows/{job_id}/"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_short_job_with_a_webhook_keeps_its_audio_in_the_store(hosts: Hosts) -> None:
    with webhook_receiver(Receiver()) as receiver:
        created = submit(hosts.http, SHORT, webhook_url=receiver.url)
        job = wait_for_job(hosts.http, created["id"])
        assert job["status"] == "completed", job
        assert "printing" in hosts.http.get(f"/v1/jobs/{job['id']}/transcript.txt").text.lower()
        assert b'"job.completed"' in receiver.wait_for(1)[0].body
    keys = hosts.store.keys(f"uploads/{job['id']}")
    assert keys == [f"uploads/{job['id']}.flac"]
    original = SHORT.read_bytes()
    whole = hosts.http.get(f"/v1/jobs/{job['id']}/audio")
    assert whole.status_code == 200
    assert whole.content == original
    assert whole.headers["content-type"] == "audio/flac"
    assert whole.headers["content-security-policy"].startswith("sandbox")
    part = hosts.http.get(f"/v1/jobs/{job['id']}/audio", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1099/{len(original)}"
    assert part.content == original[100:1100]
    tail = hosts.http.get(f"/v1/jobs/{job['id']}/audio", headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, original[-10:])
    beyond = hosts.http.get(f"/v1/jobs/{job['id']}/audio",
                            headers={"Range": f"bytes={len(original)}-"})
    assert beyond.status_code == 416
    assert hosts.http.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert hosts.store.keys(f"uploads/{job['id']}") == []


def test_a_spread_job_is_decoded_by_both_workers_from_the_store(
    hosts: Hosts, recording: Path
) -> None:
    job = wait_for_job(hosts.http, submit(hosts.http, recording)["id"])
    assert job["status"] == "completed", job
    text = hosts.http.get(f"/v1/jobs/{job['id']}/transcript.txt").text.lower()
    assert "printing" in text
    assert "ask not what your country can do for you" in text
    ran = [{r["window"] for r in w.records() if r.get("job_id") == job["id"] and "window" in r}
           for w in hosts.workers]
    assert set(itertools.chain(*ran)) == {0, 1}, ran
    assert all(ran), f"each worker decodes a window: {ran}"
    assert no_windows_soon(hosts, job["id"])


def test_a_url_job_is_fetched_into_the_store(hosts: Hosts) -> None:
    with media_server({"lj.flac": SHORT}) as base:
        created = hosts.http.post("/v1/jobs", json={"url": f"{base}/lj.flac"})
        assert created.status_code == 202, created.text
        job = wait_for_job(hosts.http, created.json()["id"])
    assert job["status"] == "completed", job
    assert "printing" in hosts.http.get(f"/v1/jobs/{job['id']}/transcript.txt").text.lower()
    assert hosts.store.keys(f"uploads/{job['id']}") == [f"uploads/{job['id']}.flac"]


def test_the_store_lost_mid_upload_refuses_uploads_cleanly_until_it_is_back(
    hosts: Hosts,
) -> None:
    """One outage: the store stops while an upload streams in, and stays down for the next
    upload and the readiness probe; once back, the sweep leaves nothing of the broken-off
    upload and a job goes through."""
    before = set(hosts.store.keys("uploads/"))
    jobs = hosts.http.get("/v1/jobs").json()["jobs"]
    boundary = "verbatimboundary"

    def body() -> Iterator[bytes]:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
               'filename="big.wav"\r\n\r\n').encode()
        for _ in range(10):  # 10 MiB: one 8 MiB part is sent before the store stops
            yield os.urandom(1 << 20)
        hosts.store.stop()
        yield os.urandom(1 << 20)
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        broken_off = hosts.http.post(
            "/v1/jobs", content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert broken_off.status_code == 503, broken_off.text
        assert broken_off.json()["error"]["code"] == "storage_unavailable"
        with SHORT.open("rb") as file:
            refused = hosts.http.post("/v1/jobs", files={"file": ("lj.flac", file)})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "storage_unavailable"
        ready = hosts.http.get("/readyz")
        assert ready.status_code == 503
        assert "media store" in ready.json()["error"]["message"]
        assert hosts.http.get("/v1/jobs").json()["jobs"] == jobs, "no job was created"
    finally:
        hosts.store.start()
    media = media_store(Settings.model_validate(
        {k.removeprefix("VERBATIM_").lower(): v for k, v in hosts.store.env().items()}))
    assert isinstance(media, S3Store)
    sweep_objects(media, hosts.redis, grace_seconds=0)
    assert set(hosts.store.keys("uploads/")) <= before
    assert list(media.unfinished("uploads/")) == []
    job = wait_for_job(hosts.http, submit(hosts.http, SHORT)["id"])
    assert job["status"] == "completed", job
    assert hosts.http.get("/readyz").json()["storage"] == "s3"


def test_the_store_stopped_mid_job_delays_it_without_losing_it(
    hosts: Hosts, recording: Path
) -> None:
    job_id = submit(hosts.http, recording)["id"]
    deadline = time.monotonic() + 60
    while hosts.http.get(f"/v1/jobs/{job_id}").json()["status"] == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    hosts.store.stop()
    hosts.store.start()
    job = wait_for_job(hosts.http, job_id)
    assert job["status"] == "completed", job
    assert "ask not what your country" in hosts.http.get(
        f"/v1/jobs/{job_id}/transcript.txt").text.lower()
    assert no_windows_soon(hosts, job_id)


def test_a_host_lost_mid_window_leaves_no_window_behind(hosts: Hosts, recording: Path) -> None:
    """Last of the jobs here: one of the two workers is killed for good, as a lost host."""
    job_id = submit(hosts.http, recording)["id"]
    deadline = time.monotonic() + 120
    running: dict[bytes, bytes] = {}
    while not running:
        assert time.monotonic() < deadline, "no window was seen running"
        running = hosts.redis.hgetall(f"{plan_key(job_id)}:running")  # type: ignore[assignment]
        time.sleep(0.02)
    node = next(iter(running.values())).decode().rpartition("|")[0].rpartition(":")[2]
    victim = next(w for w in hosts.workers if str(w.popen.pid) == node
                  or int(node) in pool_children(w.popen.pid))
    kill_whole_worker(victim)
    job = wait_for_job(hosts.http, job_id)
    assert job["status"] == "completed", job
    survivor = next(w for w in hosts.workers if w is not victim)
    started = {r["window"] for r in survivor.records()
               if r.get("job_id") == job_id and r.get("event") == "window_started"}
    assert started == {0, 1}, "the lost window is decoded again, from the store, elsewhere"
    assert "ask not what your country" in hosts.http.get(
        f"/v1/jobs/{job_id}/transcript.txt").text.lower()
    assert no_windows_soon(hosts, job_id)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"VERBATIM_S3_BUCKET": "no-such-bucket"}, "VERBATIM_S3_BUCKET"),
        ({"VERBATIM_S3_SECRET_ACCESS_KEY": "wrong"}, "VERBATIM_S3_SECRET_ACCESS_KEY"),
        ({"VERBATIM_S3_ENDPOINT_URL": "http://127.0.0.1:9"}, "VERBATIM_S3_ENDPOINT_URL"),
    ],
)
def test_an_api_and_a_worker_with_bad_store_settings_stop_saying_which(
    seaweed: SeaweedStore, service_env: dict[str, str], tmp_path: Path,
    changes: dict[str, str], named: str,
) -> None:
    env = service_env | seaweed.env() | changes | {"VERBATIM_DATA_DIR": str(tmp_path)}
    api = spawn(api_command("127.0.0.1", free_port()), env, tmp_path / "api.log")
    worker = spawn([sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker",
                    "--pool", "solo", "--without-gossip", "--without-mingle"],
                   env | {"VERBATIM_WORKER_METRICS_PORT": "0"}, tmp_path / "worker.log")
    for process in (api, worker):
        try:
            assert process.popen.wait(60) != 0
        finally:
            process.stop()
        assert named in process.output(), process.output()[-2000:]


def test_no_host_kept_media_on_its_own_disk(hosts: Hosts) -> None:
    assert {host: media_files(path) for host, path in hosts.data_dirs.items()} == {
        host: [] for host in HOSTS}
