"""Subtitle options on the transcript downloads and the OpenAI route, against the real API,
worker and model: the answers parsed with `srt`, `webvtt-py` and pysubs2, and every bad value
refused with 422 naming its option."""

from __future__ import annotations

from itertools import pairwise

import httpx
import pysubs2
import pytest
import srt
import webvtt
from support import DATA, submit, wait_for_job

from shared.output.subtitles import display_width

JFK = DATA / "jfk.flac"


@pytest.fixture(scope="module")
def job_id(client: httpx.Client) -> str:
    job = submit(client, JFK, word_timestamps="true")
    assert wait_for_job(client, job["id"])["status"] == "completed"
    return str(job["id"])


def words(text: str) -> list[str]:
    return text.lower().replace(",", "").replace(".", "").replace("\n", " ").split()


def test_srt_obeys_line_width_and_count(client: httpx.Client, job_id: str) -> None:
    plain = client.get(f"/v1/jobs/{job_id}/transcript.txt").text
    answer = client.get(f"/v1/jobs/{job_id}/transcript.srt",
                        params={"max_line_width": 32, "max_line_count": 2})
    assert answer.status_code == 200
    cues = list(srt.parse(answer.text))
    assert len(cues) > 1
    assert all(display_width(line) <= 32 for cue in cues for line in cue.content.split("\n"))
    assert all(len(cue.content.split("\n")) <= 2 for cue in cues)
    assert words(" ".join(cue.content for cue in cues)) == words(plain)
    for before, after in pairwise(cues):
        assert before.end <= after.start


def test_broadcast_vtt_highlights_words_within_seven_second_cues(
    client: httpx.Client, job_id: str
) -> None:
    answer = client.get(f"/v1/jobs/{job_id}/transcript.vtt",
                        params={"preset": "broadcast", "highlight_words": "true"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/vtt")
    captions = list(webvtt.from_string(answer.text))
    assert "<00:00:" in answer.text  # cue timestamps before the words
    for caption in captions:
        start = caption.start_in_seconds + caption.start_time.milliseconds / 1000
        end = caption.end_in_seconds + caption.end_time.milliseconds / 1000
        assert end - start <= 7.0
        assert all(display_width(line) <= 42 for line in caption.text.split("\n"))


def test_ass_is_a_download_format_with_karaoke(client: httpx.Client, job_id: str) -> None:
    answer = client.get(f"/v1/jobs/{job_id}/transcript.ass",
                        params={"preset": "mobile", "highlight_words": "true"})
    assert answer.status_code == 200
    assert answer.headers["content-disposition"].startswith('attachment; filename="jfk.ass"')
    events = pysubs2.SSAFile.from_string(answer.text).events
    assert all(r"{\k" in event.text for event in events)
    assert "ask not what your country" in " ".join(words(" ".join(e.plaintext for e in events)))
    assert all(display_width(line) <= 32 for e in events for line in e.plaintext.split("\n"))


@pytest.mark.parametrize(
    ("query", "option"),
    [
        ("max_line_width=3", "max_line_width"),
        ("max_line_width=wide", "max_line_width"),
        ("max_line_count=0", "max_line_count"),
        ("max_cue_seconds=-1", "max_cue_seconds"),
        ("min_cue_seconds=nan", "min_cue_seconds"),
        ("max_chars_per_second=0", "max_chars_per_second"),
        ("highlight_words=perhaps", "highlight_words"),
        ("preset=cinema", "preset"),
        ("min_cue_seconds=5&max_cue_seconds=2", "min_cue_seconds"),
        ("preset=sdh&sound_words=noise%3DHISS", "sound_words"),
        ("preset=sdh&sound_words=music", "sound_words"),
    ],
)
@pytest.mark.parametrize("fmt", ["srt", "vtt", "ass"])
def test_bad_options_are_422_naming_the_option(
    client: httpx.Client, job_id: str, fmt: str, query: str, option: str
) -> None:
    answer = client.get(f"/v1/jobs/{job_id}/transcript.{fmt}?{query}")
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert option in error["message"]


def test_openai_srt_takes_the_same_options(client: httpx.Client) -> None:
    with JFK.open("rb") as file:
        answer = client.post("/v1/audio/transcriptions", files={"file": ("jfk.flac", file)},
                             data={"model": "whisper-1", "response_format": "srt",
                                   "max_line_width": "24", "max_line_count": "1"}, timeout=300)
    assert answer.status_code == 200, answer.text
    cues = list(srt.parse(answer.text))
    assert len(cues) > 3
    assert all("\n" not in cue.content and display_width(cue.content) <= 24 for cue in cues)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "srt", "max_line_width": "0"}, "max_line_width"),
        ({"response_format": "vtt", "preset": "cinema"}, "preset"),
        ({"response_format": "json", "max_line_count": "2"}, "max_line_count"),
    ],
)
def test_openai_bad_subtitle_options_name_their_param(
    client: httpx.Client, fields: dict[str, str], param: str
) -> None:
    with JFK.open("rb") as file:
        answer = client.post("/v1/audio/transcriptions", files={"file": ("jfk.flac", file)},
                             data={"model": "whisper-1", **fields})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param
    assert answer.json()["error"]["code"] == "validation_error"
