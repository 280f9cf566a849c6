"""Chaos benchmark: jobs keep their promise while workers and Redis die under them.

Starts a stack of its own (Redis with append-only persistence, the API, two workers with one
pool process each, two I/O workers), a media server and a webhook receiver on loopback, and
submits N short real-speech jobs, each with a webhook: a third uploaded, a third from a media
URL, a third from a URL the server trickles over 10 s (so that I/O workers die mid-download),
one every half second;
the receiver answers the first attempt of a third of the events with HTTP 500 (so that retries
are due while I/O workers die). Meanwhile it SIGKILLs whole workers and I/O workers (main
process and pool) at random intervals and starts them again, SIGKILLs Redis once and restarts
it on its append-only file, and SIGTERMs one worker mid-job (its soft shutdown puts the job
back). Then it waits for every job to end and every event to arrive, and prints:

    submitted, completed, failed (by code), lost (record gone), stuck (never ended),
    run twice (transcribed to the end more than once), kill-to-restart times (from a kill
    to the moment each job the dead worker held started again elsewhere), and of the webhook
    events: delivered, lost (an ended job's event never answered 2xx), duplicated (a job with
    two events), and re-sent (an event delivered again after a kill, under its one id).

Then, on a stack of its own, live sessions while live workers are SIGKILLed
(`bench/chaos_live.py`, `--live-sessions`; 0 skips them): every session ends and frees its
slots.

0 lost, 0 stuck, 0 webhook events lost or duplicated and 0 slot leaks is the bar. Traffic goes
to loopback only.

    .venv/bin/python bench/chaos.py                  # 200 jobs, then 20 live sessions
    .venv/bin/python bench/chaos.py --jobs 60 --seed 7 --live-sessions 0
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
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import chaos_live
import httpx
from stack import ROOT, Worker, start_api, wait_ready

from shared.localredis import LocalRedis, stop_process

AUDIO = ROOT / "tests" / "data" / "jfk.flac"
HEARTBEATS = {"VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "1", "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": "5"}
# Webhook retries about 1.3, 2.7, 5.3 and 10.7 s apart; the servers listen on loopback.
INTEGRATIONS = {"VERBATIM_FETCH_ALLOW": "127.0.0.1", "VERBATIM_WEBHOOK_ATTEMPTS": "5",
                "VERBATIM_WEBHOOK_WINDOW_SECONDS": "20", "VERBATIM_IO_METRICS_PORT": "0"}
QUIESCENCE_SECONDS = 1800
# After the jobs end: how long their events may still take (the retry window, and a kill).
EVENTS_SECONDS = 90
TRICKLE_SECONDS = 10.0
# Between two submissions: URL downloads then go on while the first kills come.
SUBMIT_PAUSE_SECONDS = 0.5


@dataclass
class Chaos:
    kills: list[float] = field(default_factory=list)  # wall-clock times of whole-worker kills
    events: list[str] = field(default_factory=list)
    io_kills: int = 0


class IOWorker(Worker):
    """An I/O worker (webhooks, media URLs) with two fetch threads."""

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"{self.name}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "courier.celery_app:app", "worker",
             "--pool", "threads", "--concurrency", "2", "--queues", "verbatim.io",
             "--without-gossip", "--without-mingle", "--hostname", f"{self.name}-{self.starts}@%h"],
            env=self.env | {"REMAP_SIGTERM": "SIGQUIT"}, cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT,
        )


@dataclass
class Hooks:
    """What the webhook receiver got: per job, each delivery's event id and answer."""

    got: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, job_id: str, event_id: str) -> int:
        with self.lock:
            seen = self.got.setdefault(job_id, [])
            first = not any(known == event_id for known, _ in seen)
            status = 500 if first and int(job_id[-2:], 16) % 3 == 0 else 200
            seen.append((event_id, status))
            return status


def _servers(hooks: Hooks) -> tuple[ThreadingHTTPServer, ThreadingHTTPServer]:
    """The media server (`/jfk.flac`, `/slow/jfk.flac` trickled) and the webhook receiver."""
    data = AUDIO.read_bytes()

    class Media(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            steps = 30 if self.path.startswith("/slow/") else 1
            size = -(-len(data) // steps)
            with suppress(OSError):
                for start in range(0, len(data), size):
                    self.wfile.write(data[start:start + size])
                    time.sleep(TRICKLE_SECONDS / steps if steps > 1 else 0)

        def log_message(self, *args: object) -> None:
            pass

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
            status = hooks.answer(body["data"]["id"], self.headers.get("webhook-id", ""))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    servers = (ThreadingHTTPServer(("127.0.0.1", 0), Media),
               ThreadingHTTPServer(("127.0.0.1", 0), Receiver))
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill-every", type=float, nargs=2, default=(6.0, 14.0),
                        metavar=("MIN", "MAX"), help="seconds between whole-worker kills")
    parser.add_argument("--kills", type=int, default=30, help="whole-worker kills at most")
    parser.add_argument("--live-sessions", type=int, default=20,
                        help="live sessions under live worker kills afterwards (0: none)")
    args = parser.parse_args()
    random.seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="verbatim-chaos-") as tmp:
        run(Path(tmp), args)
    if args.live_sessions:
        live = argparse.Namespace(sessions=args.live_sessions, seed=args.seed,
                                  kill_every=chaos_live.KILL_EVERY)
        with tempfile.TemporaryDirectory(prefix="verbatim-chaos-live-") as tmp:
            chaos_live.run(Path(tmp), live)


def run(tmp: Path, args: argparse.Namespace) -> None:
    redis_server = LocalRedis(tmp / "redis").start()
    env = {**os.environ, **HEARTBEATS, **INTEGRATIONS, "VERBATIM_REDIS_URL": redis_server.url,
           "VERBATIM_DATA_DIR": str(tmp / "data"), "VERBATIM_LOG_FORMAT": "json"}
    api, url = start_api(env, tmp / "api.log")
    workers = [Worker(f"w{i}", env, tmp) for i in (1, 2)]
    io_workers: list[Worker] = [IOWorker(f"io{i}", env, tmp) for i in (1, 2)]
    for worker in workers + io_workers:
        worker.start()
    hooks = Hooks()
    media, receiver = _servers(hooks)
    sources = (f"http://127.0.0.1:{media.server_address[1]}",
               f"http://127.0.0.1:{receiver.server_address[1]}/hooks")
    chaos = Chaos()
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            wait_ready(http)
            stop = threading.Event()
            monkey = threading.Thread(
                target=_monkey, args=(workers, io_workers, redis_server, chaos, stop, args),
                daemon=True,
            )
            started = time.monotonic()
            monkey.start()
            ids = _submit(http, args.jobs, chaos, *sources)
            jobs = _quiesce(http, ids)
            stop.set()
            monkey.join()
            _await_events(jobs, hooks)
            _report(ids, jobs, chaos, workers, time.monotonic() - started)
            _report_events(ids, jobs, hooks, io_workers)
    finally:
        for worker in workers + io_workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.kill()
        media.shutdown()
        receiver.shutdown()
        stop_process(api, 20)
        redis_server.stop()


def _submit(http: httpx.Client, count: int, chaos: Chaos, media: str, hook: str) -> list[str]:
    """Submit `count` jobs (uploads, URLs, slow URLs in turn, each with a webhook), retrying
    refusals while Redis is away (a client would)."""
    ids: list[str] = []
    data = AUDIO.read_bytes()
    while len(ids) < count:
        kind = len(ids) % 3
        try:
            if kind == 0:
                response = http.post("/v1/jobs", files={"file": (AUDIO.name, data)},
                                     data={"webhook_url": hook})
            else:
                source = f"{media}/jfk.flac" if kind == 1 else f"{media}/slow/jfk.flac"
                response = http.post("/v1/jobs", data={"url": source, "webhook_url": hook})
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        if response.status_code == 202:
            ids.append(response.json()["id"])
        elif response.status_code == 503:
            time.sleep(0.5)
        else:
            raise SystemExit(f"unexpected answer {response.status_code}: {response.text}")
        time.sleep(SUBMIT_PAUSE_SECONDS)
    chaos.events.append(f"{len(ids)} jobs submitted")
    return ids


def _monkey(workers: list[Worker], io_workers: list[Worker], redis_server: LocalRedis,
            chaos: Chaos, stop: threading.Event, args: argparse.Namespace) -> None:
    """Kill whole workers and I/O workers at random intervals; restart Redis once and SIGTERM
    a worker once, about a third and a half of the way through the kills."""
    kills = 0
    while not stop.wait(random.uniform(*args.kill_every)) and kills < args.kills:
        victim = random.choice(workers + io_workers)
        if kills == args.kills // 3:
            redis_server.process.kill()  # type: ignore[union-attr]
            redis_server.process.wait()  # type: ignore[union-attr]
            time.sleep(2)
            redis_server.start()
            chaos.events.append("redis SIGKILLed and restarted")
        if kills == args.kills // 2:
            victim.terminate()
            chaos.events.append(f"{victim.name} SIGTERMed")
        elif victim in io_workers:
            chaos.io_kills += 1
            victim.kill()
        else:
            chaos.kills.append(time.time())
            victim.kill()
        kills += 1
        time.sleep(random.uniform(0.5, 3))
        victim.start()
    chaos.events.append(f"{len(chaos.kills)} whole-worker kills, {chaos.io_kills} I/O worker "
                        "kills")


def _quiesce(http: httpx.Client, ids: list[str]) -> dict[str, dict | None]:
    """Each job's last record (None: gone), once every job ended or the wait ran out."""
    deadline = time.monotonic() + QUIESCENCE_SECONDS
    jobs: dict[str, dict | None] = {}
    while True:
        for job_id in ids:
            known = jobs.get(job_id)
            if known and known["status"] in ("completed", "failed"):
                continue
            with suppress(httpx.HTTPError):
                response = http.get(f"/v1/jobs/{job_id}")
                if response.status_code == 200:
                    jobs[job_id] = response.json()
                elif response.status_code == 404:
                    jobs[job_id] = None  # the record is gone: lost
                # anything else (503 while Redis restarts): ask again
        ended = all(job_id in jobs and (jobs[job_id] is None or jobs[job_id]["status"]  # type: ignore[index]
                    in ("completed", "failed")) for job_id in ids)
        if ended or time.monotonic() > deadline:
            return jobs
        time.sleep(1)


def _events(workers: list[Worker]) -> list[str]:
    """The `event` of every line of the workers' JSON logs."""
    found = []
    for worker in workers:
        for log in worker.logs.glob(f"{worker.name}-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                with suppress(json.JSONDecodeError, AttributeError):
                    if event := json.loads(line).get("event"):
                        found.append(event)
    return found


def _completions(workers: list[Worker]) -> Counter[str]:
    """How many times each job was transcribed to the end, from the workers' JSON logs."""
    done: Counter[str] = Counter()
    for worker in workers:
        for log in worker.logs.glob(f"{worker.name}-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                with suppress(json.JSONDecodeError):
                    record = json.loads(line)
                    if record.get("event") == "completed" and record.get("job_id"):
                        done[record["job_id"]] += 1
    return done


def _report(ids: list[str], jobs: dict[str, dict | None], chaos: Chaos,
            workers: list[Worker], seconds: float) -> None:
    lost = [i for i in ids if i in jobs and jobs[i] is None]
    ended = [j for j in jobs.values() if j]
    stuck = [j for j in ended if j["status"] not in ("completed", "failed")]
    failed = Counter(j["error"]["code"] for j in ended if j["status"] == "failed")
    twice = [job_id for job_id, count in _completions(workers).items() if count > 1]
    restarts = _restart_times(ended, chaos.kills)
    print(f"chaos: {'; '.join(chaos.events)}; {seconds:.0f} s in all")
    print(f"submitted   {len(ids)}")
    print(f"completed   {sum(1 for j in ended if j['status'] == 'completed')}")
    print(f"failed      {sum(failed.values())} {dict(failed) if failed else ''}".rstrip())
    print(f"lost        {len(lost)}")
    print(f"stuck       {len(stuck)} {[(j['id'], j['status']) for j in stuck][:5] or ''}".rstrip())
    attempts = [jobs[i]["attempts"] for i in twice if jobs.get(i)]  # type: ignore[index]
    print(f"run twice   {len(twice)}" + (f" (attempts {attempts})" if twice else ""))
    print(f"requeued    {sum(1 for j in ended if j['attempts'] > 1)} jobs ran more than once")
    if restarts:
        print(f"kill-to-restart  n={len(restarts)} p50 {statistics.median(restarts):.1f} s  "
              f"max {max(restarts):.1f} s")


def _await_events(jobs: dict[str, dict | None], hooks: Hooks) -> None:
    """Until every ended job's event was answered 2xx, or `EVENTS_SECONDS` ran out."""
    ended = [j["id"] for j in jobs.values() if j and j["status"] in ("completed", "failed")]
    deadline = time.monotonic() + EVENTS_SECONDS
    while time.monotonic() < deadline:
        with hooks.lock:
            if all(any(status == 200 for _, status in hooks.got.get(i, [])) for i in ended):
                return
        time.sleep(0.5)


def _report_events(ids: list[str], jobs: dict[str, dict | None], hooks: Hooks,
                   io_workers: list[Worker]) -> None:
    ended = [j for j in jobs.values() if j and j["status"] in ("completed", "failed")]
    with hooks.lock:
        got = {job_id: list(seen) for job_id, seen in hooks.got.items()}
    delivered = [j for j in ended if any(s == 200 for _, s in got.get(j["id"], []))]
    twice = [i for i, seen in got.items() if len({event for event, _ in seen}) > 1]
    resent = [i for i, seen in got.items() if sum(s == 200 for _, s in seen) > 1]
    retried = sum(1 for seen in got.values() if any(s == 500 for _, s in seen))
    url_jobs = [j for j in ended if j.get("source_url")]
    lines = Counter(_events(io_workers))
    print(f"url jobs    {len(url_jobs)} ended, "
          f"{sum(1 for j in url_jobs if j['status'] == 'completed')} completed; "
          f"{lines['requeued']} fetches requeued from a killed I/O worker, "
          f"{lines['redelivered']} fetches begun again")
    print(f"webhooks    {len(delivered)} of {len(ended)} ended jobs' events delivered "
          f"({retried} after a first answer of 500)")
    print(f"  lost      {len(ended) - len(delivered)}")
    print(f"  duplicated {len(twice)} (a job with two events)")
    print(f"  re-sent   {len(resent)} (one event answered 2xx twice: a kill between the answer "
          "and its record)")


def _restart_times(jobs: list[dict], kills: list[float]) -> list[float]:
    """For each job that ran more than once: from the last kill before its final start to
    that start (the job's earlier attempt was on the killed worker)."""
    times = []
    for job in jobs:
        if job["attempts"] < 2 or not job.get("started_at"):
            continue
        start = datetime.fromisoformat(job["started_at"]).timestamp()
        before = [k for k in kills if k < start]
        if before:
            times.append(start - before[-1])
    return times


if __name__ == "__main__":
    main()
