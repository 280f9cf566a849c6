"""Unauthenticated WebSocket floods against `WS /v1/live` (issue 26): `/healthz` latency and the
API's memory while 100 oversized or malformed frames arrive from clients without a valid key.

Starts Redis and the API (keys required, default live settings, so frames are bounded at
256 KiB by `--ws-max-size`) on loopback, then sends, from 4 clients at once, 100 frames in
turn: a `start` padded to `--frame-mib` MiB, the same with a wrong `access_token`, that many
bytes of `{` (not JSON), that many bytes of audio before `start`, and an 8 KB `start` (under the
frame limit, over the start message's). A poller asks `/healthz` every 20 ms meanwhile, and
for `--baseline-seconds` before with no flood (the machine's own noise). Prints how each frame
was refused, `/healthz` p50/p99/max idle and under the flood, the API's RSS before and after,
and the CPU time the API spent during the flood (the clients share the machine: on a busy
2-core host their sending alone delays `/healthz`).

    .venv/bin/python bench/live_abuse_bench.py                 # 16 MiB frames, as in the issue
    .venv/bin/python bench/live_abuse_bench.py --frame-mib 4
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from stack import start_api, wait_healthy
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from shared.localredis import LocalRedis, stop_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frame-mib", type=float, default=16.0)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verbatim-live-abuse-") as tmp:
        run(Path(tmp), args)


def _frames(size: int, count: int) -> list[tuple[str, str | bytes]]:
    padded = json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000,
                         "language": "en" + " " * size})
    over_start = json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000,
                             "colour": "x" * 8000})
    kinds: list[tuple[str, str | bytes]] = [
        ("", padded), ("?access_token=vb_" + "x" * 40, padded), ("", "{" * size),
        ("", b"\x00" * size), ("", over_start),
    ]
    return [kinds[i % len(kinds)] for i in range(count)]


def _send(url: str, frame: str | bytes) -> str:
    try:
        with connect(url, open_timeout=10, close_timeout=10, max_size=None) as ws:
            try:
                ws.send(frame)
                event = json.loads(ws.recv(timeout=60))
            except ConnectionClosed as exc:
                return f"close {exc.rcvd.code if exc.rcvd else 'none'}"
            return f"{event['type']} {event.get('code', '')}".strip()
    except (InvalidHandshake, OSError) as exc:
        return f"refused ({type(exc).__name__})"


def _poller(url: str, stop: Any, results: Any) -> None:
    """In a process of its own: `/healthz` every 20 ms until `stop`; puts the sorted ms."""
    latencies = []
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            began = time.perf_counter()
            http.get("/healthz")
            latencies.append(1000 * (time.perf_counter() - began))
            time.sleep(0.02)
    results.put(sorted(latencies))


def _poll(url: str, seconds: float) -> list[float]:
    context = multiprocessing.get_context("spawn")
    results, stop = context.Queue(), context.Event()
    poller = context.Process(target=_poller, args=(url, stop, results))
    poller.start()
    time.sleep(seconds)
    stop.set()
    ms: list[float] = results.get(timeout=60)
    poller.join()
    return ms


def _figures(ms: list[float]) -> str:
    if not ms:
        return "n=0"
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"n={len(ms)} p50 {statistics.median(ms):.1f} ms  p99 {p99:.1f} ms  "
            f"max {ms[-1]:.1f} ms")


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(tmp: Path, args: argparse.Namespace) -> None:
    server = LocalRedis(tmp / "redis").start()
    env = {**os.environ, "VERBATIM_REDIS_URL": server.url, "VERBATIM_DATA_DIR": str(tmp / "data"),
           "VERBATIM_AUTH": "required"}
    api, url = start_api(env, tmp / "api.log")
    try:
        wait_healthy(url)
        frames = _frames(int(args.frame_mib * 1024 * 1024), args.frames)
        # The poller is a process of its own: in this one it would wait for the GIL behind
        # the clients that build and mask the frames. It polls with no flood first: on a
        # shared machine `/healthz` is not free.
        idle = _poll(url, args.baseline_seconds)
        before, cpu_before = _rss_mib(api.pid), _cpu_seconds(api.pid)
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        stop = context.Event()
        poller = context.Process(target=_poller, args=(url, stop, results))
        poller.start()
        base = url.replace("http://", "ws://") + "/v1/live"
        began = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            answers = Counter(pool.map(lambda f: _send(base + f[0], f[1]), frames))
        took = time.monotonic() - began
        stop.set()
        ms = results.get(timeout=60)
        poller.join()
        after, cpu = _rss_mib(api.pid), _cpu_seconds(api.pid) - cpu_before
    finally:
        stop_process(api, 20)
        server.stop()
    print(f"{args.frames} unauthenticated frames of up to {args.frame_mib:g} MiB in {took:.1f} s")
    print(f"refusals    {dict(answers)}")
    print(f"/healthz    idle:  {_figures(idle)}")
    print(f"/healthz    flood: {_figures(ms)}")
    print(f"API RSS     {before:.0f} MiB before, {after:.0f} MiB after; API CPU during the "
          f"flood {cpu:.2f} s")


if __name__ == "__main__":
    main()
