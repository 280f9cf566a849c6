"""Fixtures for the `verbatim` command: a running service, a way to run the command, and a
proxy that stands between them as a gateway would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gateway import Proxy, serving

from shared.localredis import free_port

ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_SECONDS = 180

Completed = subprocess.CompletedProcess[str]
Verbatim = Callable[..., Completed]


@pytest.fixture(scope="session")
def server(api_url: str, worker: object) -> str:
    """The URL of a real API with a real worker behind it."""
    return api_url


@pytest.fixture(scope="session")
def dead_url() -> str:
    """A URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def verbatim() -> Verbatim:
    """Runs `python -m cli.main ARGS` as a user would; VERBATIM_URL only where `env` sets it."""

    def run(*args: str | Path, env: dict[str, str] | None = None) -> Completed:
        environment = {k: v for k, v in os.environ.items() if k != "VERBATIM_URL"}
        # A wide terminal: rich wraps a usage error's box at the width, even inside a long path
        # (pytest-xdist's temporary paths are longer), and the tests read the error's words.
        environment["COLUMNS"] = "400"
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *map(str, args)],
            cwd=ROOT, env=environment | (env or {}), capture_output=True, text=True,
            timeout=COMMAND_TIMEOUT_SECONDS, check=False,
        )

    return run


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """A `Proxy`, forwarding to nothing until the test sets its `target`."""
    with serving(Proxy()) as state:
        yield state
