"""Quality benchmark (issue 11): WER or CER per set of recordings, with the code-switching
mode off and on, through the running service, with the time each took; and what a minute of
noise and of tones costs against a minute of speech.

    .venv/bin/python bench/quality_bench.py                    # ../shared/audio (or tests/data)
    .venv/bin/python bench/quality_bench.py FOLDER [FOLDER...]  # each with a manifest.json

A folder's `manifest.json` lists entries with `file` (relative to the folder), `language`
and `reference` (null: timed and checked, not scored), as ../shared/audio's does. A set is an
entry's first folder (`en_ljspeech/...`), else the folder itself. Chinese, Japanese, Korean
and Thai are scored by characters (CER), every other language by words (WER), each over the
set's text joined (corpus-level). Every job's cues are checked to lie inside its audio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import av
import httpx
import jiwer
import numpy as np
from faster_whisper import decode_audio
from stack import ROOT, Worker, start_api, wait_ready

from shared.localredis import LocalRedis

CHARACTER_SCORED = {"zh", "yue", "ja", "ko", "th"}
MODES = {"off": "false", "on": "true"}


def normalise(text: str, by_characters: bool) -> str:
    text = jiwer.RemovePunctuation()(text.lower().replace("-", " "))
    return "".join(text.split()) if by_characters else " ".join(text.split())


def entries(folders: list[Path]) -> list[dict]:
    found = []
    for folder in folders:
        for entry in json.loads((folder / "manifest.json").read_text()):
            parts = Path(entry["file"]).parts
            found.append(entry | {"path": folder / entry["file"],
                                  "set": parts[0] if len(parts) > 1 else folder.name})
    return found


def run_job(http: httpx.Client, path: Path, **fields: str) -> tuple[dict, dict, float]:
    """The finished job, its transcript and the worker's seconds on it."""
    with path.open("rb") as f:
        job = http.post("/v1/jobs", files={"file": (path.name, f)}, data=fields).json()
    while job["status"] not in ("completed", "failed"):
        time.sleep(0.1)
        job = http.get(f"/v1/jobs/{job['id']}").json()
    if job["status"] == "failed":
        raise SystemExit(f"{path}: {job['error']}")
    transcript = http.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    seconds = (datetime.fromisoformat(job["finished_at"])
               - datetime.fromisoformat(job["started_at"])).total_seconds()
    return job, transcript, seconds


def outside(transcript: dict, duration: float) -> int:
    """Cues not inside [0, duration] or starting before the one before them."""
    bad, earlier = 0, 0.0
    for s in transcript["segments"]:
        bad += not (earlier <= s["start"] <= s["end"] <= duration + 0.001)
        earlier = s["start"]
    return bad


def score(http: httpx.Client, items: list[dict]) -> None:
    rows: dict[tuple[str, str], dict] = defaultdict(lambda: defaultdict(list))
    for item in items:
        for mode, value in MODES.items():
            job, transcript, seconds = run_job(http, item["path"], multilingual=value)
            row = rows[item["set"], mode]
            row["seconds"].append(seconds)
            row["audio"].append(job["audio_duration"])
            row["outside"].append(outside(transcript, job["audio_duration"]))
            row["languages"].extend(job["languages"] or [])
            if item["reference"]:
                row["references"].append(item["reference"])
                row["hypotheses"].append(transcript["text"])
                row["language"].append(item["language"])
            print(f"  {item['set']}/{Path(item['file']).name} {mode}: {seconds:.1f} s "
                  f"{job['languages']}", file=sys.stderr)
    print(f"{'set':<22}{'mode':<6}{'files':>6}{'audio s':>9}{'worker s':>10}{'RTF':>7}"
          f"{'score':>7}{'value':>8}{'outside':>9}  languages")
    for (name, mode), row in sorted(rows.items()):
        by_characters = bool(row["language"]) and row["language"][0] in CHARACTER_SCORED
        value, metric = "-", "-"
        if row["references"]:
            refs = [normalise(t, by_characters) for t in row["references"]]
            hyps = [normalise(t, by_characters) for t in row["hypotheses"]]
            metric = "CER" if by_characters else "WER"
            value = f"{(jiwer.cer if by_characters else jiwer.wer)(refs, hyps):.4f}"
        audio, seconds = sum(row["audio"]), sum(row["seconds"])
        print(f"{name:<22}{mode:<6}{len(row['audio']):>6}{audio:>9.1f}{seconds:>10.1f}"
              f"{seconds / audio:>7.3f}{metric:>7}{value:>8}{sum(row['outside']):>9}  "
              f"{','.join(sorted(set(row['languages']))) or '-'}")


def write_flac(path: Path, samples: np.ndarray) -> Path:
    """float samples in [-1, 1] at 16 kHz as a mono FLAC file."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1), format="s16",
            layout="mono")
        frame.sample_rate = 16000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def non_speech(http: httpx.Client, folder: Path, speech: Path | None) -> None:
    """A minute of white noise and of tones, VAD off and on, against a minute of speech."""
    t = np.arange(16000 * 60) / 16000
    tones = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 660 * t) * (t % 2 < 1)
    files = {"noise": write_flac(folder / "noise.flac",
                                 np.random.default_rng(11).normal(0, 0.02, t.size)),
             "tones": write_flac(folder / "tones.flac", tones)}
    if speech is not None:
        files["speech (LJ passage)"] = speech
    print(f"\n{'60 s of':<22}{'vad':<6}{'worker s':>10}{'segments':>10}{'words':>7}")
    for name, path in files.items():
        for vad in ("false", "true"):
            job, transcript, took = run_job(http, path, vad_filter=vad)
            scale = 60 / job["audio_duration"]
            print(f"{name:<22}{vad:<6}{took * scale:>10.1f}{len(transcript['segments']):>10}"
                  f"{len(transcript['text'].split()):>7}")


def minute_of_speech(items: list[dict], folder: Path) -> Path | None:
    """The first minute of the LJ Speech passage, to time against non-speech."""
    parts = [decode_audio(str(i["path"])) for i in items if i["set"] == "en_ljspeech"]
    if not parts:
        return None
    return write_flac(folder / "speech.flac", np.concatenate(parts)[:60 * 16000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ROOT.parent / "shared" / "audio"
    parser.add_argument("folders", nargs="*", type=Path,
                        default=[default if default.exists() else ROOT / "tests" / "data"])
    parser.add_argument("--no-non-speech", action="store_true", help="Skip the noise timing.")
    args = parser.parse_args()
    items = entries(args.folders)
    with tempfile.TemporaryDirectory() as tmp, LocalRedis(Path(tmp) / "redis") as redis_:
        env = {**os.environ, "VERBATIM_REDIS_URL": redis_.url,
               "VERBATIM_DATA_DIR": str(Path(tmp) / "data")}
        api, url = start_api(env, Path(tmp) / "api.log")
        worker = Worker("quality", env, Path(tmp))
        worker.start()
        try:
            with httpx.Client(base_url=url, timeout=60) as http:
                wait_ready(http)
                run_job(http, items[0]["path"])  # the worker's lazy model load, untimed
                started = time.perf_counter()
                score(http, items)
                if not args.no_non_speech:
                    non_speech(http, Path(tmp), minute_of_speech(items, Path(tmp)))
                print(f"\ntotal wall time {time.perf_counter() - started:.0f} s, "
                      f"{os.cpu_count()} CPUs")
        finally:
            worker.terminate()
            api.terminate()
            api.wait()


if __name__ == "__main__":
    main()
