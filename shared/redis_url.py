"""The form of `VERBATIM_REDIS_URL` (issue 23): one Redis (`redis://`, `rediss://`, `unix://`),
or Redis Sentinels and the name of the primary they watch,
`sentinel://[:password@]host:port[,host:port...]/master[/db]`.

Only the grammar, without Redis's client library, so that checking the setting
(`shared/config.py`) costs every process, the `verbatim` command's included, nothing of it. The
clients themselves are `shared/redis_connect.py`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

SENTINEL_SCHEME = "sentinel://"
_HOST = r"[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]"
_SENTINEL = re.compile(
    rf"sentinel://(?::(?P<password>[^@/]*)@)?(?P<hosts>(?:(?:{_HOST}):\d{{1,5}},?)+)"
    r"/(?P<master>[A-Za-z0-9_.\-]+)(?:/(?P<db>\d{1,2}))?/?"
)


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    master: str
    db: int = 0
    password: str | None = None


def sentinel_target(url: str) -> SentinelTarget | None:
    """The Sentinels and primary a `sentinel://` URL names; None for a URL of one Redis.
    `ValueError` for a `sentinel://` URL that is malformed."""
    if not url.startswith(SENTINEL_SCHEME):
        return None
    match = _SENTINEL.fullmatch(url)
    if match is None:
        raise ValueError("a Sentinel URL reads sentinel://[:password@]host:port[,host:port...]"
                         "/master_name[/db]")
    sentinels = []
    for address in filter(None, match["hosts"].split(",")):
        host, _, port = address.rpartition(":")
        if not 0 < int(port) < 65536:
            raise ValueError(f"the Sentinel port {port} is out of range")
        sentinels.append((host.strip("[]"), int(port)))
    password = unquote(match["password"]) if match["password"] else None
    return SentinelTarget(sentinels, match["master"], int(match["db"] or 0), password)


def check_url(url: str) -> str:
    """`url` if it names one Redis or well-formed Sentinels; `ValueError` otherwise."""
    if sentinel_target(url) is None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("redis_url must start with redis://, rediss://, unix:// or sentinel://")
    return url
