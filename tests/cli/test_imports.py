"""The command imports shared/ only: a client machine needs neither the web nor the model stack,
nor Redis's client library (only `keys` and `webhook-secret` load it, when they run), which
each start of `verbatim` would pay for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("api", "worker", "fastapi", "uvicorn", "celery", "faster_whisper", "ctranslate2", "av",
         "redis", "limits")


def test_the_command_imports_neither_the_api_nor_the_worker() -> None:
    check = f"import sys, cli.main; print(sorted(set({HEAVY!r}) & set(sys.modules)))"
    command = [sys.executable, "-c", check]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
