"""The OpenAI-compatible routes driven by OpenAI's own Python SDK against the running service."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator

import httpx
import jiwer
import openai
import pytest
import srt
from support import DATA, Process, start_api, wait_for_job

JFK = DATA / "jfk.flac"
JFK_SECONDS = 11.0
REFERENCE = next(
    e["reference"] for e in json.loads((DATA / "manifest.json").read_text())
    if e["file"] == "jfk.flac"
)


def normalise(text: str) -> str:
    return " ".join(text.lower().translate(str.maketrans("", "", string.punctuation)).split())


def wer(hypothesis: str) -> float:
    return float(jiwer.wer(normalise(REFERENCE), normalise(hypothesis)))


def sdk(url: str) -> openai.OpenAI:
    # No retries: a retried upload would hide a failure behind a second job.
    return openai.OpenAI(base_url=f"{url}/v1", api_key="dummy", max_retries=0)


@pytest.fixture(scope="module")
def oai(api_url: str, worker: Process) -> Iterator[openai.OpenAI]:
    with sdk(api_url) as client:
        yield client


def jfk() -> tuple[str, bytes]:
    return ("jfk.flac", JFK.read_bytes())


def test_text_response_holds_the_words(oai: openai.OpenAI) -> None:
    text = oai.audio.transcriptions.create(model="whisper-1", file=jfk(), response_format="text")
    assert isinstance(text, str)
    assert wer(text) <= 0.1


def test_json_is_the_default_and_the_job_stays_visible(
    oai: openai.OpenAI, client: httpx.Client
) -> None:
    raw = oai.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=jfk(), language="en", prompt="President Kennedy."
    )
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    assert wer(raw.parse().text) <= 0.1
    job = client.get(f"/v1/jobs/{raw.headers['x-verbatim-job-id']}").json()
    assert job["status"] == "completed"
    assert job["options"]["language"] == "en"
    assert job["options"]["initial_prompt"] == "President Kennedy."
    transcript = client.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    assert normalise(transcript["text"]) == normalise(raw.parse().text)


def test_verbose_json_with_segments_and_words(oai: openai.OpenAI) -> None:
    result = oai.audio.transcriptions.create(
        model="whisper-1", file=jfk(), response_format="verbose_json",
        timestamp_granularities=["word", "segment"], temperature=0.2,
    )
    assert result.language == "english"
    assert result.duration == pytest.approx(JFK_SECONDS, abs=0.1)
    assert wer(result.text) <= 0.1
    assert result.segments
    for segment in result.segments:
        assert 0 <= segment.start < segment.end <= JFK_SECONDS + 0.01
        assert segment.temperature == 0.2
        assert segment.avg_logprob < 0
        assert 0 <= segment.no_speech_prob <= 1
        assert segment.compression_ratio > 0
    assert result.words
    assert wer(" ".join(w.word for w in result.words)) <= 0.1
    for word in result.words:
        assert word.word == word.word.strip()
        assert 0 <= word.start <= word.end <= JFK_SECONDS + 0.01
    assert [w.start for w in result.words] == sorted(w.start for w in result.words)
    assert result.to_dict()["task"] == "transcribe"


def test_srt_parses(oai: openai.OpenAI) -> None:
    text = oai.audio.transcriptions.create(model="whisper-1", file=jfk(), response_format="srt")
    cues = list(srt.parse(text))
    assert cues
    assert wer(" ".join(cue.content for cue in cues)) <= 0.1
    for cue in cues:
        assert 0 <= cue.start.total_seconds() < cue.end.total_seconds() <= JFK_SECONDS + 0.01


# openai-python marks `audio.translations` deprecated (whisper-1 is its only model upstream).
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_translation_of_english_speech_is_english(
    oai: openai.OpenAI, client: httpx.Client
) -> None:
    raw = oai.audio.translations.with_raw_response.create(model="whisper-1", file=jfk())
    assert wer(raw.parse().text) <= 0.1
    job = client.get(f"/v1/jobs/{raw.headers['x-verbatim-job-id']}").json()
    assert job["options"]["task"] == "translate"


def test_non_audio_is_refused_in_openai_shape(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        oai.audio.transcriptions.create(
            model="whisper-1", file=("notes.txt", b"this is not audio at all\n" * 10)
        )
    error = caught.value
    assert error.status_code == 415
    assert (error.code, error.type, error.param) == (
        "unsupported_media", "invalid_request_error", "file"
    )
    assert isinstance(error.body, dict)
    assert set(error.body) == {"message", "type", "param", "code"}


def test_bad_response_format_names_the_param(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.audio.transcriptions.create(
            model="whisper-1", file=jfk(), response_format="xml",  # type: ignore[arg-type]
        )
    assert caught.value.param == "response_format"
    assert caught.value.code == "validation_error"


def test_word_timestamps_need_verbose_json(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.audio.transcriptions.create(
            model="whisper-1", file=jfk(), response_format="json",
            timestamp_granularities=["word"],
        )
    assert caught.value.param == "timestamp_granularities"


@pytest.fixture(scope="module")
def impatient_api(
    service_env: dict[str, str], worker: Process, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A second API process that answers at once instead of waiting for the job."""
    env = {**service_env, "VERBATIM_OPENAI_WAIT_SECONDS": "0"}
    api, url = start_api(env, tmp_path_factory.mktemp("logs") / "impatient-api.log")
    yield url
    api.stop()


def test_past_the_wait_answers_202_and_the_job_completes(
    impatient_api: str, client: httpx.Client
) -> None:
    with sdk(impatient_api) as impatient:
        raw = impatient.audio.transcriptions.with_raw_response.create(
            model="whisper-1", file=jfk(), response_format="text"
        )
    assert raw.status_code == 202
    body = json.loads(raw.text)
    assert body["status"] in ("queued", "processing")
    assert raw.headers["location"] == f"/v1/jobs/{body['id']}"
    job = wait_for_job(client, body["id"])
    assert job["status"] == "completed"
    transcript = client.get(f"{raw.headers['location']}/transcript.json").json()
    assert wer(transcript["text"]) <= 0.1
