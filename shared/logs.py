"""Logging for the API and the workers: one JSON object per line, or readable text.

Fields bound with `bind()` (the request id, the job id) ride along on every record emitted
in that context, in the event loop and in the threads `run_sync` starts alike. Keyword
`extra=` fields of a call are written too. Messages never carry audio or transcript text.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from shared.config import Settings

# One mutable dict per context: a job id learnt deep inside a request (after the upload)
# is then seen by the request's own log line too, which an inner `ContextVar.set` would not be.
_bound: ContextVar[dict[str, Any] | None] = ContextVar("verbatim_log_fields", default=None)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

# Attributes every LogRecord has; anything else on a record came from `extra=` (uvicorn's
# `color_message` repeats the message with terminal colour codes).
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message"}

_HANDLER_MARK = "_verbatim_handler"

# Secrets that must never reach a log, whoever writes the line (uvicorn writes a WebSocket's
# path with its query string: `"WebSocket /v1/live?access_token=vb_..." [accepted]`): a
# key's `access_token` parameter, anything shaped as a key (`vb_...`, shared/state/keys.py) or a
# webhook signing secret (`whsec_...`). Issue 26.
_SECRETS = re.compile(
    r"(?P<param>access_token=)[^&\s\"'\\]*|\bvb_[A-Za-z0-9_-]{8,}|\bwhsec_[A-Za-z0-9+/=]{8,}",
    re.IGNORECASE,
)
REDACTED = "[redacted]"

# Loggers whose INFO lines carry whole URLs (httpx: "HTTP Request: POST https://...", with a
# webhook's or a signed media URL's query): only their warnings are written.
_QUIET = ("httpx", "httpcore")


def new_request_id() -> str:
    return uuid.uuid4().hex


def valid_request_id(value: str | None) -> str | None:
    """`value` when it is a sane request id (1-128 URL-safe characters), else None."""
    return value if value and _REQUEST_ID.fullmatch(value) else None


@contextmanager
def bind(**fields: Any) -> Iterator[dict[str, Any]]:
    """Attach `fields` to every record logged inside the block; yields the live dict."""
    bound = {**(_bound.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _bound.set(bound)
    try:
        yield bound
    finally:
        _bound.reset(token)


def add_fields(**fields: Any) -> None:
    """Attach `fields` to the enclosing `bind()` block, e.g. the job id a request created."""
    bound = _bound.get()
    if bound is not None:
        bound.update({k: v for k, v in fields.items() if v is not None})


def bound_fields() -> dict[str, Any]:
    return dict(_bound.get() or {})


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The context fields and the `extra=` fields of a record."""
    extra = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
    return bound_fields() | extra


def redact(text: str) -> str:
    """`text` without the secrets `_SECRETS` matches."""
    return _SECRETS.sub(lambda m: (m["param"] or "") + REDACTED, text)


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", "process", "pid", ...fields, "exc_info"?}`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.processName,
            "pid": record.process,
        }
        line.update(record_fields(record))
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """`time LEVEL [process] logger: message key=value ...` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(processName)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in record_fields(record).items())
        if not fields:
            return redact(text)
        head, newline, rest = text.partition("\n")  # keep a traceback below the fields
        return redact(f"{head} {fields}{newline}{rest}")


def configure_logging(settings: Settings) -> None:
    """Send every logger's records to stderr in `settings.log_format`, once per process.

    uvicorn's own handlers are removed so its lines come through ours, and its access log is
    off: the API writes one line per request itself (`api/observability.py`).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    setattr(handler, _HANDLER_MARK, True)
    # (Celery's pool reports a pool process's death on "multiprocessing", which never
    # propagates: without a handler of its own, Python would print it bare.)
    for logger in (logging.getLogger(), logging.getLogger("multiprocessing")):
        for old in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
    logging.getLogger().setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.captureWarnings(True)
