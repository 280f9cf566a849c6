"""The README stays a front door: short, its links alive, its set-up commands the page's own."""

from __future__ import annotations

import re

from support import ROOT

README = ROOT / "README.md"
SETUP = ("make run     # ", "make test    # ")


def test_the_readme_is_short_and_every_relative_link_resolves() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t)]
    assert local, "the README links into the docs"
    missing = [target for target in local if not (ROOT / target).exists()]
    assert missing == []


def test_the_setup_commands_are_those_of_the_getting_started_page() -> None:
    page = (ROOT / "docs" / "getting-started.md").read_text().splitlines()
    readme = README.read_text().splitlines()
    for prefix in SETUP:
        (in_readme,) = [line for line in readme if line.startswith(prefix)]
        (in_page,) = [line for line in page if line.startswith(prefix)]
        assert in_readme == in_page
