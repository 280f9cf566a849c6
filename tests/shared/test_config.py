"""The settings of request heads, the upload sweep, the metrics listener and the documentation:
bad values are refused when the settings are read, before anything starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config import Settings


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request_head_timeout_seconds", 0), ("request_head_timeout_seconds", -1),
        ("request_head_timeout_seconds", "soon"),
        ("upload_sweep_interval_seconds", 0), ("upload_sweep_interval_seconds", -5),
        ("upload_sweep_grace_seconds", -1), ("upload_sweep_grace_seconds", "never"),
        ("metrics_port", -1), ("metrics_port", 65536), ("metrics_port", "metrics"),
        ("docs_enabled", "perhaps"), ("openapi_enabled", "sometimes"),
        ("split_seconds", -1), ("split_seconds", "long"),
        ("spread_window_seconds", 5), ("spread_window_seconds", "short"),
        ("live_max_sessions", 0), ("live_max_sessions", 65), ("live_max_sessions", "many"),
        ("live_claim_timeout_seconds", 0), ("live_claim_timeout_seconds", 31),
        ("live_max_session_seconds", 0), ("live_idle_timeout_seconds", -1),
        ("live_lost_seconds", 0), ("live_step_seconds", 0), ("live_step_seconds", 11),
        ("live_max_step_seconds", 0), ("live_max_step_seconds", 16),
        ("live_buffer_seconds", 4), ("live_buffer_seconds", 16),
        ("live_segment_seconds", 0), ("live_beam_size", 0), ("live_beam_size", 21),
        ("live_vad_filter", "perhaps"), ("live_max_frame_bytes", 1023),
        ("sounds", "perhaps"), ("sounds", 2),
        ("live_backlog_frames", 9),
        ("io_webhook_threads", 0), ("io_webhook_threads", 65), ("io_webhook_threads", "some"),
        ("fetches_per_key", 0), ("fetches_per_key", 257), ("fetches_per_key", "fair"),
        ("events_max_streams_per_key", 0), ("events_max_streams_per_key", -3),
        ("events_max_streams_per_key", "lots"), ("events_key_check_seconds", 0),
        ("events_key_check_seconds", -1), ("events_key_check_seconds", 61),
        ("events_key_check_seconds", "often"),
        ("live_backlog_bytes", 65535),
        ("live_backlog_bytes", 256 * 1024 * 1024 + 1), ("live_backlog_bytes", "lots"),
        ("live_backlog_seconds", 0), ("live_backlog_seconds", 3601),
        ("live_backlog_seconds", "long"), ("live_max_sessions_per_key", 0),
        ("live_max_sessions_per_key", 65), ("live_max_sessions_per_key", "few"),
    ],
)  # fmt: skip
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings.model_validate({field: value})


def test_the_defaults_expose_metrics_and_docs_on_the_api_port() -> None:
    settings = Settings.model_validate({})
    assert (settings.metrics_port, settings.docs_enabled, settings.openapi_enabled) == (
        0, True, True)
    assert settings.request_head_timeout_seconds == 20
    assert (settings.upload_sweep_interval_seconds, settings.upload_sweep_grace_seconds) == (
        900, 3600)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBATIM_METRICS_PORT", "9100")
    monkeypatch.setenv("VERBATIM_DOCS_ENABLED", "false")
    monkeypatch.setenv("VERBATIM_REQUEST_HEAD_TIMEOUT_SECONDS", "5")
    settings = Settings()
    assert (settings.metrics_port, settings.docs_enabled) == (9100, False)
    assert settings.request_head_timeout_seconds == 5


def test_a_live_backlog_shorter_than_a_live_step_is_refused() -> None:
    with pytest.raises(ValidationError, match="live_backlog_seconds"):
        Settings.model_validate({"live_max_step_seconds": 10, "live_backlog_seconds": 5})


def test_a_live_step_longer_than_the_live_buffer_is_refused() -> None:
    with pytest.raises(ValidationError, match="live_max_step_seconds"):
        Settings.model_validate({"live_max_step_seconds": 12, "live_buffer_seconds": 10})
