"""The settings of request heads, the upload sweep, the metrics listener and the documentation:
bad values are refused when the settings are read, before anything starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.redis_connect import broker
from shared.redis_url import SentinelTarget, sentinel_target


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
        ("live_segment_seconds", 0), ("live_pause_seconds", 0.1), ("live_pause_seconds", 6),
        ("live_pause_seconds", "short"), ("live_beam_size", 0), ("live_beam_size", 21),
        ("live_vad_filter", "perhaps"), ("live_max_frame_bytes", 1023),
        ("sounds", "perhaps"), ("sounds", 2),
        ("live_backlog_frames", 9),
        ("io_webhook_threads", 0), ("io_webhook_threads", 65), ("io_webhook_threads", "some"),
        ("fetches_per_key", 0), ("fetches_per_key", 257), ("fetches_per_key", "fair"),
        ("events_max_streams_per_key", 0), ("events_max_streams_per_key", -3),
        ("events_max_streams_per_key", "lots"), ("events_key_check_seconds", 0),
        ("events_key_check_seconds", -1), ("events_key_check_seconds", 61),
        ("events_key_check_seconds", "often"), ("events_send_timeout_seconds", 0),
        ("events_send_timeout_seconds", -1), ("events_send_timeout_seconds", 301),
        ("events_send_timeout_seconds", "slow"),
        ("live_backlog_bytes", 65535),
        ("live_backlog_bytes", 256 * 1024 * 1024 + 1), ("live_backlog_bytes", "lots"),
        ("live_backlog_seconds", 0), ("live_backlog_seconds", 3601),
        ("live_backlog_seconds", "long"), ("live_max_sessions_per_key", 0),
        ("live_max_sessions_per_key", 65), ("live_max_sessions_per_key", "few"),
        ("storage", "ftp"), ("storage", "S3"), ("storage", ""),
        ("s3_endpoint_url", "127.0.0.1:9000"), ("s3_endpoint_url", "ftp://store"),
        ("s3_endpoint_url", "http://store/bucket"), ("s3_endpoint_url", "http://"),
        ("s3_bucket", "Media"), ("s3_bucket", "ab"), ("s3_bucket", "a_b_c"),
        ("s3_bucket", "x" * 64), ("s3_bucket", "-media"),
        ("s3_part_mib", 4), ("s3_part_mib", 513), ("s3_part_mib", "large"),
        ("s3_parts_in_flight", 0), ("s3_parts_in_flight", 33), ("s3_parts_in_flight", "many"),
        ("redis_url", "127.0.0.1:6379"), ("redis_url", "http://127.0.0.1:6379"),
        ("redis_url", "sentinel://127.0.0.1:26379"), ("redis_url", "sentinel:///mymaster"),
        ("redis_url", "sentinel://127.0.0.1/mymaster"),
        ("redis_url", "sentinel://127.0.0.1:99999/mymaster"),
        ("redis_url", "sentinel://127.0.0.1:26379/my master"),
        ("redis_url", "sentinel://127.0.0.1:26379/mymaster/x"),
        ("diarize", "faces"), ("diarize", ""), ("diarize", 2),
        ("max_voices_per_key", 0), ("max_voices_per_key", 1001), ("max_voices_per_key", "x"),
        ("min_reference_seconds", 0.5), ("min_reference_seconds", 61),
        ("speaker_match", 0), ("speaker_match", 1), ("speaker_match", "close"),
        ("max_classify_seconds", 0.5), ("max_classify_seconds", 601),
        ("max_classify_seconds", "long"),
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


def test_s3_storage_needs_a_bucket() -> None:
    with pytest.raises(ValidationError, match="VERBATIM_S3_BUCKET"):
        Settings.model_validate({"storage": "s3"})


@pytest.mark.parametrize("given", [{"s3_access_key_id": "key"},
                                   {"s3_secret_access_key": "secret"}])
def test_an_s3_access_key_comes_with_its_secret(given: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="set together"):
        Settings.model_validate({"storage": "s3", "s3_bucket": "media", **given})


def test_s3_parts_must_hold_the_largest_upload() -> None:
    with pytest.raises(ValidationError, match="s3_part_mib"):
        Settings.model_validate({"storage": "s3", "s3_bucket": "media", "s3_part_mib": 5,
                                 "max_upload_bytes": 50 * 1024**3})
    fits = Settings.model_validate({"storage": "s3", "s3_bucket": "media", "s3_part_mib": 6,
                                    "max_upload_bytes": 50 * 1024**3})
    assert fits.s3_part_mib * 1024**2 * 10_000 >= fits.max_upload_bytes


def test_s3_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"STORAGE": "s3", "S3_ENDPOINT_URL": "http://127.0.0.1:8333",
                        "S3_BUCKET": "media", "S3_REGION": "eu-west-1",
                        "S3_ACCESS_KEY_ID": "key", "S3_SECRET_ACCESS_KEY": "hunter2",
                        "S3_PART_MIB": "16", "S3_PARTS_IN_FLIGHT": "2"}.items():
        monkeypatch.setenv(f"VERBATIM_{name}", value)
    settings = Settings()
    assert (settings.storage, settings.s3_endpoint_url, settings.s3_bucket,
            settings.s3_region, settings.s3_access_key_id) == (
        "s3", "http://127.0.0.1:8333", "media", "eu-west-1", "key")
    assert (settings.s3_part_mib, settings.s3_parts_in_flight) == (16, 2)
    assert settings.s3_secret_access_key is not None
    assert settings.s3_secret_access_key.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)


def test_local_storage_is_the_default() -> None:
    assert Settings.model_validate({}).storage == "local"


def test_a_sentinel_url_names_its_sentinels_primary_and_database() -> None:
    url = "sentinel://:p%40ss@127.0.0.1:26379,[::1]:26380/mymaster/2"
    assert Settings.model_validate({"redis_url": url}).redis_url == url
    target = sentinel_target(url)
    assert target == SentinelTarget([("127.0.0.1", 26379), ("::1", 26380)], "mymaster", 2,
                                    "p@ss")
    broker_url, options = broker(url)
    assert broker_url == ("sentinel://:p%40ss@127.0.0.1:26379/2;"
                          "sentinel://:p%40ss@[::1]:26380/2")
    assert options["master_name"] == "mymaster"
    assert broker("redis://127.0.0.1:6379/0") == ("redis://127.0.0.1:6379/0", {})
