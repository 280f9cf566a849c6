"""Settings of outbound fetches, webhooks, idempotency and per-job retention (issue 13).

A mixin of `shared.config.Settings`, so that every knob is still read from one class.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class IntegrationSettings(BaseSettings):
    model_config = SettingsConfigDict(use_attribute_docstrings=True)

    fetch_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Hosts (exact names) or networks (CIDR, or one address) that outbound fetches and
    webhooks may reach although they are loopback or private, comma-separated; empty: only
    public addresses."""

    fetch_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """Longest wait for an outbound connection (media URLs and webhooks)."""

    fetch_read_timeout_seconds: float = Field(default=30.0, gt=0)
    """Longest silence while reading a media URL's answer."""

    fetch_total_seconds: float = Field(default=3600.0, gt=0)
    """Longest time a media URL's download may take, however steadily it arrives."""

    webhook_secret: str | None = None
    """The deployment's `whsec_...` signing secret; unset: one is generated on first use and
    kept in Redis (`verbatim webhook-secret` prints it)."""

    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    """Longest wait for a webhook receiver's answer, connection included."""

    webhook_attempts: int = Field(default=10, ge=1, le=50)
    """Deliveries of one webhook event before it is given up."""

    webhook_window_seconds: float = Field(default=24 * 3600.0, gt=0)
    """About how long an event is retried: the backoff doubles from
    `window / (2^(attempts-1) - 1)` so that the delays add up to this (each with jitter)."""

    idempotency_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    """How long an `Idempotency-Key` is remembered."""

    io_metrics_port: int = Field(default=9102, ge=0, le=65535)
    """Port of the I/O worker's Prometheus `/metrics` (webhooks and URL fetches); 0: none."""

    io_webhook_threads: int = Field(default=8, ge=1, le=64)
    """Threads of each I/O worker that deliver webhooks, beside its pool of fetch threads, so
    that a delivery never waits behind a media download."""

    fetches_per_key: int = Field(default=4, ge=1, le=256)
    """Media URLs of one API key (with auth off: of all jobs) downloaded at once, across every
    I/O worker; its further URL jobs stay `fetching` until one ends, while other keys' URLs
    take the free fetch threads."""

    @field_validator("fetch_allow", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [entry.strip() for entry in value.split(",") if entry.strip()]
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _whsec(cls, value: str | None) -> str | None:
        if not value:  # empty, as compose passes an unset variable: generate one
            return None
        if not value.startswith("whsec_"):
            raise ValueError("webhook_secret must be a `whsec_` secret")
        return value
