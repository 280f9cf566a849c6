"""The service returns exactly what faster-whisper itself returns for the same file and options."""

from __future__ import annotations

import httpx
import pytest
from faster_whisper import WhisperModel
from support import DATA, submit, wait_for_job

from worker.offline_model import offline_base_model


@pytest.fixture(scope="module")
def direct_model(tmp_path_factory: pytest.TempPathFactory) -> WhisperModel:
    model_dir = offline_base_model(tmp_path_factory.mktemp("models"))
    return WhisperModel(str(model_dir), device="cpu", compute_type="int8")


@pytest.mark.parametrize(
    ("name", "fields", "kwargs"),
    [
        ("jfk.flac", {}, {}),
        # Where words are timed the service skips silences around hallucinations (issue 11).
        ("1089-134686-0000.flac", {"word_timestamps": "true", "language": "en"},
         {"word_timestamps": True, "language": "en", "hallucination_silence_threshold": 2.0}),
    ],
)
def test_service_transcript_equals_faster_whisper(
    client: httpx.Client, direct_model: WhisperModel, name: str, fields: dict, kwargs: dict
) -> None:
    # The service defaults: beam size 5 and VAD on.
    segments, info = direct_model.transcribe(
        str(DATA / name), beam_size=5, vad_filter=True, **kwargs
    )
    expected = [
        {
            "start": s.start, "end": s.end, "text": s.text,
            "words": [[w.start, w.end, w.word] for w in s.words or []] or None,
        }
        for s in segments
    ]
    job = wait_for_job(client, submit(client, DATA / name, **fields)["id"])
    transcript = client.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    actual = [
        {
            "start": s["start"], "end": s["end"], "text": s["text"],
            "words": [[w["start"], w["end"], w["word"]] for w in s["words"] or []] or None,
        }
        for s in transcript["segments"]
    ]
    assert actual == expected
    assert transcript["language"] == info.language
    assert transcript["duration"] == pytest.approx(info.duration)
