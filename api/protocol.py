"""uvicorn's HTTP protocol with a deadline on request heads: `uvicorn --http
api.protocol:HeadTimeoutProtocol` (as `verbatim api`, `verbatim serve` and the API image run it).

uvicorn bounds the idle time between requests (`--timeout-keep-alive`) but not the time a client
takes to send a request's line and headers, and any byte resets its keep-alive timer: a client
that sends a head slowly, or part of one and then nothing, holds its connection for good
(Kludex/uvicorn#157 lists `--timeout-request-start` as never done). Behind nginx,
`client_header_timeout` closes those; run alone, the API needs its own deadline. The app cannot
keep one: it sees a request only once the head is complete.

The deadline (`request_head_timeout_seconds`) runs from the connection's opening, and for each
later request on a kept-alive connection from its first byte, until the head is complete; the
body is not timed (uploads may be slow). A connection that sent part of a head then gets a
408 `request_timeout` and is closed; one that sent nothing is just closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.config import get_settings
from shared.errors import RequestTimeout

log = logging.getLogger(__name__)

_BODY = json.dumps({"error": {
    "code": RequestTimeout.code,
    "message": "The request line and headers did not arrive in time.",
}}).encode()
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_BODY), _BODY)
)


class HeadTimeoutProtocol(HttpToolsProtocol):
    """Closes a connection whose request head is not complete in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = get_settings().request_head_timeout_seconds
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_started = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_started = True
        if self.head_timer is None:  # a later request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self.head_started = False
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self.head_timer = self.loop.call_later(self.head_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.head_started:
            self.transport.write(_TIMEOUT_RESPONSE)
        log.info("request head not received in time; connection closed",
                 extra={"client": f"{self.client[0]}:{self.client[1]}" if self.client else None})
        self.transport.close()
