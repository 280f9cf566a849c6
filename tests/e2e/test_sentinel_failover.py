"""Redis Sentinel (issue 23): the API, a worker and the I/O worker on
`VERBATIM_REDIS_URL=sentinel://...` carry on when the primary is killed under load and a replica
is promoted. Every accepted job completes and no client sees a 500; a media URL being fetched
when the primary dies is stored and transcribed, and the I/O worker, which held its message,
carries on and sends its webhook; a client following a job's events keeps receiving them,
reconnecting with `Last-Event-ID` as the `verbatim` command does. The time to recover is
printed.

One failover serves every test here (the `failover` fixture runs it; each test checks one
client's side of it)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from receivers import Receiver, serving, webhook_receiver
from sentinels import SentinelGroup
from support import (
    DATA,
    JOB_TIMEOUT_SECONDS,
    Process,
    spawn,
    start_api,
    start_worker,
    wait_for_job,
    wait_until,
)

from cli.client import ApiError, Client
from cli.follow import follow
from cli.serve import io_worker_command

SHORT = DATA / "1089-134686-0001.flac"  # "stuff it into you, his belly counselled him"
FETCHED = DATA / "LJ001-0001.flac"  # "printing, in the only sense with which we are ..."
JOBS = 5  # short uploads
KILL_AFTER = 2  # short uploads accepted before the primary is killed
RETRY_SECONDS = 0.2
RECOVERY_SECONDS = 60


@dataclass
class Stack:
    group: SentinelGroup
    url: str


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Stack]:
    """Sentinels, an API, a worker and an I/O worker, started side by side."""
    root = tmp_path_factory.mktemp("sentinel")
    group = SentinelGroup(root).start()
    env = service_env | {"VERBATIM_REDIS_URL": group.url,
                         "VERBATIM_DATA_DIR": str(root / "data"),
                         "VERBATIM_IO_METRICS_PORT": "0",
                         # The held media URL below waits for the first segment of a job.
                         "VERBATIM_FETCH_READ_TIMEOUT_SECONDS": str(JOB_TIMEOUT_SECONDS),
                         "VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
                         "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": "4"}
    processes: list[Process] = []
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            worker = pool.submit(start_worker, env, root / "worker.log", "failover")
            api = pool.submit(start_api, env, root / "api.log")
            io = spawn(io_worker_command(2), env, root / "io.log")
            processes.append(io)
            try:
                wait_until(lambda: " ready." in io.output(), "I/O worker start", io)
            finally:
                for started in (worker, api):
                    if started.exception() is None:
                        found = started.result()
                        processes.append(found[0] if isinstance(found, tuple) else found)
        group.wait_for_peers()
        yield Stack(group, api.result()[1])
    finally:
        for process in processes:
            process.stop()
        group.stop()


class HeldMedia:
    """A media URL whose body stops halfway until `release` is set: a fetch held in flight."""

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        self.halfway = threading.Event()
        self.release = threading.Event()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        media = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                half = len(media.data) // 2
                self.send_response(200)
                self.send_header("content-length", str(len(media.data)))
                self.end_headers()
                self.wfile.write(media.data[:half])
                self.wfile.flush()
                media.halfway.set()
                media.release.wait(RECOVERY_SECONDS)
                self.wfile.write(media.data[half:])

            def log_message(self, *args: object) -> None:
                pass

        return Handler


class RecordingClient(Client):
    """The `verbatim` command's client, noting each event stream it opens and each event and
    error it gets."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.connections: list[str | None] = []  # the Last-Event-ID each stream was opened with
        self.received: list[tuple[str, str, dict[str, Any], float]] = []
        self.errors: list[ApiError] = []

    def events(self, job_id: str, last_event_id: str | None = None
               ) -> Iterator[tuple[str, str, dict[str, Any]]]:
        self.connections.append(last_event_id)
        try:
            for event_id, name, data in super().events(job_id, last_event_id):
                self.received.append((event_id, name, data, time.time()))
                yield event_id, name, data
        except ApiError as exc:
            self.errors.append(exc)
            raise


@dataclass
class Outcome:
    http: httpx.Client
    url: str
    first_primary: int
    killed_at: float = 0.0  # time.monotonic()
    killed_at_wall: float = 0.0  # time.time()
    recovered_at: float = 0.0
    accepted: list[str] = field(default_factory=list)
    seen: Counter[int] = field(default_factory=Counter)
    url_job: str = ""
    url_status_at_kill: str = ""
    hook: Receiver | None = None
    followed: str = ""
    follower: RecordingClient | None = None
    follow_error: BaseException | None = None


def post(http: httpx.Client, seen: Counter[int], path: Path = SHORT) -> httpx.Response:
    with path.open("rb") as file:
        response = http.post("/v1/jobs", files={"file": (path.name, file)})
    seen[response.status_code] += 1
    return response


def until(check: Any, what: str, timeout: float = JOB_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start_following(outcome: Outcome, url: str, job_id: str) -> threading.Thread:
    follower = outcome.follower = RecordingClient(url)

    def run() -> None:
        try:
            follow(follower, job_id, lambda *_: None, StringIO())
        except BaseException as exc:
            outcome.follow_error = exc

    thread = threading.Thread(target=run, name="follower", daemon=True)
    thread.start()
    return thread


def post_until_accepted(outcome: Outcome, count: int) -> None:
    """Post short uploads until `count` are accepted; answers of 503 (while the primary is
    away) are retried, as a client would."""
    while len(outcome.accepted) < count:
        response = post(outcome.http, outcome.seen)
        if response.status_code == 202:
            outcome.accepted.append(response.json()["id"])
            if outcome.killed_at and not outcome.recovered_at:
                outcome.recovered_at = time.monotonic()
            continue
        assert response.status_code == 503, response.text
        assert time.monotonic() - (outcome.killed_at or time.monotonic()) < RECOVERY_SECONDS
        time.sleep(RETRY_SECONDS)


@pytest.fixture(scope="module")
def failover(stack: Stack, long_recording: Path) -> Iterator[Outcome]:
    """Under way when the primary is killed: a media URL fetched halfway, a job being decoded
    whose events a client follows, and uploads being posted; then they all carry on."""
    group = stack.group
    media = HeldMedia(FETCHED)
    with httpx.Client(base_url=stack.url, timeout=30) as http, \
            serving(media.handler()) as server, webhook_receiver(Receiver()) as hook:
        outcome = Outcome(http, stack.url, group.primary_port())
        created = http.post("/v1/jobs", json={
            "url": f"http://127.0.0.1:{server.server_address[1]}/lj.flac",
            "webhook_url": hook.url})
        assert created.status_code == 202, created.text
        outcome.url_job = created.json()["id"]
        until(media.halfway.is_set, "the media URL's fetch")
        followed = post(http, outcome.seen, long_recording)
        assert followed.status_code == 202, followed.text
        outcome.followed = followed.json()["id"]
        thread = start_following(outcome, stack.url, outcome.followed)
        post_until_accepted(outcome, KILL_AFTER)
        assert outcome.follower is not None
        until(lambda: any(name == "segment" for _, name, _, _ in outcome.follower.received),
              "the followed job's first segment")
        outcome.url_status_at_kill = http.get(f"/v1/jobs/{outcome.url_job}").json()["status"]
        group.kill("primary")
        outcome.killed_at, outcome.killed_at_wall = time.monotonic(), time.time()
        media.release.set()
        post_until_accepted(outcome, JOBS)
        recovery = outcome.recovered_at - outcome.killed_at
        print(f"\nfailover: the API accepted jobs again {recovery:.2f} s after the primary was "
              f"killed ({outcome.seen[503]} answers of 503 meanwhile)")
        thread.join(JOB_TIMEOUT_SECONDS)
        outcome.hook = hook
        yield outcome


def test_every_accepted_job_completes_across_a_failover(
    stack: Stack, failover: Outcome
) -> None:
    http, seen = failover.http, failover.seen
    jobs = [wait_for_job(http, job_id) for job_id in failover.accepted]
    assert [job["status"] for job in jobs] == ["completed"] * JOBS
    texts = [http.get(f"/v1/jobs/{job['id']}/transcript.txt").text.lower() for job in jobs]
    assert all("belly" in text for text in texts), texts
    assert stack.group.primary_port() == stack.group.ports["replica"] != failover.first_primary
    assert not [status for status in seen if status >= 500 and status != 503]


def test_a_media_url_fetched_across_the_failover_is_transcribed(failover: Outcome) -> None:
    assert failover.url_status_at_kill == "fetching"
    job = wait_for_job(failover.http, failover.url_job)
    assert job["status"] == "completed", job
    text = failover.http.get(f"/v1/jobs/{failover.url_job}/transcript.txt").text.lower()
    assert "printing" in text


def test_the_io_worker_outlives_the_failover_and_sends_the_webhook(failover: Outcome) -> None:
    wait_for_job(failover.http, failover.url_job)
    assert failover.hook is not None
    bodies = [received.body for received in failover.hook.wait_for(1, 10)]
    assert any(b'"job.completed"' in body and failover.url_job.encode() in body
               for body in bodies), bodies


def test_a_client_following_a_job_keeps_receiving_its_events(failover: Outcome) -> None:
    follower = failover.follower
    assert follower is not None
    assert failover.follow_error is None, failover.follow_error
    received = list(follower.received)
    assert received[-1][1] == "completed"
    order = [tuple(map(int, event_id.split("-"))) for event_id, *_ in received]
    assert order == sorted(order)
    assert len(set(order)) == len(order), "no event twice"
    published_ms = [order_ms for order_ms, _ in order]
    killed_ms = failover.killed_at_wall * 1000
    assert any(ms < killed_ms for ms in published_ms), "events before the failover"
    assert any(ms > killed_ms for ms in published_ms), "events after the failover"
    assert not [e for e in follower.errors if e.status is not None and e.status != 503], \
        follower.errors
    # Whatever the new primary holds of the job's events, the client has: none was missed.
    replay = {event_id for event_id, *_ in Client(failover.url).events(failover.followed)}
    assert replay <= {event_id for event_id, *_ in received}
    segments = [data["text"] for _, name, data, _ in received if name == "segment"]
    transcript = failover.http.get(f"/v1/jobs/{failover.followed}/transcript.json").json()
    assert all(s["text"] in segments for s in transcript["segments"])
    print(f"\nfailover: the event stream was opened {len(follower.connections)} time(s), "
          f"resuming after {follower.connections[1:]}")
