"""How far the control plane goes: API processes, one Redis and Celery, without the model.

    .venv/bin/python bench/capacity_bench.py [--api-processes 2] [--seconds 5]
        [--levels 1,4,16,64] [--upload wav|flac] [--decode-seconds 0.2] [--worker-threads 32]
        [--smoke]

A private redis-server, `--api-processes` uvicorn processes on one port, and wrk (Debian package
`wrk`) as the client. The worker is the real Celery worker with its decoding step replaced by a
fixed wait (bench/fixed_wait_worker.py): the figures are the queue's and the store's, not the
model's. Three phases, each at rising client concurrency (`--levels`, wrk connections) until
the rate stops rising:

1. accept: short uploads (1 s of audio as WAV or FLAC) to `POST /v1/jobs` with no worker: jobs
   accepted per second, latency, and the CPU the API and Redis spent per job;
2. lifecycle: the same with the worker running: per job over its whole life (creation, queue,
   receipt, start, progress, events, completion), Redis commands, bytes in and out, CPU and
   memory, and the queue latency (started_at - created_at), the queue drained after each level;
3. status: `GET /v1/jobs/{id}` of a completed job: reads per second.

On a shared machine rates move with everything else running; CPU per job far less. The load
average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import av
import numpy as np
import redis
from stack import ROOT, wait_healthy

from cli.serve import api_command
from shared.localredis import LocalRedis, free_port, stop_process
from shared.queue import queue_depth
from shared.schemas import JobStatus
from shared.state.jobs import JobStore

TICKS = os.sysconf("SC_CLK_TCK")
BOUNDARY = "capacitybenchboundary"
POST_SCRIPT = """
local file = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary={boundary}"
"""


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and its live children (uvicorn's worker processes)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def upload_body(folder: Path, kind: str) -> Path:
    """A multipart body holding 1 s of 16 kHz noise as WAV (32 KB) or FLAC (the API probes
    real media: FFmpeg's analysis of a WAV costs about 2 ms of CPU, of a FLAC 0.4 ms)."""
    audio = folder / f"short.{kind}"
    noise = np.random.default_rng(7).normal(0, 3000, 16000).astype(np.int16)
    if kind == "wav":
        with wave.open(str(audio), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(noise.tobytes())
    else:
        with av.open(str(audio), "w") as out:
            stream = out.add_stream("flac", rate=16000, layout="mono")
            frame = av.AudioFrame.from_ndarray(noise.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, 0
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{audio.name}\"\r\nContent-Type: audio/{kind}\r\n\r\n").encode()
    body = folder / "body"
    body.write_bytes(head + audio.read_bytes() + f"\r\n--{BOUNDARY}--\r\n".encode())
    return body


@dataclass
class Run:
    requests: int
    bad: int
    rps: float
    p50_ms: float
    p99_ms: float


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> Run:
    command = ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d",
               f"{seconds}s", "--latency", "--timeout", "10s"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def latency(share: str) -> float:
        found = re.search(rf"\s{share}%\s+([\d.]+)(us|ms|s)", out)
        return float(found.group(1)) * units[found.group(2)] if found else float("nan")

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Run(requests, int(bad.group(1)) if bad else 0, rps, latency("50"), latency("99"))


class RedisMeter:
    """Redis's own counters: commands, bytes in and out, CPU and memory."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def read(self) -> dict[str, float]:
        info = self.client.info("all")
        commands = sum(v["calls"] for k, v in info.items() if k.startswith("cmdstat_"))
        return {"commands": commands, "net": info["total_net_input_bytes"]
                + info["total_net_output_bytes"], "cpu": info["used_cpu_sys"]
                + info["used_cpu_user"], "memory": info["used_memory"]}


@dataclass
class Stack:
    url: str
    api: subprocess.Popen[bytes]
    redis_pid: int
    client: redis.Redis
    env: dict[str, str]
    folder: Path


def start_stack(folder: Path, server: LocalRedis, processes: int) -> Stack:
    env = {**os.environ, "VERBATIM_REDIS_URL": server.url, "VERBATIM_AUTH": "off",
           "VERBATIM_DATA_DIR": str(folder / "data"), "VERBATIM_LOG_LEVEL": "WARNING",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench")])}
    port = free_port()
    command = [*api_command("127.0.0.1", port), "--workers", str(processes)]
    api = subprocess.Popen(command, env=env, cwd=ROOT, stdout=(folder / "api.log").open("wb"),
                           stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url)
    assert server.process is not None
    return Stack(url, api, server.process.pid, redis.Redis.from_url(server.url), env, folder)


def start_worker(stack: Stack, threads: int, decode: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "celery", "-A", "fixed_wait_worker:app", "worker",
               "--pool", "threads", "--concurrency", str(threads), "--without-gossip",
               "--without-mingle", "--loglevel", "WARNING", "--hostname", "bench@%h"]
    env = stack.env | {"VERBATIM_BENCH_DECODE_SECONDS": str(decode), "REMAP_SIGTERM": "SIGQUIT",
                       "VERBATIM_WORKER_METRICS_PORT": "0", "VERBATIM_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(command, env=env, cwd=ROOT,
                            stdout=(stack.folder / "worker.log").open("wb"),
                            stderr=subprocess.STDOUT)


def completed_ids(client: redis.Redis) -> set[bytes]:
    return set(client.zrange(JobStore.index_key(JobStatus.completed), 0, -1))


def queue_latencies(client: redis.Redis, ids: set[bytes]) -> list[float]:
    """started_at - created_at of each job, in ms (the fields are JSON ISO timestamps)."""
    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(JobStore.job_key(job_id.decode()), "created_at", "started_at")
        rows = pipe.execute()
    return [(datetime.fromisoformat(s.decode().strip('"'))
             - datetime.fromisoformat(c.decode().strip('"'))).total_seconds() * 1000
            for c, s in rows if c and s]


def drain(client: redis.Redis, worker: subprocess.Popen[bytes], target: int,
          timeout: float) -> float:
    """Seconds until `target` jobs in all are completed and nothing is queued or running."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if worker.poll() is not None:
            raise SystemExit("the worker exited; see worker.log")
        counts = JobStore(client).count_by_status()
        if counts[JobStatus.failed]:
            raise SystemExit(f"{counts[JobStatus.failed]} jobs failed; see worker.log")
        if (counts[JobStatus.completed] >= target and not queue_depth(client)
                and not counts[JobStatus.processing]):
            return time.monotonic() - started
        time.sleep(0.2)
    raise SystemExit(f"the queue did not drain in {timeout:.0f} s")


def accept_phase(stack: Stack, script: Path, levels: list[int], seconds: int, kind: str
                 ) -> None:
    print(f"1. accept: POST /v1/jobs, 1 s {kind.upper()}, no worker running")
    meter = RedisMeter(stack.client)
    for connections in levels:
        before, api_cpu = meter.read(), tree_cpu(stack.api.pid)
        run = wrk(f"{stack.url}/v1/jobs", seconds, connections, script)
        after, accepted = meter.read(), run.requests - run.bad
        per = max(accepted, 1)
        print(f"  c={connections:<3} {accepted / seconds:7.0f} jobs/s  refused {run.bad:>4}  "
              f"p50 {run.p50_ms:7.1f} ms  p99 {run.p99_ms:7.1f} ms  per job: API CPU "
              f"{1e3 * (tree_cpu(stack.api.pid) - api_cpu) / per:5.2f} ms, Redis CPU "
              f"{1e6 * (after['cpu'] - before['cpu']) / per:4.0f} us, "
              f"{(after['commands'] - before['commands']) / per:4.1f} commands")


def lifecycle_phase(stack: Stack, script: Path, levels: list[int], seconds: int,
                    threads: int, decode: float) -> None:
    print(f"2. lifecycle: the same with the fixed-wait worker ({threads} threads, "
          f"{decode:g} s a job): per job over its whole life")
    worker = start_worker(stack, threads, decode)
    meter = RedisMeter(stack.client)
    try:
        backlog = JobStore(stack.client).count_by_status()[JobStatus.queued]
        took = drain(stack.client, worker, len(completed_ids(stack.client)) + backlog,
                     timeout=120 + backlog / 20)
        print(f"  the accept phase's {backlog} queued jobs drained in {took:.1f} s: "
              f"{backlog / took:.0f} jobs/s")
        for connections in levels:
            seen, before = completed_ids(stack.client), meter.read()
            worker_cpu, api_cpu = tree_cpu(worker.pid), tree_cpu(stack.api.pid)
            run = wrk(f"{stack.url}/v1/jobs", seconds, connections, script)
            accepted = run.requests - run.bad
            tail = drain(stack.client, worker, len(seen) + accepted,
                         timeout=120 + accepted / 20)
            after = meter.read()
            worker_cpu = tree_cpu(worker.pid) - worker_cpu
            api_cpu = tree_cpu(stack.api.pid) - api_cpu
            finished = completed_ids(stack.client) - seen
            waits = sorted(queue_latencies(stack.client, finished))
            per = max(len(finished), 1)
            p99 = waits[int(0.99 * (len(waits) - 1))] if waits else float("nan")
            print(f"  c={connections:<3} {accepted / seconds:7.0f} jobs/s accepted, "
                  f"{len(finished) / (seconds + tail):6.0f} jobs/s done  queue wait p50 "
                  f"{statistics.median(waits) if waits else float('nan'):7.0f} ms p99 "
                  f"{p99:7.0f} ms  Redis per job: "
                  f"{(after['commands'] - before['commands']) / per:5.1f} commands, "
                  f"{(after['net'] - before['net']) / per / 1024:5.1f} KiB, "
                  f"{1e6 * (after['cpu'] - before['cpu']) / per:4.0f} us CPU, "
                  f"{(after['memory'] - before['memory']) / per / 1024:4.1f} KiB kept; "
                  f"CPU: API {1e3 * api_cpu / per:4.1f} ms, "
                  f"worker {1e3 * worker_cpu / per:4.1f} ms")
    finally:
        stop_process(worker, 30)


def status_phase(stack: Stack, levels: list[int], seconds: int) -> None:
    print("3. status: GET /v1/jobs/{id} of a completed job")
    job_id = next(iter(completed_ids(stack.client))).decode()
    for connections in levels:
        before, api_cpu = RedisMeter(stack.client).read(), tree_cpu(stack.api.pid)
        run = wrk(f"{stack.url}/v1/jobs/{job_id}", seconds, connections)
        after, api_cpu = RedisMeter(stack.client).read(), tree_cpu(stack.api.pid) - api_cpu
        if run.bad:
            raise SystemExit(f"status reads answered other than 200: {run.bad}")
        redis_us = 1e6 * (after["cpu"] - before["cpu"]) / max(run.requests, 1)
        print(f"  c={connections:<3} {run.rps:7.0f} reads/s  p50 {run.p50_ms:6.1f} ms  "
              f"p99 {run.p99_ms:6.1f} ms  per read: API CPU {1e6 * api_cpu / run.requests:4.0f}"
              f" us, Redis CPU {redis_us:3.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-processes", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=5, help="length of one level")
    parser.add_argument("--levels", default="1,4,16,64", help="wrk connections, rising")
    parser.add_argument("--decode-seconds", type=float, default=0.2)
    parser.add_argument("--worker-threads", type=int, default=32)
    parser.add_argument("--upload", choices=["wav", "flac"], default="wav",
                        help="the short upload's format (1 s either way)")
    parser.add_argument("--smoke", action="store_true", help="one short level per phase")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    seconds = args.seconds
    if args.smoke:
        levels, seconds = [2], 1
    print(f"capacity_bench: the real API ({args.api_processes} processes), Redis and Celery; "
          "the worker's decoding step is a FIXED WAIT (the queue and the store are measured, "
          f"not the model). {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as folder, LocalRedis(Path(folder)) as server:
        tmp = Path(folder)
        body = upload_body(tmp, args.upload)
        script = tmp / "post.lua"
        script.write_text(POST_SCRIPT.format(body=body, boundary=BOUNDARY))
        stack = start_stack(tmp, server, args.api_processes)
        try:
            accept_phase(stack, script, levels, seconds, args.upload)
            lifecycle_phase(stack, script, levels, seconds, args.worker_threads,
                            args.decode_seconds)
            status_phase(stack, levels, seconds)
        finally:
            stop_process(stack.api, 10)
            stack.client.close()
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
