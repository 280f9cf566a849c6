"""Speaker names saved with a job (issue 21, `PATCH /v1/jobs/{id}/speakers`), through an
auth-required API process on the session's Redis: the names show in the job, the json and every
later download; only the job's key may name them; each bad value is refused, nothing written.

The finished jobs are written to the store as a worker writes them (the page's test,
`tests/browser/test_speakers.py`, names the speakers of a job the real worker diarized)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Process, keyed_client, make_key

from shared.schemas import JobOptions, Segment, Transcript
from shared.state.job_events import stream_key
from shared.state.jobs import JobStore, new_job_id
from shared.turns import speakers_of

SAID = [("S1", " Thank you for calling."), ("S2", " Hello, my horizon is broken."),
        ("S1", " Let me look.")]


@pytest.fixture(scope="module")
def api(auth_api: tuple[Process, str]) -> str:
    return auth_api[1]


@pytest.fixture(scope="module")
def owners(redis_url: str) -> dict[str, tuple[str, str]]:
    return {name: make_key(redis_url, f"names-{name}") for name in ("a", "b")}


@pytest.fixture(scope="module")
def http(api: str, owners: dict[str, tuple[str, str]]) -> Iterator[dict[str, httpx.Client]]:
    clients = {name: keyed_client(api, token) for name, (_, token) in owners.items()}
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def store(redis_url: str) -> JobStore:
    return JobStore.from_url(redis_url)


def finished(store: JobStore, owner: str, diarized: bool = True, done: bool = True) -> str:
    """A job of `owner`'s key: a call diarized by channel (the first named `agent`), completed
    as a worker completes it; or not diarized, or still queued."""
    job_id = new_job_id()
    options = JobOptions(diarize="channels", channel_names="agent") if diarized else JobOptions()
    store.create(job_id, "call.flac", options, 6.0, Path("/gone"), owner=owner)
    segments = [Segment(id=i, start=2.0 * i, end=2.0 * i + 1.5, text=text,
                        speaker=who if diarized else None)
                for i, (who, text) in enumerate(SAID)]
    speakers = speakers_of(segments, {"S1": "agent"}, {"S1": 0, "S2": 1}) if diarized else None
    if done:
        store.complete(job_id, Transcript(
            language="en", duration=6.0, text="".join(t for _, t in SAID).strip(),
            segments=segments, speakers=speakers), ttl=600)
    return job_id


def name(http: httpx.Client, job_id: str, body: Any) -> httpx.Response:
    return http.patch(f"/v1/jobs/{job_id}/speakers", json=body)


def names_of(speakers: list[dict]) -> dict[str, str | None]:
    return {s["label"]: s["name"] for s in speakers}


def test_saved_names_show_in_the_job_the_json_and_every_download(
    http: dict[str, httpx.Client], owners: dict[str, tuple[str, str]], store: JobStore
) -> None:
    job_id = finished(store, owners["a"][0])
    saved = name(http["a"], job_id, {"names": {"S2": "  Ann Smith, PhD  ", "S1": None}})
    assert saved.status_code == 200, saved.text
    assert names_of(saved.json()["speakers"]) == {"S1": None, "S2": "Ann Smith, PhD"}

    assert names_of(http["a"].get(f"/v1/jobs/{job_id}").json()["speakers"]) == names_of(
        saved.json()["speakers"])
    transcript = http["a"].get(f"/v1/jobs/{job_id}/transcript.json").json()
    assert names_of(transcript["speakers"]) == {"S1": None, "S2": "Ann Smith, PhD"}
    assert [s["speaker"] for s in transcript["segments"]] == ["S1", "S2", "S1"]  # labels stay
    txt = http["a"].get(f"/v1/jobs/{job_id}/transcript.txt").text
    assert txt.split("\n\n")[:2] == ["S1: Thank you for calling.",
                                     "Ann Smith, PhD: Hello, my horizon is broken."]
    rttm = http["a"].get(f"/v1/jobs/{job_id}/transcript.rttm").text
    assert [line.split()[7] for line in rttm.splitlines()] == ["S1", "Ann_Smith,_PhD", "S1"]
    once = http["a"].get(f"/v1/jobs/{job_id}/transcript.txt", params={"speaker_names": "S2=Bo"})
    assert "Bo: Hello" in once.text  # a download's own names still come first

    again = name(http["a"], job_id, {"names": {"S1": "Agent"}})  # others keep their names
    assert names_of(again.json()["speakers"]) == {"S1": "Agent", "S2": "Ann Smith, PhD"}
    assert store.redis.ttl(store.transcript_key(job_id)) > 0  # still expires with the job
    assert not store.redis.exists(stream_key(job_id))  # no event was sent


def test_only_the_jobs_key_names_its_speakers(
    http: dict[str, httpx.Client], owners: dict[str, tuple[str, str]], store: JobStore,
    api: str,
) -> None:
    job_id = finished(store, owners["a"][0])
    other = name(http["b"], job_id, {"names": {"S1": "Eve"}})
    assert (other.status_code, other.json()["error"]["code"]) == (404, "job_not_found")
    with keyed_client(api, None) as anonymous:
        nobody = name(anonymous, job_id, {"names": {"S1": "Eve"}})
    assert (nobody.status_code, nobody.json()["error"]["code"]) == (401, "unauthorized")
    assert [s.name for s in store.get_transcript(job_id).speakers] == ["agent", None]


@pytest.mark.parametrize("body", [
    {"names": {}},
    {"names": {"S1": ""}},
    {"names": {"S1": "   "}},
    {"names": {"S1": "x" * 61}},
    {"names": {"S1": "Ann\nBob"}},
    {"names": {"S1": "Ann\u2028Bob"}},
    {"names": {"S1": "Ann\x00"}},
    {"names": {"X1": "Ann"}},
    {"names": {"S0": "Ann"}},
    {"names": {f"S{i}": "Ann" for i in range(1, 22)}},
    {"names": {"S1": 5}},
    {"names": [["S1", "Ann"]]},
    {"names": {"S1": "Ann"}, "other": 1},
    {"labels": {"S1": "Ann"}},
    "S1=Ann",
])
def test_bad_names_are_refused_and_nothing_is_written(
    http: dict[str, httpx.Client], owners: dict[str, tuple[str, str]], store: JobStore,
    body: Any,
) -> None:
    job_id = finished(store, owners["a"][0])
    refused = name(http["a"], job_id, body)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "validation_error")
    assert [s.name for s in store.get_transcript(job_id).speakers] == ["agent", None]


def test_a_label_the_job_lacks_a_job_not_finished_or_a_malformed_body_is_refused(
    http: dict[str, httpx.Client], owners: dict[str, tuple[str, str]], store: JobStore,
) -> None:
    owner = owners["a"][0]
    diarized, plain = finished(store, owner), finished(store, owner, diarized=False)
    for job_id in (diarized, plain):
        unknown = name(http["a"], job_id, {"names": {"S2": "Ann", "S3": "Bob"}})
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "unknown_speaker")
        assert "S3" in unknown.json()["error"]["message"]
    assert [s.name for s in store.get_transcript(diarized).speakers] == ["agent", None]
    waiting = finished(store, owner, done=False)
    queued = name(http["a"], waiting, {"names": {"S1": "Ann"}})
    assert (queued.status_code, queued.json()["error"]["code"]) == (409, "job_not_ready")
    store.delete(waiting)  # never sent to a worker
    diarized, json = finished(store, owner), {"Content-Type": "application/json"}
    for raw in (b"{not json", b"\xd6\xbd:\xff\x14 not UTF-8", b""):
        malformed = http["a"].patch(f"/v1/jobs/{diarized}/speakers", content=raw, headers=json)
        assert (malformed.status_code, malformed.json()["error"]["code"]) == (
            422, "validation_error")
    huge = b'{"names": {"S1": "' + b"a" * 20_000 + b'"}}'
    refused = http["a"].patch(f"/v1/jobs/{diarized}/speakers", content=huge, headers=json)
    assert (refused.status_code, refused.json()["error"]["code"]) == (413, "payload_too_large")
    assert [s.name for s in store.get_transcript(diarized).speakers] == ["agent", None]
