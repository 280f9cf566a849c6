"""A folder of recordings: find them, skip the finished, transcribe the rest N at a time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, SimpleQueue
from threading import Thread
from typing import TypeVar

from cli.client import ApiError, Client
from cli.display import Display
from cli.outputs import output_paths
from cli.transcribe import Request, transcribe_file

# Matched case-insensitively; anything else in the folder is left alone.
AUDIO_EXTENSIONS = ("aac", "aif", "aiff", "amr", "flac", "m4a", "mka", "mp3", "oga", "ogg", "opus",
                    "wav", "weba", "wma")  # fmt: skip
VIDEO_EXTENSIONS = ("3gp", "avi", "flv", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "webm",
                    "wmv")  # fmt: skip
MEDIA_EXTENSIONS = frozenset(AUDIO_EXTENSIONS + VIDEO_EXTENSIONS)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Plan:
    requests: list[Request] = field(default_factory=list)
    skipped: int = 0
    """Inputs whose every output already exists."""
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(label, reason) of inputs failed before any upload."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run, after the jobs it had in flight were deleted on the server."""

    def __init__(self, cancelled: int, not_cancelled: int) -> None:
        super().__init__()
        self.cancelled = cancelled
        self.not_cancelled = not_cancelled


@dataclass
class Summary:
    ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    def render(self) -> str:
        """The closing report: counts, each failure with its reason, and the speed."""
        lines = [f"{self.ok} ok, {len(self.failed)} failed, {self.skipped} skipped "
                 "(outputs already there)"]  # fmt: skip
        lines += [f"  failed: {label}: {reason}" for label, reason in self.failed]
        wall = _duration(self.wall_seconds)
        if self.audio_seconds > 0:
            factor = self.wall_seconds / self.audio_seconds
            lines.append(f"{_duration(self.audio_seconds)} of audio in {wall}: "
                         f"real-time factor {factor:.2f} (wall / audio)")  # fmt: skip
        else:
            lines.append(f"no audio transcribed ({wall})")
        return "\n".join(lines)


def find_media(root: Path, recursive: bool) -> list[Path]:
    """Audio and video files in `root` (and below it when `recursive`), hidden ones left out."""
    found = root.rglob("*") if recursive else root.glob("*")
    return sorted(
        path for path in found
        if path.suffix.lower().lstrip(".") in MEDIA_EXTENSIONS and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )  # fmt: skip


def plan(files: list[Path], root: Path, formats: list[str], out_dir: Path | None) -> Plan:
    """What to transcribe: inputs whose every output exists are skipped, and those that
    would overwrite another's (`a.mp3`, `a.wav`) are refused (see `refuse_clashes`)."""
    every = [
        Request(source, str(source.relative_to(root)), output_paths(source, formats, out_dir, root))
        for source in files
    ]
    requests, refused = refuse_clashes(every)
    result = Plan(refused=refused)
    for request in requests:
        if all(path.exists() for path in request.outputs.values()):
            result.skipped += 1
        else:
            result.requests.append(request)
    return result


def refuse_clashes(requests: list[Request]) -> tuple[list[Request], list[tuple[str, str]]]:
    """The requests whose transcripts no earlier one would write, and (label, reason) of the
    others, refused rather than let two inputs overwrite each other's transcripts."""
    kept: list[Request] = []
    refused: list[tuple[str, str]] = []
    owners: dict[Path, Request] = {}
    for request in requests:
        # Every format's file is `folder/stem.extension`: one folder and stem, one owner.
        stem = next(iter(request.outputs.values())).with_suffix("")
        owner = owners.setdefault(stem, request)
        if owner is request:
            kept.append(request)
        else:
            reason = f"its transcripts would overwrite those of {owner.label}"
            refused.append((request.label, reason))
    return kept, refused


def execute(
    server: str, plan: Plan, fields: dict[str, str], concurrency: int, batch_bar: bool,
    api_key: str | None = None, subtitles: dict[str, str] | None = None,
) -> Summary:
    """Carry out `plan` on `server`, downloading subtitles cut as `subtitles` (query
    parameters) say; raises `ServerUnreachable` when it does not answer, `ApiError` (401) when
    it refuses the API key, and `Interrupted` on Ctrl-C, once the jobs in flight are cancelled
    on the server."""
    with Client(server, api_key=api_key, subtitles=subtitles) as client:
        if plan.requests:
            client.check()
            client.check_key()
        total = len(plan.requests) + len(plan.refused)
        try:
            with Display(total if batch_bar else None) as display:
                for label, reason in plan.refused:
                    display.failed(None, label, reason)
                summary = run(client, plan.requests, fields, concurrency, display)
        except KeyboardInterrupt:
            raise Interrupted(*client.cancel_unsettled()) from None
    summary.failed[:0] = plan.refused
    summary.skipped = plan.skipped
    return summary


def run(
    client: Client, requests: list[Request], fields: dict[str, str], concurrency: int,
    display: Display,
) -> Summary:
    """Transcribe `requests`, `concurrency` at a time; a failed file never stops the rest."""
    summary, started = Summary(), time.monotonic()

    def work(request: Request) -> tuple[Request, float | str]:
        return request, _one(client, request, fields, display)

    for request, outcome in _in_threads(requests, work, concurrency):
        if isinstance(outcome, str):
            summary.failed.append((request.label, outcome))
        else:
            summary.ok += 1
            summary.audio_seconds += outcome
    summary.wall_seconds = time.monotonic() - started
    return summary


def _one(client: Client, request: Request, fields: dict[str, str], display: Display) -> float | str:
    """Seconds of audio transcribed, or why the file failed."""
    bar = display.start(request.label)
    try:
        seconds = transcribe_file(client, request, fields, bar)
    except (ApiError, OSError) as exc:
        reason = str(exc)
    except Exception as exc:  # a worker thread must always report back, or the batch hangs
        reason = f"unexpected error: {type(exc).__name__}: {exc}"
    else:
        display.succeeded(bar, request.label, [path.name for path in request.outputs.values()])
        return seconds
    display.failed(bar, request.label, reason)
    return reason


def _in_threads(items: list[T], work: Callable[[T], R], concurrency: int) -> Iterator[R]:
    """`work(item)` for every item on `concurrency` threads, yielded as each finishes.

    Daemon threads rather than a ThreadPoolExecutor: on Ctrl-C the process exits at once
    (cancelling its jobs on the server) instead of waiting for the jobs in flight; outputs
    are written atomically, so none is torn.
    """
    pending: SimpleQueue[T] = SimpleQueue()
    done: SimpleQueue[R] = SimpleQueue()
    for item in items:
        pending.put(item)

    def loop() -> None:
        while True:
            try:
                item = pending.get_nowait()
            except Empty:
                return
            done.put(work(item))

    for _ in range(min(concurrency, len(items))):
        Thread(target=loop, daemon=True).start()
    for _ in items:
        yield done.get()


def _duration(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours} h {minutes:02d} min {rest:02.0f} s"
    return f"{minutes} min {rest:04.1f} s" if minutes else f"{rest:.1f} s"
