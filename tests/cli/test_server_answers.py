"""The command behind a gateway (`proxy`) in front of the real API: brief outages ridden out,
answers that are not the API's explained, and Ctrl-C cancelling the jobs in flight."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from gateway import Proxy
from support import DATA, with_default_signals

Verbatim = Callable[..., subprocess.CompletedProcess[str]]
ROOT = Path(__file__).resolve().parents[2]
SHORT = "1089-134686-0001.flac"
JOB = r"/v1/jobs/[0-9a-f-]+"


def copy(name: str, folder: Path) -> Path:
    return Path(shutil.copy(DATA / name, folder / name))


def test_a_brief_outage_does_not_fail_the_file(
    server: str, proxy: Proxy, verbatim: Verbatim, tmp_path: Path
) -> None:
    proxy.target = server
    proxy.answer("POST", "/v1/jobs", 503, times=1)  # the API's own 503: Redis blipped
    proxy.answer("POST", "/v1/jobs", 502, times=1)  # the gateway: no API replica answers
    proxy.answer("GET", JOB, 504, times=2)
    proxy.answer("GET", f"{JOB}/transcript.txt", 502, times=1)
    audio = copy(SHORT, tmp_path)
    result = verbatim("transcribe", audio, "--server", proxy.url)
    assert result.returncode == 0, result.stderr
    assert "his belly counseled him" in (tmp_path / "1089-134686-0001.txt").read_text().lower()
    statuses = [(method, status) for method, _, status in proxy.seen]
    assert statuses.count(("POST", 503)) == statuses.count(("POST", 502)) == 1
    assert statuses.count(("POST", 202)) == 1
    assert statuses.count(("GET", 504)) == 2


def test_a_refused_upload_is_not_retried(
    server: str, proxy: Proxy, verbatim: Verbatim, tmp_path: Path
) -> None:
    proxy.target = server
    fake = tmp_path / "x.mp3"
    fake.write_text("this is not audio\n" * 50)
    result = verbatim("transcribe", fake, "--server", proxy.url)
    assert result.returncode == 1
    assert "unsupported_media" in result.stderr
    assert [(m, s) for m, _, s in proxy.seen if m == "POST"] == [("POST", 415)]


def test_a_redirect_says_to_use_the_final_url(
    proxy: Proxy, verbatim: Verbatim, tmp_path: Path
) -> None:
    proxy.answer("*", ".*", 301, body=b"", headers={"Location": "https://verbatim.example/"})
    result = verbatim("transcribe", copy(SHORT, tmp_path), "--server", proxy.url)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"verbatim: no Verbatim server at {proxy.url}: the server answered 301")
    assert "redirecting to https://verbatim.example/: use the final URL" in line


def test_an_answer_that_is_not_json_is_a_bad_response(
    proxy: Proxy, verbatim: Verbatim, tmp_path: Path
) -> None:
    page = b"<html><body>Welcome to nginx!</body></html>"
    proxy.answer("*", ".*", 200, body=page, headers={"Content-Type": "text/html"})
    result = verbatim("transcribe", copy(SHORT, tmp_path), "--server", proxy.url)
    assert result.returncode == 1
    [failure] = [line for line in result.stderr.splitlines() if SHORT in line]
    assert "not the JSON a Verbatim server sends (text/html)" in failure
    assert "Welcome to nginx!" in failure
    assert "[bad_response]" in failure
    assert "JSONDecodeError" not in result.stderr


@pytest.mark.parametrize("command", ["transcribe", "batch"])
def test_ctrl_c_cancels_the_jobs_in_flight(
    server: str, proxy: Proxy, tmp_path: Path, command: str
) -> None:
    proxy.target = server
    proxy.answer("GET", JOB, 503, hold=True)  # each job polled stays in flight
    files = [copy(SHORT, tmp_path), copy("jfk.flac", tmp_path)]
    args = [*files, "--format", "srt"] if command == "transcribe" else [tmp_path, "-n", "2"]
    running = subprocess.Popen(  # a Ctrl-C must reach it even where this run ignores SIGINT
        with_default_signals([sys.executable, "-m", "cli.main", command, *map(str, args),
                              "--server", proxy.url]),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    in_flight = 1 if command == "transcribe" else 2
    deadline = time.monotonic() + 60
    while len({path for _, path in proxy.received if re.fullmatch(JOB, path)}) < in_flight:
        assert running.poll() is None, running.communicate()
        assert time.monotonic() < deadline, proxy.seen
        time.sleep(0.05)
    running.send_signal(signal.SIGINT)
    _, stderr = running.communicate(timeout=30)
    assert running.returncode == 130, stderr
    jobs = "1 job" if in_flight == 1 else f"{in_flight} jobs"
    assert f"interrupted; {jobs} in flight cancelled on the server" in stderr
    assert len(proxy.created) == in_flight
    deleted = [(path, status) for method, path, status in proxy.seen if method == "DELETE"]
    assert sorted(deleted) == sorted((f"/v1/jobs/{job_id}", 204) for job_id in proxy.created)
    for job_id in proxy.created:
        assert httpx.get(f"{server}/v1/jobs/{job_id}").status_code == 404
    assert not list(tmp_path.glob("*.srt")) + list(tmp_path.glob("*.txt"))
