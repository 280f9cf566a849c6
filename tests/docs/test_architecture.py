"""The architecture page's map from concern to module names only files that exist, and every
Python module of the services appears in it, so a newcomer's first hop is never a dead end."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"
PACKAGES = ("api", "worker", "shared", "courier", "cli")
def the_map() -> str:
    text = PAGE.read_text()
    start = text.index("## Where does it happen?")
    block = text[start:text.index("```", text.index("```text", start) + 7)]
    return block


def test_every_module_the_map_names_exists() -> None:
    named = set(re.findall(r"\b(?:api|worker|shared|courier|cli)/[\w/]+\.py\b", the_map()))
    assert named, "the map names no module"
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f"the architecture map names modules that do not exist: {missing}"


def test_every_service_module_is_on_the_map() -> None:
    named = set(re.findall(r"\b(?:api|worker|shared|courier|cli)/[\w/]+\.py\b", the_map()))
    modules = {str(path.relative_to(ROOT)) for package in PACKAGES
               for path in (ROOT / package).rglob("*.py")}
    unmapped = sorted(m for m in modules - named
                      if Path(m).name != "__init__.py")
    assert not unmapped, f"modules missing from the architecture map: {unmapped}"
