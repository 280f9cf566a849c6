"""Every command of docs/getting-started.md works on a fresh clone, as a reader types it.

The page marks its commands: `<!-- test: server -->` before the block that starts the server
(`make run`), `<!-- test: run -->` before each block to type in a second terminal. This test
clones the repository's HEAD into a temporary directory, starts the server block there and,
once it prints its banner, runs the other blocks in order in one shell, then stops the server
with Ctrl-C's signal, as the page says.

Two things differ from a first run on a new machine, and only these:
- `.venv` is the environment the tests already run in, linked into the clone with its install
  marker up to date, so `make run` starts at once instead of installing everything again (as
  its second run does). `PYTHONPATH` names the clone, so the clone's code is what runs.
- The server listens on a free port (`make run SERVE_ARGS="--port N"`) and the commands'
  `127.0.0.1:8000` say that port (`VERBATIM_URL` for the `verbatim` command), as do the metrics
  ports, so that the test never meets another server on this machine.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT, pool_children, with_default_signals

from shared.localredis import free_port

PAGE = ROOT / "docs" / "getting-started.md"
MARKED = re.compile(r"<!-- test: (server|run) -->\n```sh\n(.*?)```", re.DOTALL)
START_TIMEOUT_SECONDS = 120
COMMANDS_TIMEOUT_SECONDS = 300
STOP_TIMEOUT_SECONDS = 60


def marked_blocks() -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {"server": [], "run": []}
    for kind, text in MARKED.findall(PAGE.read_text()):
        blocks[kind].append(text)
    return blocks


def without_comments(command: str) -> str:
    return re.sub(r"\s+# .*$", "", command, flags=re.MULTILINE).strip()


def fresh_clone(tmp_path: Path) -> Path:
    clone = tmp_path / "verbatim"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    return clone


def link_installed_venv(clone: Path) -> None:
    """`.venv` as `make run` leaves it once installed: this environment, marker up to date."""
    installed = Path(sys.prefix)
    venv = clone / ".venv"
    venv.mkdir()
    shutil.copy(installed / "pyvenv.cfg", venv)
    for part in ("bin", "lib"):
        (venv / part).symlink_to(installed / part)
    (venv / ".installed-run").touch()  # newer than pyproject.toml: nothing to install


def descendants(pid: int) -> list[int]:
    found = []
    for child in pool_children(pid):
        found += [child, *descendants(child)]
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int, dict[str, str]]]:
    """A fresh clone running its server block; stopped with SIGINT (Ctrl-C) afterwards."""
    (server_block,) = marked_blocks()["server"]
    assert without_comments(server_block) == "make run"
    clone = fresh_clone(tmp_path)
    link_installed_venv(clone)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERBATIM_")} | {
        "PYTHONPATH": str(clone),
        "VERBATIM_WORKER_METRICS_PORT": str(free_port()),
        "VERBATIM_IO_METRICS_PORT": str(free_port()),
    }
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        make = subprocess.Popen(
            with_default_signals([shutil.which("make") or "make", "run",
                                  f"SERVE_ARGS=--port {port}"]),
            cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while "Verbatim is starting on" not in log.read_text(errors="replace"):
            assert make.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        yield clone, port, env
    finally:
        started = descendants(make.pid)
        os.killpg(make.pid, signal.SIGINT)
        make.wait(timeout=STOP_TIMEOUT_SECONDS)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while any(alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [pid for pid in started if alive(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"Ctrl-C left processes running: {left}"


def test_the_getting_started_commands_work_on_a_fresh_clone(
    served: tuple[Path, int, dict[str, str]],
) -> None:
    clone, port, env = served
    blocks = marked_blocks()["run"]
    assert len(blocks) >= 3
    script = "set -e\n" + "\n".join(blocks).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    done = subprocess.run(
        ["bash", "-c", script], cwd=clone, capture_output=True, text=True,
        timeout=COMMANDS_TIMEOUT_SECONDS,
        env=env | {"VERBATIM_URL": f"http://127.0.0.1:{port}"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    words = "ask not what your country can do for you"
    assert words in done.stdout  # the txt transcript, printed by curl
    srt = (clone / "jfk.srt").read_text()
    assert srt.startswith("1\n00:00:00,000 --> ")
    assert words in srt
    vtt = (clone / "tests" / "data" / "jfk.vtt").read_text()
    assert vtt.startswith("WEBVTT")
    assert words in vtt
