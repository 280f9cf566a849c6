"""Sounds through the running service (issue 25): a job asking for `sounds` on speech, then
music, then clapping, then an audience gets its words and its sounds in order; the `sdh` SRT
holds the tags ([MUSIC], [APPLAUSE], [CHEERING]) after the speech cues; the tsv has sound
rows."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import srt
from support import DATA, submit, wait_for_job, write_audio
from synthetic import applause, melody

from worker.audio import pcm_blocks


def samples(path: Path) -> np.ndarray:
    return np.concatenate(list(pcm_blocks(path, 3600)))


@pytest.fixture(scope="module")
def job(client: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The finished job of JFK's 11 s, 8 s of a tune, 6 s of clapping, then an audience
    twice (32.4 s)."""
    audience = samples(DATA / "applause.flac")
    mix = np.concatenate([samples(DATA / "jfk.flac"), melody(8.0), applause(6.0), audience,
                          audience])
    path = write_audio(tmp_path_factory.mktemp("sounds") / "mix.flac", mix)
    done = wait_for_job(client, submit(client, path, sounds="true", vad_filter="false",
                                       language="en")["id"])
    assert done["status"] == "completed", done
    assert done["options"]["sounds"] is True
    return done


def test_the_json_has_the_words_then_the_sounds(client: httpx.Client, job: dict) -> None:
    transcript = client.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    assert "ask not what your country can do for you" in transcript["text"]
    labels = [(s["label"], round(s["start"])) for s in transcript["sounds"]]
    # The clapping is heard as applause; the real audience, which claps and cheers, as cheering
    # and then, in its last second or so, applause; the audience comes twice.
    assert labels[0] == ("music", 11), transcript["sounds"]
    assert [label for label, _ in labels[1:]] == ["applause", *["cheering", "applause"] * 2], labels
    music, clapping, audience = transcript["sounds"][:3]
    assert music["end"] <= clapping["start"] <= 20.5, transcript["sounds"]
    assert 24.0 <= clapping["end"] <= audience["start"] <= 26.5, transcript["sounds"]
    assert max(s["end"] for s in transcript["segments"]) <= transcript["sounds"][0]["start"] + 0.5


def test_the_sdh_srt_holds_the_tags_between_speech(client: httpx.Client, job: dict) -> None:
    answer = client.get(f"/v1/jobs/{job['id']}/transcript.srt", params={"preset": "sdh"})
    assert answer.status_code == 200
    cues = list(srt.parse(answer.text))
    texts = [cue.content for cue in cues]
    music = texts.index("[MUSIC]")
    assert texts[music + 1:] == ["[APPLAUSE]", *["[CHEERING]", "[APPLAUSE]"] * 2], texts
    assert "country" in texts[music - 1]
    assert cues[music - 1].end <= cues[music].start < cues[music].end <= cues[music + 1].start
    assert cues[music + 1].end <= cues[music + 2].start, "the applause, then the audience"
    plain = client.get(f"/v1/jobs/{job['id']}/transcript.srt").text
    assert "[MUSIC]" not in plain


def test_the_tsv_has_sound_rows(client: httpx.Client, job: dict) -> None:
    rows = client.get(f"/v1/jobs/{job['id']}/transcript.tsv").text.splitlines()
    assert rows[0] == "start\tend\ttext\tkind"
    kinds = [row.split("\t")[-1] for row in rows[1:]]
    first = kinds.index("sound") + 1
    assert set(kinds[first - 1:]) == {"sound"}, rows
    labels = [row.split("\t")[2] for row in rows[first:]]
    assert labels[:3] == ["music", "applause", "cheering"], rows
