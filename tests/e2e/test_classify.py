"""`POST /v1/audio/classify` (issue 25) through the real API, worker and sound model: the labels
of a short clip of an audience, and of speech then music; a clip too long, not audio, empty or
missing refused with stable codes; keys checked and their clips kept apart."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from support import DATA, Process, keyed_client, make_key, write_audio
from synthetic import melody

from worker.audio import pcm_blocks

ROUTE = "/v1/audio/classify"


def samples(path: Path) -> np.ndarray:
    return np.concatenate(list(pcm_blocks(path, 3600)))


def classify(http: httpx.Client, path: Path, name: str | None = None) -> httpx.Response:
    with path.open("rb") as f:
        return http.post(ROUTE, files={"file": (name or path.name, f)}, timeout=120)


@pytest.fixture(scope="module")
def speech_then_music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JFK's 11 s, then 8 s of a tune."""
    mix = np.concatenate([samples(DATA / "jfk.flac"), melody(8.0)])
    return write_audio(tmp_path_factory.mktemp("classify") / "speech-music.flac", mix)


def test_an_audience_is_heard_cheering_then_clapping(client: httpx.Client) -> None:
    """The audience claps and cheers; the model hears the cheering, then the clapping where the
    cheering dies down (docs/guides/sounds.md)."""
    answer = classify(client, DATA / "applause.flac")
    assert answer.status_code == 200, answer.text
    labels = answer.json()
    assert labels["duration"] == pytest.approx(3.688, abs=0.01)
    names = [label["label"] for label in labels["labels"]]
    assert names[:2] == ["Cheering", "Applause"], labels
    assert all(0 <= label["score"] <= 1 for label in labels["labels"])
    scores = [label["score"] for label in labels["labels"]]
    assert scores == sorted(scores, reverse=True)
    assert [s["label"] for s in labels["sounds"]] == ["cheering", "applause"], labels["sounds"]


def test_speech_then_music_gives_both_and_the_music_in_place(
    client: httpx.Client, speech_then_music: Path
) -> None:
    answer = classify(client, speech_then_music)
    assert answer.status_code == 200, answer.text
    labels = answer.json()
    names = [label["label"] for label in labels["labels"]]
    assert {"Speech", "Music"} <= set(names), names
    assert [(s["label"], round(s["start"])) for s in labels["sounds"]] == [("music", 11)]
    assert labels["sounds"][0]["end"] == pytest.approx(19.0, abs=1.0)


@pytest.mark.parametrize(("make", "status", "code"), [
    pytest.param(lambda folder: write_audio(folder / "long.flac", melody(31.0)), 413,
                 "clip_too_long", id="too-long"),
    pytest.param(lambda folder: _written(folder / "notes.wav", b"these are not sounds\n" * 50),
                 415, "unsupported_media", id="not-audio"),
    pytest.param(lambda folder: _written(folder / "empty.wav", b""), 400, "empty_file",
                 id="empty"),
])
def test_a_bad_clip_is_refused_with_a_stable_code(
    client: httpx.Client, tmp_path: Path, make: object, status: int, code: str
) -> None:
    answer = classify(client, make(tmp_path))  # type: ignore[operator]
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert answer.json()["error"]["param"] == "file"


def test_a_request_without_a_file_is_refused(client: httpx.Client) -> None:
    answer = client.post(ROUTE, data={"name": "nothing"}, files={"other": ("x.txt", b"x")})
    assert answer.status_code == 400, answer.text  # OpenAI's status, as under /v1/audio/
    assert answer.json()["error"]["code"] == "validation_error"


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def keyed(auth_api: tuple[Process, str], redis_url: str) -> Iterator[dict[str, httpx.Client]]:
    clients = {name: keyed_client(auth_api[1], make_key(redis_url, name, **limits)[1])
               for name, limits in (("a", {}), ("b", {}), ("slow", {"rate_per_minute": 1}))}
    clients["none"] = keyed_client(auth_api[1], None)
    yield clients
    for http in clients.values():
        http.close()


def test_a_key_is_needed_and_its_rate_counts(keyed: dict[str, httpx.Client]) -> None:
    answer = classify(keyed["none"], DATA / "applause.flac")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    assert classify(keyed["slow"], DATA / "applause.flac").status_code == 200
    answer = classify(keyed["slow"], DATA / "applause.flac")
    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "rate_limited"


def test_two_keys_at_once_each_get_their_own_clips_labels(
    keyed: dict[str, httpx.Client], speech_then_music: Path
) -> None:
    with ThreadPoolExecutor(2) as pool:
        audience = pool.submit(classify, keyed["a"], DATA / "applause.flac", "clip.flac")
        music = pool.submit(classify, keyed["b"], speech_then_music, "clip.flac")
        answers = audience.result(), music.result()
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert [s["label"] for s in answers[0].json()["sounds"]] == ["cheering", "applause"]
    assert [s["label"] for s in answers[1].json()["sounds"]] == ["music"]
