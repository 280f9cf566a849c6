"""Who is calling: the API key of a request, checked on every `/v1/*` route (issue 9).

`Identity` is the caller's key (`ApiKey`), or None while `VERBATIM_AUTH=off`. It reads only
`Authorization: Bearer <token>`. A route that browsers open without a way to set headers (a
download link, an `EventSource`, an `<audio>` source, a WebSocket) declares `QueryTokenIdentity`
(or `api.deps.QueryTokenJob`) instead, which also takes the token as an `access_token` query
parameter. That is an explicit opt-in per route: a token in a URL ends up in browser history,
so no other route takes one. The access log writes the path, never the query string
(`api/observability.py`).

Keys are looked up in Redis on every request, never cached, so a revoked key is refused on the
next request on every replica.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.requests import HTTPConnection

from shared.config import Settings
from shared.errors import Unauthorized
from shared.logs import add_fields
from shared.state.keys import ApiKey, KeyFinder

ACCESS_TOKEN_PARAM = "access_token"


async def key_finder(request: Request) -> KeyFinder:
    finder: KeyFinder = request.app.state.key_finder
    return finder


async def app_settings(request: Request) -> Settings:
    """The settings the app was built with (`create_app`). Read from the app rather than set
    as an override of `get_settings`: while any override is set, FastAPI rebuilds every
    dependency's signature on every request, which cost a status read most of its time.
    (`async`, as the other accessors of app state: FastAPI runs a plain `def` dependency in a
    worker thread.)"""
    settings: Settings = request.app.state.settings
    return settings


KeyFinderDep = Annotated[KeyFinder, Depends(key_finder)]
# (`api.deps` imports this module and exports this as `SettingsDep`.)
_SettingsDep = Annotated[Settings, Depends(app_settings)]


def bearer_token(request: HTTPConnection) -> str | None:
    """The token of `Authorization: Bearer <token>` (of a request or a WebSocket handshake),
    else None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def require_token(token: str | None) -> str:
    """The token a request sent; 401 `unauthorized` when it sent none."""
    if token is None:
        raise Unauthorized("An API key is required: send `Authorization: Bearer <key>`.")
    return token


def accepted(key: ApiKey | None) -> ApiKey:
    """The key a token was found to belong to; 401 `unauthorized` when none (or a revoked
    one) was."""
    if key is None:
        raise Unauthorized("The API key is unknown or has been revoked.")
    add_fields(key_id=key.id)  # the request's log lines name the key, never the token
    return key


async def _authenticate(
    settings: Settings, keys: KeyFinder, token: str | None
) -> ApiKey | None:
    if settings.auth == "off":
        return None
    return accepted(await keys.find(require_token(token)))


async def key_of_token(settings: Settings, keys: KeyFinder, token: str | None) -> ApiKey | None:
    """The key of a token sent some other way than a header (a live session's `start`
    message or `access_token`); raises `Unauthorized` as the dependencies do."""
    return await _authenticate(settings, keys, token)


async def caller(request: Request, settings: _SettingsDep, keys: KeyFinderDep) -> ApiKey | None:
    """The calling key, from the `Authorization` header only."""
    return await _authenticate(settings, keys, bearer_token(request))


# The `access_token` query parameter of the routes that opt in.
AccessToken = Annotated[str | None, Query(
    description="The API key, for clients that cannot send an `Authorization` header "
    "(links, `EventSource`, `<audio>`); the header wins when both are sent.",
    max_length=128,
)]


async def caller_or_query_token(
    request: Request, settings: _SettingsDep, keys: KeyFinderDep, access_token: AccessToken = None,
) -> ApiKey | None:
    """The calling key, from the `Authorization` header or the `access_token` parameter."""
    return await _authenticate(settings, keys, bearer_token(request) or access_token)


Identity = Annotated[ApiKey | None, Depends(caller)]
QueryTokenIdentity = Annotated[ApiKey | None, Depends(caller_or_query_token)]


def owner_of(key: ApiKey | None) -> str | None:
    """The owner recorded on the caller's jobs: its key id, or None while auth is off."""
    return key.id if key else None
