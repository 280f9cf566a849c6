"""The documentation site builds in strict mode: a broken link, anchor or page fails it."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

from support import ROOT

BUILD_TIMEOUT_SECONDS = 300


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict`, as `make docs` runs it, into `site` (never the repo's site/)."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=config.parent, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(site.parent)},
    )


def text_of(page: Path) -> str:
    """A built page's text as a reader sees it: no tags, entities decoded, spaces collapsed."""
    text = re.sub(r"<[^>]+>", "", page.read_text())
    return re.sub(r"\s+", " ", html.unescape(text))


def test_the_site_builds_strictly_with_every_page(tmp_path: Path) -> None:
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr
    api = text_of(tmp_path / "site" / "reference" / "http-api" / "index.html")
    # The reference is rendered from the OpenAPI document, not written by hand.
    assert "GET /v1/jobs/{job_id}/transcript.{fmt}" in api
    assert "DELETE /v1/jobs/{job_id}" in api
    config = (tmp_path / "site" / "configuration" / "index.html").read_text()
    assert 'id="verbatim_keep_audio"' in config
    bench = (tmp_path / "site" / "benchmarks" / "index.html").read_text()
    assert "spread_bench.py" in bench  # bench/README.md, included where it stands
    assert (tmp_path / "site" / "page.png").exists()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy)
    (copy / "bench").mkdir()
    shutil.copy(ROOT / "bench" / "README.md", copy / "bench")
    page = copy / "docs" / "guides" / "jobs.md"
    page.write_text(page.read_text() + "\nSee [the missing page](missing.md#nowhere).\n")
    done = build(copy / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "missing.md" in done.stderr
