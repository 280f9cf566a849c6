"""Speaker labels through the running service and the real model (issue 21): a stereo call
labelled by channel in every format, and the refusals at submission."""

from __future__ import annotations

import csv
import io

import httpx
import pysubs2
import pytest
import srt
import webvtt
from support import DATA, submit, wait_for_job

STEREO = DATA / "stereo_diarization.flac"
LEFT, RIGHT = "wizard", "horizon"  # a word only the left, and only the right, channel says


@pytest.fixture(scope="module")
def call(client: httpx.Client) -> dict:
    """The stereo call, diarized by channel with names, once finished."""
    job = submit(client, STEREO, diarize="channels", channel_names="agent,customer")
    done = wait_for_job(client, job["id"])
    assert done["status"] == "completed", done
    return done


def _download(client: httpx.Client, job: dict, fmt: str, **params: str) -> str:
    response = client.get(f"/v1/jobs/{job['id']}/transcript.{fmt}", params=params)
    assert response.status_code == 200, response.text
    return response.text


def test_each_channel_is_one_speaker_with_its_own_words(client: httpx.Client,
                                                        call: dict) -> None:
    transcript = client.get(f"/v1/jobs/{call['id']}/transcript.json").json()
    said = {who: " ".join(s["text"] for s in transcript["segments"] if s["speaker"] == who)
            for who in ("S1", "S2")}
    assert (LEFT in said["S1"].lower(), RIGHT in said["S1"].lower()) == (True, False)
    assert (RIGHT in said["S2"].lower(), LEFT in said["S2"].lower()) == (True, False)
    assert [(s["label"], s["name"], s["channel"], s["turns"]) for s in call["speakers"]] == [
        ("S1", "agent", 0, 1), ("S2", "customer", 1, 1)]
    assert all(s["talk_seconds"] > 1 for s in call["speakers"])
    assert transcript["speakers"] == call["speakers"]


def test_every_format_shows_the_speakers(client: httpx.Client, call: dict) -> None:
    text = _download(client, call, "txt")
    assert {line.split(":")[0] for line in text.split("\n\n") if line} == {"agent", "customer"}
    cues = list(srt.parse(_download(client, call, "srt")))
    assert {c.content.split(":")[0] for c in cues} == {"agent", "customer"}
    voices = {c.voice for c in webvtt.from_string(_download(client, call, "vtt"))}
    assert voices == {"agent", "customer"}
    rows = list(csv.DictReader(io.StringIO(_download(client, call, "tsv")), delimiter="\t"))
    assert {r["speaker"] for r in rows} == {"agent", "customer"}
    subs = pysubs2.SSAFile.from_string(_download(client, call, "ass"))
    assert {e.style for e in subs} == {"agent", "customer"}
    rttm = _download(client, call, "rttm", speaker_names="S1=Ann,S2=Bob").splitlines()
    assert sorted(line.split()[7] for line in rttm) == ["Ann", "Bob"]
    assert "Bob: " in _download(client, call, "txt", speaker_names="S2=Bob")


def test_a_malformed_rename_is_refused(client: httpx.Client, call: dict) -> None:
    response = client.get(f"/v1/jobs/{call['id']}/transcript.txt",
                          params={"speaker_names": "S1"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_channels_on_a_mono_recording_are_refused_at_submission(client: httpx.Client) -> None:
    with (DATA / "LJ001-0001.flac").open("rb") as f:
        response = client.post("/v1/jobs", files={"file": ("mono.flac", f)},
                               data={"diarize": "channels"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "not_multichannel"


@pytest.mark.parametrize("fields", [
    {"diarize": "voices", "speakers": "0"},
    {"diarize": "voices", "speakers": "2", "max_speakers": "3"},
    {"diarize": "voices", "min_speakers": "4", "max_speakers": "2"},
    {"diarize": "channels", "channel_names": ",,"},
])
def test_bad_speaker_options_are_refused_at_submission(client: httpx.Client,
                                                       fields: dict[str, str]) -> None:
    with STEREO.open("rb") as f:
        response = client.post("/v1/jobs", files={"file": ("call.flac", f)}, data=fields)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_speakers"
