"""Speakers told apart by voice (issue 21), through the running service with the real
Whisper model and the real speaker embedder, on conversations built from real readers
(`tests/conversations.py`): three readers through the job API, two through OpenAI's SDK
with one of them named by a reference clip."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from conversations import THREE, TWO, Turn, assert_turns_labelled, build, in_data
from support import DATA, Process, submit, wait_for_job


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conversations")


@pytest.fixture(scope="module")
def oai(api_url: str, worker: Process) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{api_url}/v1", api_key="dummy", max_retries=0) as client:
        yield client


def test_three_readers_come_back_under_their_own_labels(client: httpx.Client,
                                                        folder: Path) -> None:
    turns = build(in_data(THREE), folder / "three.flac")
    job = wait_for_job(client, submit(client, folder / "three.flac", diarize="voices",
                                      word_timestamps="true")["id"])
    assert job["status"] == "completed", job
    assert len(job["speakers"]) == 3
    assert sum(s["turns"] for s in job["speakers"]) >= len(turns)
    transcript = client.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    assert_turns_labelled(transcript, turns)


def _speakers_per_turn(segments: list, turns: list[Turn]) -> list[set[str]]:
    found: list[set[str]] = [set() for _ in turns]
    for segment in segments:
        middle = (segment.start + segment.end) / 2
        for i, turn in enumerate(turns):
            if turn.start - 0.3 <= middle <= turn.end + 0.3:
                found[i].add(segment.speaker)
    return found


def test_diarized_json_names_a_known_speaker_through_the_openai_sdk(
    oai: openai.OpenAI, folder: Path
) -> None:
    """Reader 1089 given by a clip of his own (not one of the conversation's utterances)."""
    turns = build(in_data(TWO), folder / "two.flac")
    clip = base64.b64encode((DATA / "1089-134691-0001.flac").read_bytes()).decode()
    answer = oai.audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize", file=(folder / "two.flac").open("rb"),
        response_format="diarized_json", known_speaker_names=["alice"],
        known_speaker_references=[f"data:audio/flac;base64,{clip}"])
    assert answer.task == "transcribe"
    assert {s.type for s in answer.segments} == {"transcript.text.segment"}
    per_turn = _speakers_per_turn(answer.segments, turns)
    assert all(len(speakers) == 1 for speakers in per_turn), per_turn
    assert [speakers.pop() for speakers in per_turn] == ["alice", "A", "alice", "A"]
    assert "belly" in answer.text.lower()


def test_diarized_json_is_for_transcriptions_only(client: httpx.Client) -> None:
    response = client.post("/v1/audio/translations", files={"file": ("x.flac", b"x")},
                           data={"response_format": "diarized_json"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format"
