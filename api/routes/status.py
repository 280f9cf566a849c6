"""`GET /v1/jobs/{id}`, the route clients poll, served ahead of FastAPI's router.

FastAPI's own handling of a request (the walk through the included routers, dependency solving,
two exit stacks) cost a status read more than the read itself: about 60 us of CPU of the
~200 us the read took (`bench/status_bench.py`). So `create_app` puts this plain Starlette
route first. It answers through the same `existing_job` as `api.routes.jobs.get_job` (the key
check and the job read, in one round trip to Redis), which stays as the route's definition: in
the OpenAPI schema, and as the answer this one must give byte for byte, which
`tests/api/test_status_route.py` checks. The app's middleware and error handlers apply here as
to any route.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from api.deps import existing_job
from shared.schemas import Job

PATH = "/v1/jobs/{job_id}"


def job_response(job: Job) -> Response:
    """The job as JSON, as FastAPI sends a `Job` it is given (pydantic's `dump_json`)."""
    return Response(job.model_dump_json(), media_type="application/json")


async def job_status(request: Request) -> Response:
    return job_response(await existing_job(request, request.path_params["job_id"]))


class StatusRoute(Route):
    def __init__(self) -> None:
        super().__init__(PATH, job_status, methods=["GET"], include_in_schema=False)
        self.methods = {"GET"}  # Starlette adds HEAD; the FastAPI route answers HEAD with 405

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:  # as FastAPI's routes do: the access log and the
            child_scope["route"] = self  # metrics name the route by this template
        return match, child_scope
