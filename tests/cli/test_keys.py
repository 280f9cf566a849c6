"""`verbatim keys` against the real Redis, and the client commands against an auth-required API."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Verbatim
from support import DATA, Process

from cli import serve

JFK = DATA / "jfk.flac"


def redis_env(redis_url: str) -> dict[str, str]:
    return {"VERBATIM_REDIS_URL": redis_url}


def test_keys_are_created_listed_and_revoked(verbatim: Verbatim, redis_url: str) -> None:
    made = verbatim("keys", "create", "--name", "ci-runner", "--rate-per-minute", "30",
                    "--max-active-jobs", "4", "--max-audio-hours-per-day", "1.5",
                    env=redis_env(redis_url))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("vb_")
    assert len(token.splitlines()) == 1
    key_id = made.stderr.split()[2]
    assert "whsec_" in made.stderr
    listed = verbatim("keys", "list", env=redis_env(redis_url))
    row = next(line for line in listed.stdout.splitlines() if line.startswith(key_id))
    assert "ci-runner" in row
    assert row.split()[-4:] == ["30", "4", "1.5", "active"]
    assert token not in listed.stdout
    revoked = verbatim("keys", "revoke", key_id, env=redis_env(redis_url))
    assert revoked.returncode == 0
    listed = verbatim("keys", "list", env=redis_env(redis_url))
    assert next(line for line in listed.stdout.splitlines()
                if line.startswith(key_id)).endswith("revoked")
    missing = verbatim("keys", "revoke", "nosuchkey", env=redis_env(redis_url))
    assert missing.returncode == 1
    assert "no key with id 'nosuchkey'" in missing.stderr


def test_bad_limits_are_refused(verbatim: Verbatim, redis_url: str) -> None:
    for option, value in [("--rate-per-minute", "0"), ("--max-active-jobs", "-1"),
                          ("--max-audio-hours-per-day", "0"), ("--rate-per-minute", "many")]:
        refused = verbatim("keys", "create", "--name", "x", option, value,
                           env=redis_env(redis_url))
        assert refused.returncode == 2, (option, value)
        assert option in refused.stderr


def test_transcribe_sends_the_key_from_the_option_or_the_environment(
    verbatim: Verbatim, redis_url: str, auth_api: tuple[Process, str], tmp_path: Path
) -> None:
    token = verbatim("keys", "create", "--name", "cli", env=redis_env(redis_url)).stdout.strip()
    url = auth_api[1]
    by_option = verbatim("transcribe", JFK, "--out", tmp_path, "--server", url,
                         "--api-key", token)
    assert by_option.returncode == 0, by_option.stderr
    by_env = verbatim("transcribe", JFK, "--out", tmp_path, "--server", url,
                      env={"VERBATIM_API_KEY": token})
    assert by_env.returncode == 0, by_env.stderr
    assert "ask not what your country" in (tmp_path / "jfk.txt").read_text().lower()


def test_a_refused_key_is_one_clear_line_and_exit_1(
    verbatim: Verbatim, auth_api: tuple[Process, str], tmp_path: Path
) -> None:
    url = auth_api[1]
    missing = verbatim("transcribe", JFK, "--out", tmp_path, "--server", url)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "verbatim: the server requires an API key: pass --api-key or set VERBATIM_API_KEY "
        "(An API key is required: send `Authorization: Bearer <key>`.)"]
    wrong = verbatim("batch", DATA, "--out", tmp_path, "--server", url,
                     "--api-key", "vb_wrong-key-wrong-key")
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines() == [
        "verbatim: the server refused the API key (The API key is unknown or has been revoked.)"]
    assert not list(tmp_path.iterdir())


def test_serve_runs_open_on_loopback_only_when_auth_is_left_unset_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serve.get_settings.cache_clear()
    monkeypatch.delenv("VERBATIM_AUTH")
    monkeypatch.chdir(Path("/"))  # no .env here
    assert serve._auth_for_serve() == "off"
    serve.get_settings.cache_clear()
    monkeypatch.setenv("VERBATIM_AUTH", "required")
    assert serve._auth_for_serve() == "required"
    serve.get_settings.cache_clear()
    assert serve.auth_notice("required", "127.0.0.1", 8000) is None
    assert "anyone who can reach port 8000 on this machine can use it" in str(
        serve.auth_notice("off", "127.0.0.1", 8000))
    warning = str(serve.auth_notice("off", "0.0.0.0", 8000))
    assert warning.startswith("verbatim: WARNING: VERBATIM_AUTH=off on 0.0.0.0")


def test_a_keys_webhook_secret_is_shown_at_creation_and_rotated(
    verbatim: Verbatim, redis_url: str
) -> None:
    made = verbatim("keys", "create", "--name", "hooks", env=redis_env(redis_url))
    key_id = made.stderr.split()[2]
    first = next(word for word in made.stderr.split() if word.startswith("whsec_")).rstrip(";")
    rotated = verbatim("keys", "rotate-webhook-secret", key_id, env=redis_env(redis_url))
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip().startswith("whsec_")
    assert rotated.stdout.strip() != first
    missing = verbatim("keys", "rotate-webhook-secret", "nosuchkey", env=redis_env(redis_url))
    assert missing.returncode == 1
    assert "no key with id 'nosuchkey'" in missing.stderr
    bad = verbatim("keys", "create", "--name", "x", "--webhook-url", "ftp://example.test/",
                   env=redis_env(redis_url))
    assert bad.returncode == 2
    assert "--webhook-url" in bad.stderr
