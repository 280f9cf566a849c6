"""Spread benchmark: one long recording decoded sequentially, batched, and spread over one and
two single-thread workers; wall time and WER of each, and the ratios, in one run.

The recording (20 minutes or more) is the LJ Speech passage and the LibriSpeech utterances of
`../shared/audio` (their manifest holds the references), a third of a second apart, repeated
until long enough. Each configuration gets workers of its own (one pool process each) on one
Redis and API, warmed up on `jfk.flac` before the timed job; wall time runs from the upload to
the job's completion. Sequential and batched run one worker as it runs by default
(`--threads`, 0: CTranslate2's choice, every core here); the spread ones one and two workers
of `--spread-threads` (1) each, so that two of them fit the cores one uses.

    .venv/bin/python bench/spread_bench.py                    # 20 min, batch_size 8
    .venv/bin/python bench/spread_bench.py --minutes 30 --batch-size 4 --only spread-1 spread-2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import httpx
import jiwer
import numpy as np
from faster_whisper import decode_audio
from stack import ROOT, Worker, start_api, wait_healthy

from shared.localredis import LocalRedis, stop_process

RATE = 16000
AUDIO = ROOT.parent / "shared" / "audio"
SETS = ["en_ljspeech", "en_librispeech"]
GAP_SECONDS = 0.33


@dataclass(frozen=True)
class Config:
    name: str
    workers: int
    threads: int
    env: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)


def configs(args: argparse.Namespace) -> list[Config]:
    whole = {"VERBATIM_SPLIT_SECONDS": "0"}
    spread = {"VERBATIM_SPLIT_SECONDS": f"{args.split_seconds:g}"}
    if args.spread_window_seconds:
        spread["VERBATIM_SPREAD_WINDOW_SECONDS"] = f"{args.spread_window_seconds:g}"
    return [
        Config("sequential", 1, args.threads, whole),
        Config("batched", 1, args.threads, whole, {"batch_size": str(args.batch_size)}),
        Config("spread-1", 1, args.spread_threads, spread),
        Config("spread-2", 2, args.spread_threads, spread),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0,
                        help="VERBATIM_CPU_THREADS of sequential and batched")
    parser.add_argument("--spread-threads", type=int, default=1,
                        help="VERBATIM_CPU_THREADS of each spread worker")
    parser.add_argument("--split-seconds", type=float, default=600)
    parser.add_argument("--spread-window-seconds", type=float,
                        help="VERBATIM_SPREAD_WINDOW_SECONDS (default: the server's)")
    parser.add_argument("--only", nargs="+", help="configurations to run (default: all)")
    parser.add_argument("--keep", type=Path, help="a folder to keep the logs in")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.keep, args)
        return
    with tempfile.TemporaryDirectory(prefix="verbatim-spread-") as tmp:
        run(Path(tmp), args)


def recording(path: Path, minutes: float) -> tuple[Path, str]:
    """The benchmark recording as FLAC, and its reference transcript."""
    pieces, references = [], []
    for name in SETS:
        entries = json.loads((AUDIO / "manifest.json").read_text())
        for entry in sorted(entries, key=lambda e: e["file"]):
            if entry["file"].startswith(f"{name}/") and entry["reference"]:
                pieces.append(decode_audio(str(AUDIO / entry["file"])))
                references.append(entry["reference"])
    gap = np.zeros(int(GAP_SECONDS * RATE), np.float32)
    once = np.concatenate([part for piece in pieces for part in (piece, gap)])
    repeats = int(np.ceil(minutes * 60 * RATE / once.size))
    samples = (np.clip(np.tile(once, repeats), -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=RATE, layout="mono")
        for start in range(0, samples.size, 60 * RATE):
            frame = av.AudioFrame.from_ndarray(samples[start:start + 60 * RATE].reshape(1, -1),
                                               format="s16", layout="mono")
            frame.sample_rate, frame.pts = RATE, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path, " ".join(references * repeats)


def normalise(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower().replace("-", " ")).split())


def run(tmp: Path, args: argparse.Namespace) -> None:
    path, reference = recording(tmp / "long.flac", args.minutes)
    seconds = av.open(str(path)).duration / 1e6
    print(f"recording: {seconds / 60:.1f} min, {len(reference.split())} reference words; "
          f"cpu_threads {args.threads} (spread: {args.spread_threads} a worker), batch_size "
          f"{args.batch_size}, split past {args.split_seconds:g} s, spread windows of at most "
          f"{args.spread_window_seconds or 'the default'} s", flush=True)
    server = LocalRedis(tmp / "redis").start()
    env = {**os.environ, "VERBATIM_REDIS_URL": server.url, "VERBATIM_DATA_DIR": str(tmp / "data"),
           "VERBATIM_LOG_FORMAT": "text"}
    api, url = start_api(env, tmp / "api.log")
    results: dict[str, tuple[float, float]] = {}
    try:
        wait_healthy(url)
        with httpx.Client(base_url=url, timeout=120) as http:
            for config in configs(args):
                if args.only and config.name not in args.only:
                    continue
                wall, text = measure(http, config, env, tmp, path)
                results[config.name] = (wall, jiwer.wer(normalise(reference), normalise(text)))
                print(f"{config.name:>11}: {wall:7.1f} s wall, RTF {wall / seconds:.3f}, "
                      f"WER {results[config.name][1]:.4f}", flush=True)
    finally:
        stop_process(api, 20)
        server.stop()
    report(results)


def measure(http: httpx.Client, config: Config, env: dict[str, str], tmp: Path,
            path: Path) -> tuple[float, str]:
    """Wall seconds of the recording's job under `config`, and its transcript's text."""
    env = env | config.env | {"VERBATIM_CPU_THREADS": str(config.threads)}
    workers = [Worker(f"{config.name}-{n}", env, tmp) for n in range(config.workers)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            wait_loaded(tmp / f"{worker.name}-1.log")
        transcribe(http, ROOT / "tests" / "data" / "jfk.flac", {})  # VAD and decoder warm
        started = time.monotonic()
        job = transcribe(http, path, config.fields)
        wall = time.monotonic() - started
        return wall, http.get(f"/v1/jobs/{job['id']}/transcript.json").json()["text"]
    finally:
        for worker in workers:
            worker.kill()


def wait_loaded(log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while "model loaded" not in (log.read_text(errors="replace") if log.exists() else ""):
        if time.monotonic() > deadline:
            raise SystemExit(f"no model loaded in {log}")
        time.sleep(0.2)


def transcribe(http: httpx.Client, path: Path, fields: dict[str, str]) -> dict:
    with path.open("rb") as f:
        job = http.post("/v1/jobs", files={"file": (path.name, f)}, data=fields).json()
    while job["status"] not in ("completed", "failed"):
        time.sleep(0.2)
        job = http.get(f"/v1/jobs/{job['id']}").json()
    if job["status"] != "completed":
        raise SystemExit(f"{path.name}: {job['error']}")
    return job


def report(results: dict[str, tuple[float, float]]) -> None:
    for fast, slow, goal in (("batched", "sequential", 1.6), ("spread-2", "spread-1", 1.8)):
        if fast in results and slow in results:
            ratio = results[slow][0] / results[fast][0]
            worse = results[fast][1] - results[slow][1]
            print(f"{fast} vs {slow}: {ratio:.2f}x faster (goal >= {goal}x), "
                  f"WER {worse:+.4f}")


if __name__ == "__main__":
    main()
