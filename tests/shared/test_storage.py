"""Upload names: what a client's filename becomes, and which files the sweep recognises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli.batch import MEDIA_EXTENSIONS
from shared.media.storage import MEDIA_SUFFIXES, clean_filename, parse_upload_name

ROOT = Path(__file__).resolve().parents[2]
JOB = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("talk.mp3", "talk.mp3"),
        ("a\x00b\x07c.flac", "abc.flac"),
        ("line\r\nbreak.wav", "linebreak.wav"),
        ("tab\there.ogg", "tabhere.ogg"),
        ("del\x7f.m4a", "del.m4a"),
        ("c1\x85\x9b.webm", "c1.webm"),
        ("sep\u2028ara\u2029tor.mp4", "separator.mp4"),
        ("Gespräch über Ölpreise.m4a", "Gespräch über Ölpreise.m4a"),
        ("C:\\Users\\me\\talk.mp3", "talk.mp3"),
        ("../../etc/passwd", "passwd"),
        ("\x00\x07\x1b", "upload"),
        ("", "upload"),
        ("  padded.mp3 ", "padded.mp3"),
        ("x" * 300 + ".mp3", ("x" * 300 + ".mp3")[-200:]),
    ],
)
def test_filenames_are_stored_without_control_characters(raw: str, stored: str) -> None:
    assert clean_filename(raw) == stored


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        (f"{JOB}.flac", (JOB, False)),
        (JOB, (JOB, False)),
        (f"partial-{JOB}.m4a", (JOB, True)),
        (f"partial-{JOB}", (JOB, True)),
        (f"{JOB}.tar.gz", None),
        (f"{JOB[:-1]}.mp3", None),
        (f"{JOB.upper()}.mp3", None),
        (".DS_Store", None),
        (f"notes-{JOB}.txt", None),
    ],
)
def test_only_names_given_to_uploads_are_recognised(
    name: str, parsed: tuple[str, bool] | None
) -> None:
    assert parse_upload_name(name) == parsed


def test_every_kind_the_cli_lists_keeps_its_extension_when_stored() -> None:
    assert {f".{extension}" for extension in MEDIA_EXTENSIONS} <= MEDIA_SUFFIXES


def test_with_the_local_store_no_process_loads_the_s3_client() -> None:
    """boto3 costs each API, worker and sweep process a good part of its start; only the `s3`
    store needs it (`shared/media/storage/__init__.py` loads it then)."""
    check = ("import sys, api.main, worker.celery_app, shared.media.sweep; "
             "print(sorted({'boto3', 'botocore'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"
