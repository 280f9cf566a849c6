"""`verbatim webhook-secret` prints the deployment's signing secret, the one events carry."""

from __future__ import annotations

import subprocess
import sys

import redis
from support import ROOT

from shared.config import Settings
from shared.state.webhooks import signing_secret


def test_it_prints_the_secret_kept_in_redis(redis_url: str, redis_client: redis.Redis) -> None:
    env = {"VERBATIM_REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "cli.main", "webhook-secret"], cwd=ROOT,
                            env=env, capture_output=True, text=True, check=True, timeout=60)
    printed = result.stdout.strip()
    assert printed.startswith("whsec_")
    assert printed == signing_secret(redis_client, Settings(redis_url=redis_url))


def test_a_configured_secret_wins(redis_url: str) -> None:
    configured = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    env = {"VERBATIM_REDIS_URL": redis_url, "VERBATIM_WEBHOOK_SECRET": configured}
    result = subprocess.run([sys.executable, "-m", "cli.main", "webhook-secret"], cwd=ROOT,
                            env=env, capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == configured
