"""What the user watches: live progress bars and one line per finished file, on stderr."""

from __future__ import annotations

from threading import Lock
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)


class FileBar:
    """One file's bar, driven by `transcribe.Report` calls."""

    def __init__(self, progress: Progress, label: str) -> None:
        self._progress = progress
        self.task = progress.add_task(escape(label), total=1.0, phase="waiting")

    def __call__(self, phase: str, fraction: float) -> None:
        self._progress.update(self.task, completed=min(max(fraction, 0.0), 1.0), phase=phase)


class Display:
    """Bars for the files in flight and, for a batch of `total` files, one for the batch.

    Bars are drawn only on a terminal; the result lines are printed everywhere. Thread-safe.
    """

    def __init__(self, total: int | None = None) -> None:
        self.console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[phase]}"), TimeElapsedColumn(),
            console=self.console, disable=not self.console.is_terminal,
        )
        self._batch: TaskID | None = None
        self._total, self._done = total or 0, 0
        self._lock = Lock()  # worker threads finish files at the same time
        if total:
            self._batch = self._progress.add_task("[bold]batch", total=total, phase=self._count())

    def start(self, label: str) -> FileBar:
        return FileBar(self._progress, label)

    def succeeded(self, bar: FileBar, label: str, written: list[str]) -> None:
        self._finish(bar, f"[green]done[/]    {escape(label)} -> {escape(', '.join(written))}")

    def failed(self, bar: FileBar | None, label: str, reason: str) -> None:
        self._finish(bar, f"[red]failed[/]  {escape(label)}: {escape(reason)}")

    def _finish(self, bar: FileBar | None, line: str) -> None:
        if bar is not None:
            self._progress.remove_task(bar.task)
        if self._batch is not None:
            with self._lock:
                self._done += 1
                self._progress.update(self._batch, completed=self._done, phase=self._count())
        self.console.print(line, highlight=False, soft_wrap=True)

    def _count(self) -> str:
        return f"{self._done}/{self._total} files"

    def __enter__(self) -> Display:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()
