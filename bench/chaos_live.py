"""Chaos benchmark for live sessions: every session ends, and frees its slot, while live workers
are SIGKILLed under it.

Starts a stack of its own (Redis, the API with keys required, two live workers, no
transcription worker: the live workers end each other's lost sessions), runs N short live
sessions over `WS /v1/live` two at a time (each streams one of `tests/data/*.flac` as 16 kHz
PCM at twice real time; one in four leaves without `stop`, as a closed browser tab would), and
meanwhile SIGKILLs a random live worker at random moments and starts it again. Then it waits
for every session's job to end and prints:

    sessions, ended by outcome (done, live_worker_lost, ...), refused (no live worker free for
    3 minutes), lost (job record gone), stuck (job never ended), slot leaks (the key's active
    jobs, held sessions and counted live sessions left once all ended), and kill-to-end times
    (from a kill to the end of each session the dead worker held).

0 lost, 0 stuck and 0 slot leaks is the bar. Traffic goes to loopback only.

    .venv/bin/python bench/chaos_live.py                  # 20 sessions
    .venv/bin/python bench/chaos_live.py --sessions 40 --seed 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import redis
from faster_whisper import decode_audio
from stack import ROOT, start_api, wait_healthy
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from cli.serve import live_worker_command
from shared.localredis import LocalRedis, stop_process
from shared.schemas import JobStatus
from shared.state.jobs import JobStore
from shared.state.keys import KeyLimits, KeyStore
from shared.state.live_sessions import HELD_KEY

SETTINGS = {
    "VERBATIM_AUTH": "required",
    "VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "1",
    "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": "5",
    "VERBATIM_LIVE_LOST_SECONDS": "3",
    "VERBATIM_LIVE_IDLE_TIMEOUT_SECONDS": "5",
    "VERBATIM_LIVE_CLAIM_TIMEOUT_SECONDS": "2",
    "VERBATIM_LIVE_MAX_SESSIONS_PER_KEY": "4",
    "VERBATIM_LOG_FORMAT": "json",
}
FRAME_SECONDS = 0.1
SPEED = 2.0  # times real time
QUIESCENCE_SECONDS = 300


@dataclass
class LiveWorker:
    """A live worker (one process, Celery's solo pool), started again under a new log."""

    number: int
    env: dict[str, str]
    logs: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"live{self.number}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            live_worker_command(self.number),
            env=self.env | {"VERBATIM_WORKER_METRICS_PORT": "0"},
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@dataclass
class Outcomes:
    ends: Counter[str] = field(default_factory=Counter)
    jobs: list[str] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)  # job id -> pid of its live worker
    kills: list[tuple[float, int]] = field(default_factory=list)  # (time, pid)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

# Seconds between live worker kills, at random in this range.
KILL_EVERY = (8.0, 20.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill-every", type=float, nargs=2, default=KILL_EVERY,
                        metavar=("MIN", "MAX"), help="seconds between live worker kills")
    args = parser.parse_args()
    random.seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="verbatim-chaos-live-") as tmp:
        run(Path(tmp), args)


def run(tmp: Path, args: argparse.Namespace) -> None:
    server = LocalRedis(tmp / "redis").start()
    env = {**os.environ, **SETTINGS, "VERBATIM_REDIS_URL": server.url,
           "VERBATIM_DATA_DIR": str(tmp / "data")}
    client = redis.Redis.from_url(server.url)
    key, token = KeyStore(client).create("chaos", KeyLimits(max_active_jobs=100))
    api, url = start_api(env, tmp / "api.log")
    workers = [LiveWorker(number, env, tmp) for number in (1, 2)]
    for worker in workers:
        worker.start()
    outcomes = Outcomes()
    try:
        wait_healthy(url)
        _wait_warm(workers)
        stop = threading.Event()
        monkey = threading.Thread(target=_monkey, args=(workers, outcomes, stop, args))
        began = time.monotonic()
        monkey.start()
        clips = [_pcm(path) for path in sorted((ROOT / "tests" / "data").glob("*.flac"))]
        live = url.replace("http://", "ws://") + f"/v1/live?access_token={token}"
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda n: _session(live, clips[n % len(clips)], n, outcomes, client),
                          range(args.sessions)))
        stop.set()
        monkey.join()
        jobs = _quiesce(JobStore(client), outcomes.jobs)
        _report(outcomes, jobs, client, key.id, time.monotonic() - began)
    finally:
        for worker in workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.kill()
        stop_process(api, 20)
        client.close()
        server.stop()


def _pcm(path: Path) -> bytes:
    samples = decode_audio(str(path), sampling_rate=16000)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def _wait_warm(workers: list[LiveWorker], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    for worker in workers:
        log = worker.logs / f"live{worker.number}-{worker.starts}.log"
        while "live worker warmed up" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise SystemExit("the live workers did not warm up")
            time.sleep(0.5)


def _session(url: str, audio: bytes, number: int, outcomes: Outcomes,
             client: redis.Redis) -> None:
    """One session, asked for again while no live worker is free (for 3 minutes at most: a
    killed worker's model loads again first)."""
    leaves = number % 4 == 3
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if _attempt(url, audio, leaves, outcomes, client):
                return
        except (ConnectionClosed, TimeoutError, OSError):
            pass  # refused on the way in: try again, as a client would
        time.sleep(0.5)
    with outcomes.lock:
        outcomes.refused += 1


def _attempt(url: str, audio: bytes, leaves: bool, outcomes: Outcomes,
             client: redis.Redis) -> bool:
    """One try at a session; whether it started (and then ran to its end)."""
    with connect(url, open_timeout=10, close_timeout=10) as ws:
        ws.send(json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000,
                            "language": "en"}))
        first = json.loads(ws.recv(timeout=30))
        if first["type"] != "started":
            return False
        claim = client.get(f"verbatim:live:{first['session_id']}:claim")
        with outcomes.lock:
            outcomes.jobs.append(first["job_id"])
            if claim:
                outcomes.held[first["job_id"]] = int(claim.decode().rsplit(":", 1)[1])
        end = _stream(ws, audio, leaves)
    with outcomes.lock:
        outcomes.ends[end] += 1
    return True


def _stream(ws: ClientConnection, audio: bytes, leaves: bool) -> str:
    """Send the audio (half of it, then leave, when `leaves`); how the session ended for the
    client."""
    frame = int(FRAME_SECONDS * 16000) * 2
    end = len(audio) // 2 if leaves else len(audio)
    try:
        for start in range(0, end, frame):
            ws.send(audio[start:start + frame])
            time.sleep(FRAME_SECONDS / SPEED)
        if leaves:
            return "left"
        ws.send(json.dumps({"type": "stop"}))
        while True:
            event = json.loads(ws.recv(timeout=120))
            if event["type"] == "done":
                return "done"
            if event["type"] == "error":
                return event["code"]
    except ConnectionClosed:
        return "closed"
    except TimeoutError:
        return "no end heard"


def _monkey(workers: list[LiveWorker], outcomes: Outcomes, stop: threading.Event,
            args: argparse.Namespace) -> None:
    while not stop.wait(random.uniform(*args.kill_every)):
        victim = random.choice(workers)
        assert victim.process is not None
        outcomes.kills.append((time.time(), victim.process.pid))
        victim.kill()
        time.sleep(random.uniform(0.5, 2))
        victim.start()


def _quiesce(store: JobStore, ids: list[str]) -> dict[str, dict | None]:
    """Each job's last record (None: gone), once every job ended or the wait ran out."""
    deadline = time.monotonic() + QUIESCENCE_SECONDS
    while True:
        jobs = {job_id: (job.model_dump(mode="json") if (job := store.get(job_id)) else None)
                for job_id in ids}
        ended = all(j is None or j["status"] in (JobStatus.completed, JobStatus.failed)
                    for j in jobs.values())
        if ended or time.monotonic() > deadline:
            return jobs
        time.sleep(1)


def _report(outcomes: Outcomes, jobs: dict[str, dict | None], client: redis.Redis,
            key_id: str, seconds: float) -> None:
    lost = [i for i, j in jobs.items() if j is None]
    ended = {i: j for i, j in jobs.items() if j}
    stuck = [i for i, j in ended.items() if j["status"] not in ("completed", "failed")]
    active = JobStore(client).active_count(key_id)
    held = client.scard(HELD_KEY)
    counted = [m.decode() for m in client.smembers(f"verbatim:live:owner:{key_id}")  # type: ignore[union-attr]
               if client.exists(f"verbatim:live:{m.decode()}")]
    killed_pids = {pid for _, pid in outcomes.kills}
    victims = [i for i, pid in outcomes.held.items() if pid in killed_pids]
    kill_to_end = []
    for job_id in victims:
        job = ended.get(job_id)
        kill_at = next((at for at, pid in outcomes.kills if pid == outcomes.held[job_id]), None)
        if job and job.get("finished_at") and kill_at:
            finished = datetime.fromisoformat(job["finished_at"]).timestamp()
            if finished >= kill_at:
                kill_to_end.append(finished - kill_at)
    print(f"chaos: {len(outcomes.kills)} live worker SIGKILLs (each restarted); "
          f"{seconds:.0f} s in all")
    print(f"sessions    {len(outcomes.jobs)} started, {outcomes.refused} refused for 3 minutes")
    print(f"client saw  {dict(outcomes.ends)}")
    print(f"completed   {sum(1 for j in ended.values() if j['status'] == 'completed')}")
    print(f"failed      {sum(1 for j in ended.values() if j['status'] == 'failed')}")
    print(f"on killed   {len(victims)} sessions were held by a worker then killed")
    print(f"lost        {len(lost)}")
    print(f"stuck       {len(stuck)} {stuck[:5] or ''}".rstrip())
    print(f"slot leaks  {active + held + len(counted)} (active jobs {active}, held sessions "
          f"{held}, counted live sessions {len(counted)})")
    if kill_to_end:
        print(f"kill-to-end n={len(kill_to_end)} p50 {statistics.median(kill_to_end):.1f} s  "
              f"max {max(kill_to_end):.1f} s")
    if lost or stuck or active or held or counted:
        sys.exit(1)


if __name__ == "__main__":
    main()
