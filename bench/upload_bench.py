"""Upload benchmark: a large upload streams to disk without growing the API's memory, and the
API keeps answering while it streams.

Starts a private redis-server and one uvicorn API process (no worker: only the upload path is
measured), writes a WAV of `--megabytes` of silence, uploads it, and meanwhile polls /healthz.
Prints the upload time and throughput, the API's resident memory before and its peak after,
and the /healthz latencies seen during the upload.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import httpx

from shared.localredis import LocalRedis, free_port

ROOT = Path(__file__).resolve().parent.parent


def write_wav(path: Path, megabytes: int) -> Path:
    """48 kHz stereo, so that 500 MiB stays under the default 4-hour duration limit."""
    second = b"\0\0" * 2 * 48000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(48000)
        for _ in range(megabytes * 1024 * 1024 // len(second)):
            out.writeframes(second)
    return path


def memory_kib(pid: int, field: str) -> int:
    """`VmRSS` (resident now) or `VmHWM` (peak resident) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port), "--log-level",
            "warning"]
    with log.open("wb") as out:
        api = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return api, url
        except httpx.HTTPError:
            time.sleep(0.05)
    api.kill()
    raise RuntimeError(f"the API did not start; see {log}")


def probe_health(url: str, stop: threading.Event, latencies: list[float]) -> None:
    with httpx.Client(base_url=url) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get("/healthz").raise_for_status()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)


def run(megabytes: int, work: Path) -> None:
    audio = write_wav(work / "upload.wav", megabytes)
    with LocalRedis(work) as redis_server:
        env = {"VERBATIM_AUTH": "off"} | os.environ | {
            "VERBATIM_REDIS_URL": redis_server.url, "VERBATIM_DATA_DIR": str(work / "data")
        }
        api, url = start_api(env, work / "api.log")
        try:
            before = memory_kib(api.pid, "VmRSS")
            stop, latencies = threading.Event(), []
            prober = threading.Thread(target=probe_health, args=(url, stop, latencies))
            prober.start()
            started = time.perf_counter()
            with audio.open("rb") as f:
                response = httpx.post(f"{url}/v1/jobs", files={"file": ("upload.wav", f)},
                                      timeout=600)
            seconds = time.perf_counter() - started
            stop.set()
            prober.join()
            peak = memory_kib(api.pid, "VmHWM")
        finally:
            api.terminate()
            api.wait()
    size = audio.stat().st_size / 2**20
    print(f"upload               {size:.0f} MiB -> {response.status_code} in {seconds:.2f} s "
          f"({size / seconds:.0f} MiB/s)")
    print(f"API memory           {before / 1024:.0f} MiB before, {peak / 1024:.0f} MiB peak "
          f"(+{(peak - before) / 1024:.0f} MiB)")
    print(f"/healthz meanwhile   {len(latencies)} requests, median "
          f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=500, help="upload size (default 500)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verbatim-upload-bench-") as work:
        run(args.megabytes, Path(work))


if __name__ == "__main__":
    main()
