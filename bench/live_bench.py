"""Live transcription latency: recordings streamed at 1x real time as PCM16 over `WS /v1/live`,
with 1, 2, 3 and 4 sessions at once on the benchmark's own stack.

Each word's end in the audio comes from a reference alignment (faster-whisper with word
timestamps on the whole recording, offline, here). A session's clock starts when its first
audio chunk is sent; the audio's second `t` is on the wire at `start + t` (chunks of 100 ms,
sent on schedule), so a word ending at `t` and first shown at `arrival` has a latency of
`arrival - start - t`, the chunk's wait included. Words are matched by aligning the session's
text after each event (finals so far, plus the partial for `partial` events) with the
reference words (difflib), so a word counts once it is shown in its place.

Each session has a live worker of its own (a live worker holds one session, with its own
model), so `--sessions 1 2 3 4` starts four. Per concurrency level it prints: word end -> its
`final` (p50, p95), word end -> the first `partial` that shows it, the end lag (from `stop`,
sent right after the last chunk, to `done`: how far behind the stream the finals run at the
end), the live workers' CPU seconds per second of audio, and whether every session kept up
(end lag under 3 s and the finals' median latency in the last third of the stream under 2 s
above the first third's).

    .venv/bin/python bench/live_bench.py                    # 1, 2, 3, 4 sessions
    .venv/bin/python bench/live_bench.py --sessions 1 2 --seconds 20
    .venv/bin/python bench/live_bench.py --sessions 1 --model tiny.en   # a catalogue model
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import os
import statistics
import string
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import websockets
from stack import ROOT, start_api, wait_healthy

from cli.serve import live_worker_command
from shared.config import Settings
from shared.localredis import LocalRedis, stop_process

DATA = ROOT / "tests" / "data"
RECORDINGS = ("jfk.flac", "1089-134686-0000.flac", "LJ001-0001.flac", "LJ001-0003.flac")
GAP_SECONDS = 0.6  # silence between the recordings of a stream
RATE = 16000
CHUNK_SECONDS = 0.1
KEEPS_UP_END_LAG_S = 3.0
KEEPS_UP_DRIFT_S = 2.0


@dataclass
class Word:
    text: str
    end: float  # seconds into the stream


@dataclass
class Session:
    start: float = 0.0
    stop_sent: float = 0.0
    done_at: float | None = None
    error: str | None = None
    final_at: dict[int, float] = field(default_factory=dict)  # reference word -> arrival
    partial_at: dict[int, float] = field(default_factory=dict)


_PUNCTUATION = str.maketrans("", "", string.punctuation + "\u2018\u2019\u201c\u201d")


def normal(word: str) -> str:
    return word.lower().strip().translate(_PUNCTUATION)


def stream_audio(seconds: float) -> np.ndarray:
    """The recordings of tests/data one after the other, with pauses, cut to `seconds`."""
    from faster_whisper import decode_audio

    gap = np.zeros(int(GAP_SECONDS * RATE), dtype=np.float32)
    parts = [np.concatenate([decode_audio(str(DATA / name)), gap]) for name in RECORDINGS]
    audio = np.concatenate(parts)
    audio = audio[: int(seconds * RATE)] if seconds else audio
    return (np.clip(audio, -1, 1) * 32767).astype("<i2")


def reference_words(samples: np.ndarray) -> list[Word]:
    """Where each word of the stream ends, from faster-whisper's word timestamps."""
    from worker.model import get_model

    model = get_model(Settings())
    segments, _ = model.transcribe(samples.astype(np.float32) / 32768, language="en",
                                   word_timestamps=True, vad_filter=False)
    words = [Word(normal(w.word), float(w.end)) for s in segments for w in (s.words or [])]
    return [w for w in words if w.text]


def matched(reference: list[str], shown: list[str]) -> list[int]:
    """The reference words that `shown` (the session's text so far) has in their place."""
    matcher = difflib.SequenceMatcher(a=reference, b=shown, autojunk=False)
    return [block.a + i for block in matcher.get_matching_blocks() for i in range(block.size)]


# The catalogue model the sessions ask for (`--model`); None: the server's default.
MODEL: str | None = None


async def run_session(url: str, pcm: bytes, reference: list[str], session: Session) -> None:
    async with websockets.connect(f"{url}/v1/live", max_size=None) as socket:
        await socket.send(json.dumps({"type": "start", "encoding": "pcm_s16le",
                                      "sample_rate": RATE, "language": "en",
                                      "task": "transcribe", "word_timestamps": False,
                                      **({"model": MODEL} if MODEL else {})}))
        started = json.loads(await socket.recv())
        if started.get("type") != "started":
            session.error = f"{started.get('code')}: {started.get('message')}"
            return
        sender = asyncio.create_task(_send(socket, pcm, session))
        try:
            await _receive(socket, reference, session)
        finally:
            sender.cancel()


async def _send(socket: websockets.ClientConnection, pcm: bytes, session: Session) -> None:
    step = int(CHUNK_SECONDS * RATE) * 2
    session.start = time.monotonic()
    for number, offset in enumerate(range(0, len(pcm), step)):
        delay = session.start + number * CHUNK_SECONDS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await socket.send(pcm[offset:offset + step])
    await asyncio.sleep(max(0.0, session.start + len(pcm) / 2 / RATE - time.monotonic()))
    session.stop_sent = time.monotonic()
    await socket.send(json.dumps({"type": "stop"}))


async def _receive(socket: websockets.ClientConnection, reference: list[str],
                   session: Session) -> None:
    finals: list[str] = []
    async for raw in socket:
        message = json.loads(raw)
        now = time.monotonic()
        kind = message.get("type")
        if kind == "final":
            finals += [normal(w) for w in message["segment"]["text"].split()]
            _first_seen(session.final_at, matched(reference, [w for w in finals if w]), now)
        elif kind == "partial":
            shown = finals + [normal(w) for w in message.get("text", "").split()]
            _first_seen(session.partial_at, matched(reference, [w for w in shown if w]), now)
        elif kind == "done":
            session.done_at = now
            return
        elif kind == "error":
            session.error = f"{message.get('code')}: {message.get('message')}"
            return


def _first_seen(seen: dict[int, float], words: list[int], now: float) -> None:
    for index in words:
        seen.setdefault(index, now)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def latencies(session: Session, seen: dict[int, float], words: list[Word]) -> list[float]:
    return [seen[i] - session.start - words[i].end for i in sorted(seen)]


def keeps_up(session: Session, words: list[Word], seconds: float) -> bool:
    if session.error or session.done_at is None:
        return False
    early = [session.final_at[i] - session.start - w.end for i, w in enumerate(words)
             if i in session.final_at and w.end < seconds / 3]
    late = [session.final_at[i] - session.start - w.end for i, w in enumerate(words)
            if i in session.final_at and w.end > 2 * seconds / 3]
    drift = statistics.median(late) - statistics.median(early) if early and late else 0.0
    return session.done_at - session.stop_sent < KEEPS_UP_END_LAG_S and drift < KEEPS_UP_DRIFT_S


def cpu_seconds(workers: list[subprocess.Popen[bytes]]) -> float:
    """User and system CPU time of the live workers so far."""
    total = 0
    for worker in workers:
        fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def start_live_workers(
    env: dict[str, str], logs: Path, count: int
) -> list[subprocess.Popen[bytes]]:
    """`count` live workers (one session each), once each has its model loaded and warm."""
    workers, paths = [], []
    for number in range(1, count + 1):
        paths.append(logs / f"live-worker-{number}.log")
        workers.append(subprocess.Popen(live_worker_command(number), env=env, cwd=ROOT,
                                        stdout=paths[-1].open("wb"), stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 300
    for worker, path in zip(workers, paths, strict=True):
        while "live worker warmed up" not in path.read_text(errors="replace"):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a live worker did not start: {path.read_text()[-2000:]}")
            time.sleep(0.5)
    return workers


async def concurrent(url: str, pcm: bytes, reference: list[str], count: int) -> list[Session]:
    sessions = [Session() for _ in range(count)]
    await asyncio.gather(*(run_session(url, pcm, reference, s) for s in sessions))
    return sessions


def level(
    url: str, workers: list[subprocess.Popen[bytes]], pcm: bytes, words: list[Word], count: int
) -> str:
    seconds = len(pcm) / 2 / RATE
    reference = [w.text for w in words]
    cpu_before = cpu_seconds(workers)
    sessions = asyncio.run(concurrent(url, pcm, reference, count))
    cpu = (cpu_seconds(workers) - cpu_before) / (seconds * count)
    errors = [s.error for s in sessions if s.error]
    finals = [x for s in sessions for x in latencies(s, s.final_at, words)]
    partials = [x for s in sessions for x in latencies(s, s.partial_at, words)]
    lags = [s.done_at - s.stop_sent for s in sessions if s.done_at is not None]
    shown = sum(len(s.final_at) for s in sessions) / (len(words) * count)
    ok = all(keeps_up(s, words, seconds) for s in sessions)

    def stat(values: list[float]) -> str:
        if not values:
            return f"{'-':>6} {'-':>6}"
        return f"{statistics.median(values):>6.2f} {percentile(values, 0.95):>6.2f}"

    line = (f"{count:>8} {stat(finals)} {stat(partials)} {max(lags, default=float('nan')):>7.2f} "
            f"{shown:>6.0%} {cpu:>7.2f} {'yes' if ok else 'no':>8}")
    return line + (f"  errors: {'; '.join(errors)}" if errors else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--seconds", type=float, default=0.0,
                        help="cut each stream to this length (default: the whole ~43 s)")
    parser.add_argument("--model", default=None,
                        help="the catalogue model of the sessions and live workers")
    args = parser.parse_args()
    global MODEL
    MODEL = args.model
    samples = stream_audio(args.seconds)
    words = reference_words(samples)
    with tempfile.TemporaryDirectory(prefix="verbatim-live-") as folder:
        run(Path(folder), args, samples.tobytes(), words)


def run(tmp: Path, args: argparse.Namespace, pcm: bytes, words: list[Word]) -> None:
    redis_server = LocalRedis(tmp / "redis").start()
    env = {**os.environ, "VERBATIM_REDIS_URL": redis_server.url,
           "VERBATIM_DATA_DIR": str(tmp / "data"), "VERBATIM_WORKER_METRICS_PORT": "0"}
    if args.model:  # the live workers warm the model they serve first
        env["VERBATIM_WORKER_MODELS"] = args.model
    api, url = start_api(env, tmp / "api.log")
    workers: list[subprocess.Popen[bytes]] = []
    ws_url = url.replace("http://", "ws://")
    try:
        wait_healthy(url)
        workers = start_live_workers(env, tmp, max(args.sessions))
        asyncio.run(concurrent(ws_url, pcm[: 4 * RATE * 2], [], 1))  # warm-up, untimed
        print(f"model {args.model or 'default'}: "
              f"{len(pcm) / 2 / RATE:.1f} s streams of tests/data speech at 1x as pcm_s16le "
              f"16 kHz, {len(words)} reference words ({os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f} before the runs; API, Redis, live worker and clients "
              "on this host). Latencies in seconds from a word's end.", flush=True)
        print(f"{'sessions':>8} {'final':>6} {'p95':>6} {'partial':>6} {'p95':>6} "
              f"{'end lag':>7} {'words':>6} {'cpu/s':>7} {'keeps up':>8}")
        for count in args.sessions:
            print(level(ws_url, workers, pcm, words, count), flush=True)
    finally:
        for worker in workers:
            worker.terminate()  # all at once: each may first finish its session
        for worker in workers:
            stop_process(worker, 20)
        stop_process(api, 20)
        redis_server.stop()


if __name__ == "__main__":
    main()
