"""`verbatim keys create|list|revoke`: API keys, managed straight in the configured Redis."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from shared.config import get_settings
from shared.keys import KeyLimits, KeyStore

app = typer.Typer(help="Create, list and revoke API keys (in the configured Redis).",
                  no_args_is_help=True)


def _store() -> KeyStore:
    import redis  # here, so that `verbatim --help` does not need Redis's client loaded

    return KeyStore(redis.Redis.from_url(get_settings().redis_url, socket_connect_timeout=5))


Rate = Annotated[int | None, typer.Option(min=1, help="Jobs created a minute.")]
Active = Annotated[int | None, typer.Option(min=1, help="Jobs queued or processing at once.")]
AudioHours = Annotated[float | None, typer.Option(min=0.001, help="Hours of audio a UTC day.")]


def _limit(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


@app.command()
def create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    rate_per_minute: Rate = None, max_active_jobs: Active = None,
    max_audio_hours_per_day: AudioHours = None,
) -> None:
    """Make a key and print its token, once: it is stored only as a hash."""
    try:
        limits = KeyLimits(rate_per_minute=rate_per_minute, max_active_jobs=max_active_jobs,
                           max_audio_hours_per_day=max_audio_hours_per_day)
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"]) from None
    key, token = _store().create(name.strip() or "unnamed", limits)
    typer.echo(f"created key {key.id} ({key.name}); its token, shown only now:", err=True)
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


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (see `keys list`).")]) -> None:
    """Refuse the key from its next request on, on every API replica."""
    if not _store().revoke(key_id):
        typer.echo(f"verbatim: no key with id {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {key_id}")
