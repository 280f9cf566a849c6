"""Every `/v1` route asks who is calling, and only the routes that opt in take `access_token`.

A route added later that forgets the key check fails here, not in production."""

from __future__ import annotations

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.auth import caller, caller_or_query_token
from api.deps import existing_job, existing_job_query_token
from api.main import create_app
from shared.config import Settings

# Opened by browsers without headers: download links (the page's, `curl -OJ`).
QUERY_TOKEN_ROUTES = {"get_transcript", "get_transcript_json", "job_events", "get_audio"}
# The dependencies that check the key: `caller`, and the job dependencies of `/jobs/{id}`
# routes, which look the key up in the same round trip as the job.
QUERY_TOKEN_CHECKS = {caller_or_query_token, existing_job_query_token}
KEY_CHECKS = {caller, existing_job} | QUERY_TOKEN_CHECKS


def calls(dependant: Dependant) -> set[object]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= calls(sub)
    return found


def api_routes(routes: list[object], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """(path, route) of every FastAPI route, through included routers (FastAPI keeps those as
    wrappers around the original router)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append((prefix + route.path, route))
        elif included := getattr(route, "original_router", None):
            context = route.include_context  # type: ignore[attr-defined]
            found += api_routes(included.routes, prefix + context.prefix)
    return found


def v1_routes() -> list[APIRoute]:
    app = create_app(Settings(auth="required"))
    return [route for path, route in api_routes(app.routes) if path.startswith("/v1/")]


def test_every_v1_route_depends_on_the_callers_key() -> None:
    routes = v1_routes()
    assert len(routes) >= 7
    for route in routes:
        assert calls(route.dependant) & KEY_CHECKS, route.path


def test_only_the_opted_in_routes_take_the_key_in_the_query_string() -> None:
    taking = {route.name for route in v1_routes()
              if calls(route.dependant) & QUERY_TOKEN_CHECKS}
    assert taking == QUERY_TOKEN_ROUTES


def test_the_schema_documents_the_401_and_the_429s() -> None:
    schema = create_app(Settings(auth="required")).openapi()
    create = schema["paths"]["/v1/jobs"]["post"]["responses"]
    assert "`unauthorized`" in create["401"]["description"]
    assert "`too_many_active_jobs`" in create["429"]["description"]
    assert "401" in schema["paths"]["/v1/jobs"]["get"]["responses"]
    assert "429" in schema["paths"]["/v1/audio/transcriptions"]["post"]["responses"]
