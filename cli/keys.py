"""`verbatim keys create|list|revoke`: API keys, managed straight in the configured Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError

from shared.config import get_settings

if TYPE_CHECKING:
    from shared.state.keys import KeyStore

app = typer.Typer(help="Create, list and revoke API keys (in the configured Redis).",
                  no_args_is_help=True)


def _store() -> KeyStore:
    # Redis's client library is loaded by the commands that use it, not by every `verbatim`.
    from shared.redis_connect import sync_client
    from shared.state.keys import KeyStore

    return KeyStore(sync_client(get_settings().redis_url, socket_connect_timeout=5))


Rate = Annotated[int | None, typer.Option(min=1, help="Jobs created a minute.")]
Active = Annotated[int | None, typer.Option(min=1, help="Jobs queued or processing at once.")]
AudioHours = Annotated[float | None, typer.Option(min=0.001, help="Hours of audio a UTC day.")]
WebhookUrl = Annotated[str | None, typer.Option(
    help="Where the key's jobs send webhook events when a job names no webhook_url.")]


def _limit(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


@app.command()
def create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    rate_per_minute: Rate = None, max_active_jobs: Active = None,
    max_audio_hours_per_day: AudioHours = None, webhook_url: WebhookUrl = None,
) -> None:
    """Make a key and print its token, once: it is stored only as a hash. The secret that
    signs its webhook events is printed (to stderr) once too."""
    from shared.state.keys import KeyLimits

    try:
        limits = KeyLimits(rate_per_minute=rate_per_minute, max_active_jobs=max_active_jobs,
                           max_audio_hours_per_day=max_audio_hours_per_day)
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"]) from None
    if webhook_url is not None and urlsplit(webhook_url).scheme not in ("http", "https"):
        raise typer.BadParameter("--webhook-url must be an http(s) URL")
    store = _store()
    key, token = store.create(name.strip() or "unnamed", limits, webhook_url)
    typer.echo(f"created key {key.id} ({key.name}); its webhook signing secret is "
               f"{store.webhook_secret(key.id)}; its token, shown only now:", err=True)
    typer.echo(token)


@app.command("list")
def list_keys() -> None:
    """Every key: id, name, created, limits, and whether it is revoked."""
    keys = _store().list()
    typer.echo("id                name                 created               rate/min  active  "
               "audio h/day  state")
    for key in keys:
        limits = key.limits
        typer.echo(
            f"{key.id:<17} {key.name[:20]:<20} {key.created:%Y-%m-%d %H:%M:%S}Z  "
            f"{_limit(limits.rate_per_minute):>8}  {_limit(limits.max_active_jobs):>6}  "
            f"{_limit(limits.max_audio_hours_per_day):>11}  "
            f"{'revoked' if key.revoked else 'active'}"
        )


@app.command("rotate-webhook-secret")
def rotate_webhook_secret(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `keys list`).")],
) -> None:
    """Print a new secret for the key's webhook events; it signs every delivery from now on."""
    secret = _store().rotate_webhook_secret(key_id)
    if secret is None:
        typer.echo(f"verbatim: no key with id {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(secret)


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (see `keys list`).")]) -> None:
    """Refuse the key from its next request on, on every API replica."""
    if not _store().revoke(key_id):
        typer.echo(f"verbatim: no key with id {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {key_id}")
