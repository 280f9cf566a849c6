"""Secrets are taken out of every log line, whichever logger writes it (issue 26, item 3)."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from shared.logs import JsonFormatter, TextFormatter, redact

TOKEN = "vb_Q2h1bmt5LXNlY3JldC10b2tlbi12YWx1ZS0xMjM0"
SECRET = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"


@pytest.mark.parametrize(("line", "expected"), [
    (f'127.0.0.1:5 - "WebSocket /v1/live?access_token={TOKEN}" [accepted]',
     '127.0.0.1:5 - "WebSocket /v1/live?access_token=[redacted]" [accepted]'),
    ("GET /x?a=1&access_token=anything&b=2", "GET /x?a=1&access_token=[redacted]&b=2"),
    (f"key {TOKEN} refused", "key [redacted] refused"),
    (f"signing with {SECRET}", "signing with [redacted]"),
    ("vb_short and whsec_ alone stay", "vb_short and whsec_ alone stay"),
])  # fmt: skip
def test_redact(line: str, expected: str) -> None:
    assert redact(line) == expected


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_formatters_redact_messages_fields_and_tracebacks(formatter: logging.Formatter) -> None:
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError:
        record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1,
                                   '%s - "WebSocket %s" %s',
                                   ("127.0.0.1:5", f"/v1/live?access_token={TOKEN}", "[accepted]"),
                                   None)
        record.exc_info = sys.exc_info()
    record.secret = SECRET
    line = formatter.format(record)
    assert TOKEN not in line
    assert TOKEN.removeprefix("vb_") not in line
    assert SECRET not in line
    assert "access_token=[redacted]" in line
    if isinstance(formatter, JsonFormatter):
        assert json.loads(line)["logger"] == "uvicorn.error"
