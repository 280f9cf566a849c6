"""The generated pages match the code: the configuration reference and the OpenAPI document."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import ROOT

import shared.errors
from shared.config import Settings


# Two hash seeds: a document that depended on a set's order would differ between processes
# (two API replicas would serve different documents), and then from the committed one.
@pytest.mark.parametrize("seed", ["1", "2"])
@pytest.mark.parametrize("script", ["docs/gen/config.py", "docs/gen/openapi.py"])
def test_the_committed_page_is_what_its_script_writes_now(script: str, seed: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERBATIM_")}
    done = subprocess.run([sys.executable, script, "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env | {"PYTHONHASHSEED": seed})
    assert done.returncode == 0, done.stderr


def test_the_configuration_page_names_every_setting_with_its_bounds() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"### `VERBATIM_{name.upper()}`" in page
    # Field bounds and the validators' cross-field rules are both on the page.
    assert "- Bounds: >= 1, <= 64" in page  # worker_concurrency
    assert ("`VERBATIM_HEARTBEAT_TIMEOUT_SECONDS` must exceed "
            "`VERBATIM_HEARTBEAT_INTERVAL_SECONDS`") in page


def error_codes() -> set[str]:
    found = set()
    pending = [shared.errors.VerbatimError]
    while pending:
        cls = pending.pop()
        found.add(cls.code)
        pending.extend(cls.__subclasses__())
    return found


def test_troubleshooting_explains_every_error_code_and_no_other() -> None:
    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    documented = {line[5:-1] for line in page.splitlines() if line.startswith("### `")}
    assert error_codes() - documented == set(), "codes missing from docs/troubleshooting.md"
    assert documented - error_codes() == set(), "codes in docs/troubleshooting.md the code lacks"
