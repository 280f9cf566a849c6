"""OpenAI's `stream=true` on `/v1/audio/transcriptions`, read by OpenAI's own SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from sse_client import Received
from support import DATA, Process, start_api


@pytest.fixture(scope="module")
def oai(api_url: str, worker: Process) -> Iterator[openai.OpenAI]:
    # No retries: a retried upload would hide a failure behind a second job.
    with openai.OpenAI(base_url=f"{api_url}/v1", api_key="dummy", max_retries=0) as client:
        yield client


def stream(oai: openai.OpenAI, path: Path, **options: str) -> tuple[list[Received], str]:
    """The SDK's stream of a transcription: its events as they came, and the job's id."""
    response = oai.audio.transcriptions.with_streaming_response.create(
        model="whisper-1", file=(path.name, path.read_bytes()), stream=True, **options
    )
    received = []
    with response as raw:
        job_id = raw.headers["x-verbatim-job-id"]
        for event in raw.parse():
            received.append(Received("", event.type, event.model_dump(), time.time()))
    return received, job_id


def test_sdk_yields_deltas_while_the_job_runs(
    oai: openai.OpenAI, client: httpx.Client, long_recording: Path
) -> None:
    received, job_id = stream(oai, long_recording)
    kinds = [event.name for event in received]
    assert kinds[-1] == "transcript.text.done"
    assert kinds.count("transcript.text.done") == 1
    deltas = [event for event in received if event.name == "transcript.text.delta"]
    assert len(deltas) >= 3
    done = received[-1]
    # The last 30-s stretch is decoded after the first one's deltas came.
    assert deltas[-1].at - deltas[0].at > 0.3, "the deltas came all at once, at the end"
    transcript = client.get(f"/v1/jobs/{job_id}/transcript.json").json()
    assert done.data["text"] == transcript["text"]
    assert "".join(d.data["delta"] for d in deltas).strip() == transcript["text"]


def test_create_with_stream_true_iterates_events(oai: openai.OpenAI) -> None:
    """The plain call a user writes: `create(..., stream=True)` and a for loop."""
    events = list(oai.audio.transcriptions.create(
        model="whisper-1", file=("jfk.flac", (DATA / "jfk.flac").read_bytes()), stream=True,
        response_format="text",
    ))
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert "ask not what your country can do for you" in events[-1].text.lower()


def test_bad_stream_value_is_an_sdk_error(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        oai.audio.transcriptions.create(
            model="whisper-1", file=("jfk.flac", (DATA / "jfk.flac").read_bytes()),
            stream=True, response_format="srt",
        )
    assert raised.value.body["param"] == "stream"  # type: ignore[index]


def test_heartbeats_do_not_break_the_sdk(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, worker: Process,
    long_recording: Path,
) -> None:
    """With a heartbeat every second, many come between deltas: the SDK must skip them."""
    env = service_env | {"VERBATIM_EVENTS_PING_SECONDS": "1"}
    process, url = start_api(env, tmp_path_factory.mktemp("logs") / "ping-api.log")
    try:
        with openai.OpenAI(base_url=f"{url}/v1", api_key="dummy", max_retries=0) as client:
            received, _ = stream(client, long_recording)
    finally:
        process.stop()
    assert received[-1].name == "transcript.text.done"
    assert {event.name for event in received} == {"transcript.text.delta", "transcript.text.done"}


def test_a_job_deleted_mid_stream_is_an_sdk_error(
    oai: openai.OpenAI, client: httpx.Client, long_recording: Path
) -> None:
    response = oai.audio.transcriptions.with_streaming_response.create(
        model="whisper-1", file=(long_recording.name, long_recording.read_bytes()), stream=True,
    )
    deltas: list[str] = []

    def read_deleting_after_the_first(raw: openai.APIResponse) -> None:
        job_id = raw.headers["x-verbatim-job-id"]
        for event in raw.parse():
            deltas.append(event.type)
            if len(deltas) == 1:
                assert client.delete(f"/v1/jobs/{job_id}").status_code == 204

    with response as raw, pytest.raises(openai.APIError) as raised:
        read_deleting_after_the_first(raw)
    assert deltas
    assert set(deltas) == {"transcript.text.delta"}
    assert raised.value.body["code"] == "job_not_found"  # type: ignore[index]
