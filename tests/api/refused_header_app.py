"""The service's app plus one route whose response head uvicorn refuses (a control character in
a header value, as a stored filename once put in Content-Disposition), for
`test_filenames.py` to run under uvicorn: `uvicorn refused_header_app:app --app-dir tests/api`."""

from __future__ import annotations

from starlette.responses import Response

from api.main import create_app

app = create_app()


@app.get("/refused")
async def refused() -> Response:
    return Response("never sent", headers={"X-Name": "a\x07b"})
