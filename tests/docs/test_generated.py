"""The generated pages match the code: the configuration reference and the OpenAPI document."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from types import ModuleType
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
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
    documented = set(re.findall(r"^### `([a-z_]+)`$", page, flags=re.MULTILINE))
    assert error_codes() - documented == set(), "codes missing from docs/troubleshooting.md"
    assert documented - error_codes() == set(), "codes in docs/troubleshooting.md the code lacks"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_config", ROOT / "docs/gen/config.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Whisper(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    compute_type: Literal["int8", "float16"] = "int8"
    """CTranslate2 compute type."""


class Ports(BaseSettings):
    """Ports of the toy service."""

    model_config = SettingsConfigDict(use_attribute_docstrings=True)

    port: int = Field(default=8000, ge=1, le=65535)
    """Where it listens."""


class Toy(Ports, BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TOY_", env_nested_delimiter="__", use_attribute_docstrings=True
    )

    whisper: Whisper = Whisper()
    """The model section."""

    step: float | None = Field(default=None, gt=0)
    """Seconds between two steps."""

    @model_validator(mode="after")
    def _check(self) -> Toy:
        if self.step is not None and self.step > self.port:
            raise ValueError("step must be at most port")
        return self


def test_the_generator_reads_nested_sections_mixins_bounds_and_validators() -> None:
    page = load_generator().render(Toy)
    assert "### `TOY_WHISPER__COMPUTE_TYPE`\n\n- Type: one of `int8`, `float16`\n" in page
    assert "CTranslate2 compute type." in page
    assert "## Ports of the toy service.\n" in page  # a mixin's own section, from its docstring
    assert "### `TOY_PORT`\n\n- Type: int\n- Default: `8000`\n- Bounds: >= 1, <= 65535\n" in page
    assert "- Type: float or unset\n- Default: unset\n- Bounds: > 0\n" in page
    assert "- Rule: `TOY_STEP` must be at most `TOY_PORT`" in page
