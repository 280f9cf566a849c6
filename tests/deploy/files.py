"""Readers for the deployment files: Dockerfile instructions and nginx.conf directives."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    stage: int
    name: str
    args: str


def dockerfile(path: Path) -> list[Instruction]:
    """The instructions, continuation lines joined and comments dropped, with their stage."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        name, _, args = line.partition(" ")
        name = name.upper()
        if name == "FROM":
            stage += 1
        instructions.append(Instruction(stage, name, args.strip()))
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    """`ARG NAME=default` values (a later one wins), for resolving `${NAME}`."""
    defaults = {}
    for i in instructions:
        if i.name == "ARG" and "=" in i.args:
            name, _, value = i.args.partition("=")
            defaults[name.strip()] = value.strip().strip("\"'")
    return defaults


def expand(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), text)


def base_images(path: Path) -> list[str]:
    """Every stage's base image, with global ARG defaults filled in."""
    instructions = dockerfile(path)
    values = arg_defaults([i for i in instructions if i.stage == -1])
    return [expand(i.args.split()[0], values) for i in instructions if i.name == "FROM"]


def exec_form(args: str) -> list[str]:
    """The argument list of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD."""
    value = json.loads(args)
    assert isinstance(value, list), args
    return [str(v) for v in value]


def env(instructions: list[Instruction]) -> dict[str, str]:
    """ENV values of these instructions (the `KEY=value ...` form)."""
    values: dict[str, str] = {}
    for i in instructions:
        if i.name == "ENV":
            for word in shlex.split(i.args):
                key, _, value = word.partition("=")
                values[key] = value
    return values


def option(argv: list[str], name: str) -> str:
    """The value after `name` in an argument list."""
    assert name in argv, f"{name} not in {argv}"
    return argv[argv.index(name) + 1]


@dataclass(frozen=True)
class Directive:
    name: str
    args: list[str]
    context: tuple[str, ...]
    """The enclosing blocks, outermost first: ("http", "upstream") for a server in upstream."""


def nginx_directives(text: str) -> list[Directive]:
    """Every directive in nginx.conf, blocks included, in file order.

    Tokens as nginx reads them: whitespace-separated, quotes grouping, `#` starting a comment
    at the start of a token, `;` ending a directive, `{` opening a block and `}` closing it.
    """
    found: list[Directive] = []
    blocks: list[str] = []
    words: list[str] = []
    word, in_word, quote, comment = "", False, "", False
    for ch in text:
        if comment:
            comment = ch != "\n"
        elif quote:
            if ch == quote:
                quote = ""
            else:
                word += ch
        elif ch in "'\"":
            quote, in_word = ch, True
        elif ch == "#" and not in_word:
            comment = True
        elif ch.isspace() or ch in ";{}":
            if in_word:
                words.append(word)
            word, in_word = "", False
            if ch in ";{" and words:
                found.append(Directive(words[0], words[1:], tuple(blocks)))
            if ch == "{":
                blocks.append(words[0] if words else "")
            elif ch == "}":
                blocks.pop()
            if ch in ";{}":
                words = []
        else:
            word, in_word = word + ch, True
    return found


def nginx_values(text: str, name: str, context: str | None = None) -> list[list[str]]:
    """The arguments of each `name` directive, only inside a `context` block if given."""
    return [
        d.args for d in nginx_directives(text)
        if d.name == name and (context is None or context in d.context)
    ]


SIZE = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "": 1}


def nginx_size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", value.lower()).groups()  # type: ignore[union-attr]
    return int(number) * SIZE[unit]


def nginx_seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h|)", value).groups()  # type: ignore[union-attr]
    return int(number) * SECONDS[unit]


# deploy/grafana/verbatim.json and deploy/alerts.yml

DASHBOARD = ROOT / "deploy" / "grafana" / "verbatim.json"
ALERTS = ROOT / "deploy" / "alerts.yml"
# Grafana's interval variables, which Prometheus's parser does not know; any duration will do
# for reading an expression.
_GRAFANA_INTERVALS = re.compile(r"\$__(rate_interval|interval|range)\b")


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    expr: str
    """As Prometheus would receive it (Grafana's interval variables filled in)."""


def dashboard_queries(board: dict) -> list[PanelQuery]:
    """Every PromQL expression of every panel, rows' nested panels included."""
    found = []
    stack = list(board["panels"])
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            found.append(PanelQuery(panel["title"], _GRAFANA_INTERVALS.sub("5m", target["expr"])))
    return found


def alert_rules(rules: dict) -> list[dict]:
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


# Labels that Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"instance", "job"})


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: frozenset[str]
    """The label names its matchers test and the aggregations around it group by, less
    Prometheus's own (`instance`, `job`)."""


def selectors(expr: str) -> list[Selector]:
    """The series an expression selects, read by promql-parser (a port of Prometheus's own
    parser): each selector's metric name and the label names it relies on."""
    import promql_parser

    return _selectors(promql_parser.parse(expr), frozenset())


def _selectors(node: Any, grouped: frozenset[str]) -> list[Selector]:
    import promql_parser as promql

    if isinstance(node, promql.VectorSelector):
        matchers = node.matchers.matchers
        name = node.name or next(m.value for m in matchers if m.name == "__name__")
        labels = (frozenset(m.name for m in matchers) | grouped) - {"__name__"} - TARGET_LABELS
        return [Selector(name, labels)]
    if isinstance(node, promql.MatrixSelector):
        return _selectors(node.vector_selector, grouped)
    if isinstance(node, promql.AggregateExpr):
        modifier = node.modifier
        if modifier is not None and modifier.type == promql.AggModifierType.By:
            grouped = grouped | frozenset(modifier.labels)
        return _selectors(node.expr, grouped)
    if isinstance(node, promql.BinaryExpr):
        return _selectors(node.lhs, grouped) + _selectors(node.rhs, grouped)
    if isinstance(node, promql.Call):
        return [found for arg in node.args for found in _selectors(arg, grouped)]
    if isinstance(node, (promql.ParenExpr, promql.UnaryExpr, promql.SubqueryExpr)):
        return _selectors(node.expr, grouped)
    return []  # numbers and strings
