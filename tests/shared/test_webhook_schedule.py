"""The webhook retry schedule: doubling delays with jitter that add up to about the window."""

from __future__ import annotations

import random

import pytest

from shared.config import Settings
from shared.state.webhooks import retry_delay


def test_the_delays_double_and_add_up_to_about_the_window() -> None:
    settings = Settings(webhook_attempts=10, webhook_window_seconds=86400)
    random.seed(1)
    delays = [retry_delay(attempt, settings) for attempt in range(1, 10)]
    base = 86400 / 511
    for attempt, delay in enumerate(delays, start=1):
        assert 0.8 * base * 2 ** (attempt - 1) <= delay <= 1.2 * base * 2 ** (attempt - 1)
    assert sum(delays) == pytest.approx(86400, rel=0.2)
    assert 120 < delays[0] < 220  # the first retry comes after about three minutes


def test_jitter_spreads_events_that_failed_together() -> None:
    settings = Settings()
    assert len({round(retry_delay(1, settings), 3) for _ in range(20)}) > 10


@pytest.mark.parametrize(("field", "value"), [
    ("webhook_attempts", 0), ("webhook_window_seconds", 0), ("webhook_secret", "plain"),
    ("webhook_timeout_seconds", -1), ("idempotency_ttl_seconds", 0),
])  # fmt: skip
def test_bad_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        Settings(**{field: value})


def test_fetch_allow_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBATIM_FETCH_ALLOW", " 127.0.0.1, 10.0.0.0/8 ,minio.internal,")
    assert Settings().fetch_allow == ["127.0.0.1", "10.0.0.0/8", "minio.internal"]
