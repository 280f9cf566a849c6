"""Writes `tests/file_costs.txt` from the report of a run with `--durations=0`:

    make test PYTEST_ARGS=--durations=0 | tee run.log
    .venv/bin/python tests/file_costs.py run.log

Each test file's seconds (setup, call and teardown of all its tests), slowest first. The
session's conftest hands files out in that order (see `pytest_collection_modifyitems`)."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

COSTS = Path(__file__).with_name("file_costs.txt")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)s (?:setup|call|teardown)\s+(tests/\S+?\.py)::")
HEADER = ("# Seconds each test file took in one run, slowest first: files are handed to the\n"
          "# test processes in this order. Written by tests/file_costs.py; a file not listed\n"
          "# counts 0.\n")


def file_costs(report: str) -> Counter[str]:
    costs: Counter[str] = Counter()
    for line in report.splitlines():
        if match := DURATION.match(line):
            costs[match.group(2)] += float(match.group(1))
    return costs


def read_costs(path: Path = COSTS) -> dict[str, float]:
    costs = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            seconds, name = line.split()
            costs[name] = float(seconds)
    return costs


def main(report_path: str) -> None:
    costs = file_costs(Path(report_path).read_text())
    if not costs:
        sys.exit(f"{report_path} holds no durations: run the suite with --durations=0")
    lines = [f"{seconds:.1f} {name}" for name, seconds in costs.most_common()]
    COSTS.write_text(HEADER + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
