"""Verbatim: run the transcription service (serve, api, worker) or use one (transcribe, batch)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import ValidationError

from cli import batch as batches
from cli import keys, models
from cli import serve as processes
from cli.client import DEFAULT_URL, ApiError, ServerUnreachable
from cli.outputs import output_paths
from cli.transcribe import Request
from shared.output.formatters import FORMATS
from shared.output.subtitles import PresetName, SubtitleOptions
from shared.schemas import JobOptions

app = typer.Typer(
    name="verbatim", help=__doc__, no_args_is_help=True, add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(keys.app, name="keys", rich_help_panel="Run the service")
app.add_typer(models.app, name="models", rich_help_panel="Run the service")

Host = Annotated[str, typer.Option(help="Address to listen on.")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]
Concurrency = Annotated[int | None, typer.Option(
    min=1, show_default="VERBATIM_WORKER_CONCURRENCY",
    help="Jobs transcribed at once: processes (one model each) under VERBATIM_WORKER_POOL=prefork, "
    "threads sharing one model under threads.")]
IoConcurrency = Annotated[int, typer.Option(min=1, help="Deliveries and downloads at once.")]
Language = Annotated[
    str | None, typer.Option(help="Spoken language (ISO 639-1, such as ko), or the candidates "
                             "to detect among (ko,en); unset detects it.")
]
Multilingual = Annotated[
    bool | None, typer.Option(help="Code-switching: each stretch in its own language; "
                              "unset: the server's default.")
]
Script = Annotated[
    Literal["simplified", "traditional"] | None,
    typer.Option(help="Write Chinese in Simplified or Traditional characters."),
]
Task = Annotated[
    Literal["transcribe", "translate"], typer.Option(help="translate: the speech in English.")
]
_SPEAKERS = "Speakers"
Diarize = Annotated[Literal["none", "channels", "voices"] | None, typer.Option(
    help="Label who speaks: channels (a speaker per channel) or voices; unset: the server's "
    "default.", rich_help_panel=_SPEAKERS)]
Speakers = Annotated[int | None, typer.Option(
    help="voices: the exact number of speakers.", rich_help_panel=_SPEAKERS)]
MinSpeakers = Annotated[int | None, typer.Option(
    help="voices: the fewest speakers to find.", rich_help_panel=_SPEAKERS)]
MaxSpeakers = Annotated[int | None, typer.Option(
    help="voices: the most speakers to find.", rich_help_panel=_SPEAKERS)]
ChannelNames = Annotated[str | None, typer.Option(
    help="channels: the channels' speakers' names, comma-separated (agent,customer).",
    rich_help_panel=_SPEAKERS)]
Sounds = Annotated[bool | None, typer.Option(
    help="Tag music, applause, laughter and other sounds (the json's sounds, tsv rows, the "
    "sdh preset's cues); unset: on with --preset sdh, else the server's default.")]
Model = Annotated[str | None, typer.Option(
    help="A model the server offers (`GET /v1/models`, such as tiny.en); unset: its default.")]
Out = Annotated[
    Path | None, typer.Option(file_okay=False, help="Write here instead of beside each input.")
]
# Built from the server's registry, so that a new format needs no change here; mypy cannot
# see members made at run time, hence the ignore.
Format = StrEnum("Format", [(name, name) for name in FORMATS])  # type: ignore[misc]
TXT = Format("txt")
OneFormat = Annotated[Format, typer.Option("--format", "-f", help="Transcript format.")]
Recursive = Annotated[bool, typer.Option("--recursive", "-r", help="Look in subfolders.")]
Jobs = Annotated[int, typer.Option("--concurrency", "-n", min=1, help="Jobs in flight at once.")]
Formats = Annotated[str, typer.Option(help=f"Comma-separated, of {','.join(FORMATS)}.")]
Follow = Annotated[bool, typer.Option(
    "--follow", help="Print each segment (timestamps and text) to stdout as it is decoded.")]
_CUES = "Subtitles (srt, vtt, ass)"
Preset = Annotated[PresetName | None, typer.Option(
    help="Subtitle defaults: broadcast, netflix, mobile or sdh (sound cues).",
    rich_help_panel=_CUES)]
LineWidth = Annotated[int | None, typer.Option(
    help="Widest line in columns (wide characters count 2).", rich_help_panel=_CUES)]
LineCount = Annotated[int | None, typer.Option(help="Lines per cue.", rich_help_panel=_CUES)]
CueSeconds = Annotated[float | None, typer.Option(
    help="Longest time a cue stays on screen.", rich_help_panel=_CUES)]
MinCueSeconds = Annotated[float | None, typer.Option(
    help="Shortest time a cue stays on screen.", rich_help_panel=_CUES)]
Cps = Annotated[float | None, typer.Option(
    help="Reading speed, in characters per second.", rich_help_panel=_CUES)]
Highlight = Annotated[bool, typer.Option(
    help="Mark each word as it is spoken (VTT timestamps, ASS karaoke).", rich_help_panel=_CUES)]
Server = Annotated[
    str, typer.Option(envvar="VERBATIM_URL", show_envvar=True, help="The Verbatim server.")
]
ApiKey = Annotated[
    str | None, typer.Option(envvar="VERBATIM_API_KEY", show_envvar=True,
                             help="API key, for a server that requires one.")
]


@app.command(rich_help_panel="Run the service")
def serve(host: Host = "127.0.0.1", port: Port = 8000, concurrency: Concurrency = None) -> None:
    """API + worker (+ a local Redis unless VERBATIM_REDIS_URL is set) for one machine."""
    raise typer.Exit(processes.serve(host, port, concurrency))


@app.command(rich_help_panel="Run the service")
def api(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """Only the HTTP API (uvicorn)."""
    processes.run_api(host, port)


@app.command(rich_help_panel="Run the service")
def worker(concurrency: Concurrency = None) -> None:
    """Only a transcription worker (Celery)."""
    processes.run_worker(concurrency)


@app.command("live-worker", rich_help_panel="Run the service")
def live_worker(
    number: Annotated[int, typer.Option(
        min=1, help="Told apart from other live workers on this host by this number.")] = 1,
) -> None:
    """Only a live worker (Celery, one model): one session of WS /v1/live at a time."""
    processes.run_live_worker(number)


@app.command("io-worker", rich_help_panel="Run the service")
def io_worker(concurrency: IoConcurrency = 8) -> None:
    """Only the I/O worker (Celery threads): webhook deliveries and media URL downloads."""
    processes.run_io_worker(concurrency)


@app.command("webhook-secret", rich_help_panel="Run the service")
def webhook_secret() -> None:
    """Print the deployment's webhook signing secret (made on first use unless set)."""

    from shared.config import get_settings
    from shared.redis_connect import sync_client
    from shared.state.webhooks import signing_secret

    settings = get_settings()
    print(signing_secret(sync_client(settings.redis_url), settings))


@app.command(rich_help_panel="Use a server")
def transcribe(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    format: OneFormat = TXT,
    language: Language = None, task: Task = "transcribe", out: Out = None,
    server: Server = DEFAULT_URL, api_key: ApiKey = None,
    multilingual: Multilingual = None, script: Script = None, follow: Follow = False,
    preset: Preset = None, max_line_width: LineWidth = None, max_line_count: LineCount = None,
    max_cue_seconds: CueSeconds = None, min_cue_seconds: MinCueSeconds = None,
    max_chars_per_second: Cps = None, highlight_words: Highlight = False, model: Model = None,
    diarize: Diarize = None, speakers: Speakers = None, min_speakers: MinSpeakers = None,
    max_speakers: MaxSpeakers = None, channel_names: ChannelNames = None, sounds: Sounds = None,
) -> None:
    """Transcribe each file, writing talk.mp3 -> talk.txt (or the --format) beside it."""
    who = _speaker_fields(diarize=diarize, speakers=speakers, min_speakers=min_speakers,
                          max_speakers=max_speakers, channel_names=channel_names)
    subtitles = _subtitles(preset=preset, max_line_width=max_line_width,
                           max_line_count=max_line_count, max_cue_seconds=max_cue_seconds,
                           min_cue_seconds=min_cue_seconds,
                           max_chars_per_second=max_chars_per_second,
                           highlight_words=highlight_words)
    unique = dict.fromkeys(files)  # a file named twice is transcribed once
    requests = [Request(f, str(f), output_paths(f, [format.value], out), follow) for f in unique]
    for request in requests:
        if request.source in request.outputs.values():
            raise typer.BadParameter(f"{request.source} would be overwritten by its transcript")
    _, refused = batches.refuse_clashes(requests)
    if refused:  # unlike a batch, which goes on without them: these were named one by one
        label, reason = refused[0]
        raise typer.BadParameter(f"{label}: {reason}", param_hint="'FILES...'")
    fields = _fields(language, task, model) | _quality_fields(multilingual, script) | who
    fields |= {"word_timestamps": "true"} if subtitles else {}
    if sounds is None and preset == "sdh":
        sounds = True  # the preset's cues are the transcript's sounds
    fields |= {} if sounds is None else {"sounds": str(sounds).lower()}
    summary = _execute(server, api_key, batches.Plan(requests), fields, 1, False, subtitles)
    raise typer.Exit(1 if summary.failed else 0)


@app.command(
    rich_help_panel="Use a server",
    epilog=f"Media files: {', '.join(sorted(batches.MEDIA_EXTENSIONS))}.",
)
def batch(
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    recursive: Recursive = False, concurrency: Jobs = 2, formats: Formats = "txt",
    out: Out = None, language: Language = None, task: Task = "transcribe",
    server: Server = DEFAULT_URL, api_key: ApiKey = None, model: Model = None,
) -> None:
    """Transcribe every audio or video file in DIRECTORY; a rerun skips finished files."""
    chosen = _formats(formats)
    files = batches.find_media(directory, recursive)
    if not files:
        hint = "" if recursive else " (--recursive looks in subfolders)"
        typer.echo(f"verbatim: no audio or video files in {directory}{hint}", err=True)
    plan = batches.plan(files, directory, chosen, out)
    summary = _execute(server, api_key, plan, _fields(language, task, model), concurrency, True)
    typer.echo(summary.render())
    raise typer.Exit(1 if summary.failed else 0)


def _execute(
    server: str, api_key: str | None, plan: batches.Plan, fields: dict[str, str],
    concurrency: int, batch_bar: bool, subtitles: dict[str, str] | None = None,
) -> batches.Summary:
    try:
        return batches.execute(server, plan, fields, concurrency, batch_bar, api_key, subtitles)
    except ServerUnreachable as exc:
        typer.echo(f"verbatim: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except ApiError as exc:  # the key was refused: no file can pass, so none is tried
        typer.echo(f"verbatim: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except batches.Interrupted as exc:
        typer.echo(f"verbatim: interrupted; {_cancelled(exc)}; the transcripts already written "
                   "are kept", err=True)  # fmt: skip
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        typer.echo("verbatim: interrupted; the transcripts already written are kept", err=True)
        raise typer.Exit(130) from None


def _cancelled(interrupted: batches.Interrupted) -> str:
    """What became of the jobs that were in flight."""
    if not interrupted.cancelled + interrupted.not_cancelled:
        return "no job was in flight"
    said = f"{_jobs(interrupted.cancelled)} in flight cancelled on the server"
    if interrupted.not_cancelled:
        said += f", {_jobs(interrupted.not_cancelled)} could not be (they may still run)"
    return said


def _jobs(count: int) -> str:
    return f"{count} job{'' if count == 1 else 's'}"


def _fields(language: str | None, task: str, model: str | None = None) -> dict[str, str]:
    """The upload's form fields, checked here so that a typo fails before any upload (the
    server checks the model's name against its catalogue)."""
    try:
        options = JobOptions.model_validate({"language": language, "task": task, "model": model})
    except ValidationError as exc:
        error = exc.errors()[0]
        hint = "'--model'" if error["loc"] == ("model",) else "'--language'"
        raise typer.BadParameter(error["msg"].removeprefix("Value error, "),
                                 param_hint=hint) from None
    fields = {"task": options.task} | ({"model": options.model} if options.model else {})
    return fields | ({"language": options.language} if options.language else {})


def _quality_fields(multilingual: bool | None, script: str | None) -> dict[str, str]:
    """The code-switching and Chinese-script fields, where chosen."""
    fields = {} if multilingual is None else {"multilingual": str(multilingual).lower()}
    return fields | ({"script": script} if script else {})


def _speaker_fields(**given: str | int | None) -> dict[str, str]:
    """The speaker fields, where chosen, checked here so that a bad one fails before any
    upload."""
    chosen = {name: value for name, value in given.items() if value is not None}
    try:
        JobOptions.model_validate(chosen)
    except ValidationError as exc:
        error = exc.errors()[0]  # a contradiction between options names none of them
        names = [str(error["loc"][0])] if error["loc"] else list(chosen)
        hint = " / ".join(f"'--{name.replace('_', '-')}'" for name in names)
        raise typer.BadParameter(error["msg"], param_hint=hint) from None
    return {name: str(value) for name, value in chosen.items()}


def _subtitles(**given: object) -> dict[str, str]:
    """The subtitle options as the download's query parameters, checked here so that a bad
    value fails before any upload; word timings are asked for when any is set."""
    chosen = {name: value for name, value in given.items()
              if value is not None and value is not False}
    try:
        SubtitleOptions.model_validate(chosen)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "min_cue_seconds"
        message = error["msg"].removeprefix("Value error, ")
        raise typer.BadParameter(message, param_hint=f"'--{name.replace('_', '-')}'") from None
    return {name: str(value).lower() for name, value in chosen.items()}


def _formats(value: str) -> list[str]:
    chosen = list(dict.fromkeys(f.strip().lower() for f in value.split(",") if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise typer.BadParameter(f"choose from {', '.join(FORMATS)}", param_hint="'--formats'")
    return chosen


def main() -> None:
    """Entry point of the `verbatim` console script."""
    app(prog_name="verbatim")


if __name__ == "__main__":
    main()
