"""Speakers told apart by voice (issue 21), through the running service with the real
Whisper model and the real speaker embedder, on conversations built from real readers
(`tests/conversations.py`)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conversations import THREE, TWO, Turn, build, in_data
from support import submit, wait_for_job


def _labels_per_turn(transcript: dict, turns: list[Turn]) -> list[set[str]]:
    """The labels of the words said within each reference turn."""
    found: list[set[str]] = [set() for _ in turns]
    for segment in transcript["segments"]:
        for word in segment["words"]:
            middle = (word["start"] + word["end"]) / 2
            for i, turn in enumerate(turns):
                if turn.start - 0.3 <= middle <= turn.end + 0.3:
                    found[i].add(word["speaker"])
    return found


@pytest.fixture(scope="module")
def conversations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[Turn]]]:
    folder = tmp_path_factory.mktemp("conversations")
    return {name: (folder / f"{name}.flac", build(in_data(turns), folder / f"{name}.flac"))
            for name, turns in (("two", TWO), ("three", THREE))}


@pytest.mark.parametrize(("name", "count"), [("two", 2), ("three", 3)])
def test_each_turn_comes_back_under_its_speakers_label(
    client: httpx.Client, conversations: dict[str, tuple[Path, list[Turn]]], name: str,
    count: int,
) -> None:
    path, turns = conversations[name]
    job = wait_for_job(client, submit(client, path, diarize="voices",
                                      word_timestamps="true")["id"])
    assert job["status"] == "completed", job
    assert len(job["speakers"]) == count
    transcript = client.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    per_turn = _labels_per_turn(transcript, turns)
    assert all(len(labels) == 1 for labels in per_turn), per_turn
    label_of = {turn.speaker: labels.pop() for turn, labels in zip(turns, per_turn,
                                                                  strict=True)}
    # A speaker who comes back keeps the label; different speakers have different ones.
    assert len(set(label_of.values())) == count
    for turn, labels in zip(turns, _labels_per_turn(transcript, turns), strict=True):
        assert labels == {label_of[turn.speaker]}
