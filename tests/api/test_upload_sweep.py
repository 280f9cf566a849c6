"""Upload files that no job owns are swept by the API, at start-up and periodically, and a file
that a live upload is still writing never is. Real API processes on a Redis of their own (so its
command statistics are the sweep's alone) and real uploads over loopback sockets."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import DATA, Process, start_api

from shared.localredis import LocalRedis
from shared.schemas import JobOptions, Segment, Transcript
from shared.state.jobs import JobStore, new_job_id

INTERVAL = 0.3
GRACE = 1.0
WAIT_SECONDS = 15
AUDIO = (DATA / "1089-134686-0001.flac").read_bytes()
LARGE_AUDIO = (DATA / "jfk.flac").read_bytes()  # 1.1 MB: over the API's 1 MiB write buffer
HOURS_AGO = time.time() - 2 * 3600


@pytest.fixture(scope="module")
def sweep_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with LocalRedis(tmp_path_factory.mktemp("sweep-redis")) as server:
        yield server.url


@pytest.fixture
def store(sweep_redis_url: str) -> Iterator[JobStore]:
    store = JobStore.from_url(sweep_redis_url)
    store.redis.flushdb()
    store.redis.config_resetstat()
    yield store
    store.redis.close()


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "uploads"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def start(
    service_env: dict[str, str], sweep_redis_url: str, uploads: Path, tmp_path: Path
) -> Iterator[Callable[[], tuple[Process, str]]]:
    """Starts API processes sweeping `uploads` every 0.3 s with a grace of 1 s."""
    started: list[Process] = []
    env = service_env | {
        "VERBATIM_REDIS_URL": sweep_redis_url,
        "VERBATIM_DATA_DIR": str(uploads.parent),
        "VERBATIM_UPLOAD_SWEEP_INTERVAL_SECONDS": str(INTERVAL),
        "VERBATIM_UPLOAD_SWEEP_GRACE_SECONDS": str(GRACE),
    }

    def start_one() -> tuple[Process, str]:
        process, url = start_api(env, tmp_path / f"api-{len(started)}.log")
        started.append(process)
        return process, url

    yield start_one
    for process in started:
        process.stop()


def old_file(path: Path, content: bytes = AUDIO) -> Path:
    path.write_bytes(content)
    os.utime(path, (HOURS_AGO, HOURS_AGO))
    return path


def job_with_upload(store: JobStore, uploads: Path, ttl: int | None = None) -> Path:
    """A job record and its (old) upload; with `ttl`, a completed job expiring after it."""
    job_id = new_job_id()
    path = old_file(uploads / f"{job_id}.flac")
    store.create(job_id, "talk.flac", JobOptions(), 3.3, path)
    if ttl is not None:
        transcript = Transcript(language="en", duration=3.3, text="x",
                                segments=[Segment(id=0, start=0, end=3.3, text="x")])
        store.complete(job_id, transcript, ttl=ttl)
    return path


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_orphans_go_at_start_up_and_owned_uploads_stay(
    start: Callable[[], tuple[Process, str]], store: JobStore, uploads: Path
) -> None:
    orphan = old_file(uploads / f"{new_job_id()}.flac")
    abandoned = old_file(uploads / f"partial-{new_job_id()}.m4a")
    owned = job_with_upload(store, uploads)
    other = old_file(uploads / "notes.txt", b"not an upload")
    start()
    wait_for(lambda: not orphan.exists() and not abandoned.exists(), "orphans swept")
    fresh = uploads / f"{new_job_id()}.mp3"  # no job yet, but modified within the grace
    fresh.write_bytes(AUDIO)
    time.sleep(GRACE / 2)
    assert fresh.exists()
    wait_for(lambda: not fresh.exists(), "the fresh orphan swept once past the grace")
    assert owned.exists()
    assert other.exists()
    stats = store.redis.info("commandstats")
    assert "cmdstat_exists" in stats  # one EXISTS per old upload, pipelined
    assert not {"cmdstat_scan", "cmdstat_keys"} & set(stats), "the sweep scanned the keyspace"


def test_a_kept_upload_goes_when_its_job_expires_and_not_before(
    start: Callable[[], tuple[Process, str]], store: JobStore, uploads: Path
) -> None:
    """With `delete_upload_when_done=false` an upload outlives its job's end, not its record."""
    expiring = job_with_upload(store, uploads, ttl=6)
    kept = job_with_upload(store, uploads, ttl=3600)
    start()
    while store.get(expiring.stem) is not None:
        assert expiring.exists(), "swept while its job still existed"
        time.sleep(0.1)
    wait_for(lambda: not expiring.exists(), "the expired job's upload swept")
    assert kept.exists()


def send_partial_upload(url: str) -> tuple[socket.socket, bytes]:
    """A connection that has sent a request head and most of an upload (more than the API
    buffers before writing), then pauses; and the rest of the upload."""
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="live.flac"\r\n\r\n'
            + LARGE_AUDIO + b"\r\n--b--\r\n")
    head = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n"
            % len(body))
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(head + body[:-1000])
    return sock, body[-1000:]


def partial_files(uploads: Path) -> list[Path]:
    return list(uploads.glob("partial-*"))


def test_a_live_upload_is_never_swept_however_old_it_looks(
    start: Callable[[], tuple[Process, str]], store: JobStore, uploads: Path
) -> None:
    _, url = start()
    sock, rest = send_partial_upload(url)
    with sock:
        wait_for(lambda: len(partial_files(uploads)) == 1, "the upload reached the disk")
        [partial] = partial_files(uploads)
        os.utime(partial, (HOURS_AGO, HOURS_AGO))  # stale by its age: only the lock saves it
        time.sleep(INTERVAL * 6)
        assert partial.exists(), "a live upload was swept"
        sock.sendall(rest)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 202 "), answer[:300]
    [final] = list(uploads.glob("*.flac"))
    assert store.get(final.stem) is not None  # renamed to its job's name once the job existed
    assert partial_files(uploads) == []


def test_an_upload_left_by_a_killed_api_is_swept_by_the_next_one(
    start: Callable[[], tuple[Process, str]], store: JobStore, uploads: Path
) -> None:
    first, url = start()
    sock, _ = send_partial_upload(url)
    with sock:
        wait_for(lambda: len(partial_files(uploads)) == 1, "the upload reached the disk")
        os.kill(first.popen.pid, signal.SIGKILL)
        first.popen.wait()
    [left] = partial_files(uploads)
    start()
    wait_for(lambda: not left.exists(), "the killed API's partial upload swept")
    assert list(uploads.iterdir()) == []
