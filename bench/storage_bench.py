"""Media storage benchmark: `local` against `s3` (a real SeaweedFS on loopback).

Uploads: for each store, one API process (no worker: the upload path alone) on a Redis of its
own receives a 10 MB and a 500 MB WAV; printed are the time to the 202, the API's peak
resident memory during each upload (its count reset just before, Linux `clear_refs`) and the
CPU seconds the API and the store spent on it.

Where the time goes: the largest file put straight into the store by boto3 with no API in
between, first as the service sent its parts before (8 MiB, one at a time, a SHA-256 of each in
its signature), then with one change at a time, with the CPU seconds boto3 and the store spent;
with `--profile-store`, the functions the store spent its CPU in (SeaweedFS's own profile).

Spread job: for each store, the API and two workers (one pool process each) transcribe a
recording of about 64 s spread over 30-second windows; printed is its wall time from the POST
to `completed`, after a warm-up job.

    .venv/bin/python bench/storage_bench.py                   # all three parts
    .venv/bin/python bench/storage_bench.py --sizes 10 100    # other upload sizes (MB)
    .venv/bin/python bench/storage_bench.py --no-spread --profile-store
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import sys
import tempfile
import time
import wave
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
from botocore.config import Config
from stack import ROOT, Worker, start_api, wait_healthy, wait_ready

sys.path.insert(0, str(ROOT / "tests"))  # the tests' SeaweedFS launcher
from objectstore import ACCESS_KEY_ID, BUCKET, SECRET_ACCESS_KEY, SeaweedStore

from shared.localredis import LocalRedis

SPREAD = {"VERBATIM_SPLIT_SECONDS": "30", "VERBATIM_WINDOW_SECONDS": "30",
          "VERBATIM_WINDOW_SEARCH_SECONDS": "10"}
SPEECH = ("LJ001-0001", "LJ001-0003", "LJ001-0005", "LJ001-0007", "1089-134686-0000", "jfk",
          "1089-134686-0001")


def silence_wav(path: Path, megabytes: int) -> Path:
    """48 kHz stereo silence, so that 500 MB stays under the default duration limit."""
    second = b"\0\0" * 2 * 48000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(48000)
        for _ in range(megabytes * 1000 * 1000 // len(second)):
            out.writeframes(second)
    return path


def speech_wav(path: Path) -> Path:
    from faster_whisper import decode_audio

    gap = np.zeros(8000, np.float32)
    parts = [p for name in SPEECH
             for p in (decode_audio(str(ROOT / "tests" / "data" / f"{name}.flac")), gap)]
    samples = (np.concatenate(parts) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())
    return path


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time process `pid` (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def upload(url: str, path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    with path.open("rb") as file:
        response = httpx.post(f"{url}/v1/jobs", files={"file": (path.name, file)}, timeout=900)
    seconds = time.perf_counter() - started
    if response.status_code == 202:
        httpx.delete(f"{url}/v1/jobs/{response.json()['id']}")
    return response.status_code, seconds


def uploads(env: dict[str, str], files: list[Path], work: Path, name: str,
            store: SeaweedStore) -> list[str]:
    api, url = start_api(env, work / f"api-{name}.log")
    lines = []
    try:
        wait_healthy(url)
        upload(url, files[0])  # warm-up: the first request's imports and connections
        for path in files:
            Path(f"/proc/{api.pid}/clear_refs").write_text("5")
            api_cpu, store_cpu = cpu_seconds(api.pid), store.cpu_seconds()
            status, seconds = upload(url, path)
            api_cpu, store_cpu = cpu_seconds(api.pid) - api_cpu, store.cpu_seconds() - store_cpu
            megabytes = path.stat().st_size / 1e6
            peak = peak_kib(api.pid) / 1024
            lines.append(f"{name:6} upload {megabytes:5.0f} MB -> {status} in {seconds:6.2f} s "
                         f"({megabytes / seconds:5.0f} MB/s), API peak {peak:4.0f} MiB, "
                         f"CPU s: API {api_cpu:5.2f}, store {store_cpu:5.2f}")
    finally:
        api.terminate()
        api.wait()
    return lines


@dataclass(frozen=True)
class Way:
    """How boto3 sends an upload's parts."""

    signed: bool = True  # a SHA-256 of each part in its signature
    in_flight: int = 1
    part_mib: int = 8
    checksum: str = "when_required"  # botocore's own default is "when_supported" (CRC32)


WAYS = {
    "as before: 8 MiB parts one at a time, SHA-256 signed": Way(),
    "+ unsigned payload (what TLS endpoints get now)": Way(signed=False),
    "+ 32 MiB parts": Way(part_mib=32),
    "+ botocore's default CRC32 of each part": Way(checksum="when_supported"),
    "+ 4 parts in flight (the service now, plain HTTP)": Way(in_flight=4),
}


def store_client(store: SeaweedStore, way: Way) -> Any:
    s3 = {"addressing_style": "path", "payload_signing_enabled": way.signed}
    client = boto3.client(
        "s3", endpoint_url=store.url, region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(s3=s3, request_checksum_calculation=way.checksum,
                      response_checksum_validation="when_required"))
    return client


def put_parts(client: Any, path: Path, way: Way) -> None:
    """`path` as a multipart upload, `way.in_flight` parts at a time, read as it is sent."""
    key = f"bench/{path.name}"
    upload_id = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]

    def send(number: int, body: bytes) -> dict[str, Any]:
        etag = client.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id,
                                  PartNumber=number, Body=body)["ETag"]
        return {"PartNumber": number, "ETag": etag}

    sending: deque[Future[dict[str, Any]]] = deque()
    parts = []
    with ThreadPoolExecutor(way.in_flight) as pool, path.open("rb") as file:
        while body := file.read(way.part_mib * 2**20):
            if len(sending) == way.in_flight:
                parts.append(sending.popleft().result())
            sending.append(pool.submit(send, len(parts) + len(sending) + 1, body))
        parts += [future.result() for future in sending]
    client.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    client.delete_object(Bucket=BUCKET, Key=key)


def store_alone(store: SeaweedStore, path: Path) -> list[str]:
    """`path` put straight into the store by boto3, each way: what the store itself takes,
    with no API in between, and what each change to the parts saves."""
    lines = []
    megabytes = path.stat().st_size / 1e6
    for name, way in WAYS.items():
        client = store_client(store, way)
        client.head_bucket(Bucket=BUCKET)  # its connection made before the clock starts
        own, stored = own_cpu_seconds(), store.cpu_seconds()
        started = time.perf_counter()
        put_parts(client, path, way)
        seconds = time.perf_counter() - started
        own, stored = own_cpu_seconds() - own, store.cpu_seconds() - stored
        lines.append(f"store  alone  {megabytes:5.0f} MB        in {seconds:6.2f} s "
                     f"({megabytes / seconds:5.0f} MB/s), CPU s: boto3 {own:5.2f}, "
                     f"store {stored:5.2f}  {name}")
    return lines


def profiled_store(work: Path, path: Path) -> list[str]:
    """`path` put the service's way into a store of its own that records a CPU profile (Go's
    pprof, written when it stops): the functions it spent most of its CPU in."""
    (work / "profiled").mkdir()
    profile = work / "store.pprof"
    store = SeaweedStore(work / "profiled", (f"-cpuprofile={profile}",)).start()
    try:
        put_parts(store_client(store, Way(in_flight=4)), path, Way(in_flight=4))
    finally:
        store.stop()
    top = flat_profile(profile)[:6]
    return [f"store  profile  {share:5.1%} of its CPU in {name}" for name, share in top]


def flat_profile(path: Path) -> list[tuple[str, float]]:
    """(function, share of the samples) of a pprof CPU profile, its most sampled first: the
    innermost function of each sample, read straight off the protobuf (profile.proto)."""
    fields_of = _protobuf_fields
    strings, samples, lines, functions = [], [], {}, {}
    for number, value in fields_of(gzip.decompress(path.read_bytes())):
        if number == 6:
            strings.append(value.decode())
        elif number == 2:  # Sample: location ids (packed), values (packed; CPU ns is last)
            found = {n: _packed(v) for n, v in fields_of(value)}
            samples.append((found.get(1, []), found.get(2, [0])[-1]))
        elif number == 4:  # Location: id, its lines (function id first)
            found = dict(fields_of(value))
            line = next((v for n, v in fields_of(value) if n == 4), b"")
            lines[found.get(1, 0)] = dict(fields_of(line)).get(1, 0) if line else 0
        elif number == 5:  # Function: id, name (a string index)
            found = dict(fields_of(value))
            functions[found.get(1, 0)] = found.get(2, 0)
    spent: Counter[str] = Counter()
    for locations, nanoseconds in samples:
        if locations:
            spent[strings[functions.get(lines.get(locations[0], 0), 0)]] += nanoseconds
    total = sum(spent.values()) or 1
    return [(name, value / total) for name, value in spent.most_common()]


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _protobuf_fields(data: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) of a protobuf message: ints for varints, bytes otherwise."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        kind = key & 7
        if kind == 0:
            value, at = _varint(data, at)
        elif kind == 2:
            size, at = _varint(data, at)
            value, at = data[at:at + size], at + size
        else:  # fixed 64 or 32 bits
            size = 8 if kind == 1 else 4
            value, at = data[at:at + size], at + size
        yield key >> 3, value


def _packed(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value]
    numbers, at = [], 0
    while at < len(value):
        number, at = _varint(value, at)
        numbers.append(number)
    return numbers


def spread(env: dict[str, str], recording: Path, work: Path, name: str) -> str:
    env = env | SPREAD
    api, url = start_api(env, work / f"api-spread-{name}.log")
    workers = [Worker(f"{name}-{n}", env, work) for n in (1, 2)]
    try:
        for worker in workers:
            worker.start()
        wait_healthy(url)
        with httpx.Client(base_url=url, timeout=60) as http:
            wait_ready(http, 300)
            wall = [run_job(http, recording) for _ in range(2)][1]  # the first warms up
    finally:
        for worker in workers:
            worker.terminate()
        api.terminate()
        api.wait()
    return f"{name:6} spread job (64 s of speech, 30 s windows, 2 workers): {wall:6.2f} s"


def run_job(http: httpx.Client, recording: Path) -> float:
    started = time.perf_counter()
    with recording.open("rb") as file:
        job = http.post("/v1/jobs", files={"file": (recording.name, file)}).json()
    while job["status"] not in ("completed", "failed"):
        time.sleep(0.05)
        job = http.get(f"/v1/jobs/{job['id']}").json()
    if job["status"] != "completed":
        raise SystemExit(f"the spread job failed: {job}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 500], help="MB")
    parser.add_argument("--no-spread", action="store_true")
    parser.add_argument("--profile-store", action="store_true",
                        help="where the store spends its CPU on the largest upload")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verbatim-storage-bench-") as tmp:
        work = Path(tmp)
        files = [silence_wav(work / f"upload-{size}mb.wav", size) for size in args.sizes]
        (work / "seaweed").mkdir()
        store = SeaweedStore(work / "seaweed").start()
        lines: list[str] = []
        try:
            with LocalRedis(work / "redis") as redis_server:
                base = dict(os.environ) | {
                    "VERBATIM_AUTH": "off", "VERBATIM_REDIS_URL": redis_server.url,
                    "VERBATIM_DATA_DIR": str(work / "data")}
                for name, env in (("local", base), ("s3", base | store.env())):
                    lines += uploads(env, files, work, name, store)
                    print(lines[-1], file=sys.stderr)
                lines += store_alone(store, files[-1])
                print(lines[-1], file=sys.stderr)
                if args.profile_store:
                    lines += profiled_store(work, files[-1])
                if not args.no_spread:
                    recording = speech_wav(work / "speech.wav")
                    for name, env in (("local", base), ("s3", base | store.env())):
                        lines.append(spread(env, recording, work, name))
                        print(lines[-1], file=sys.stderr)
        finally:
            store.stop()
        print("\n".join(lines))


if __name__ == "__main__":
    main()
