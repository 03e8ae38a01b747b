"""A rich progress bar on standard error, shown only when scanning many files on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from mlward._internal.pipeline import ScanObserver

MIN_FILES_FOR_BAR = 20


class _Bar:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def on_start(self, total: int) -> None:
        if total >= MIN_FILES_FOR_BAR:
            self.progress.start()
            self.task = self.progress.add_task("scanning", total=total)

    def on_file(self, path: str) -> None:
        if self.task is not None:
            self.progress.advance(self.task)


@contextmanager
def progress_observer(*, enabled: bool) -> Iterator[ScanObserver | None]:
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    bar = _Bar(progress)
    try:
        yield bar
    finally:
        progress.stop()
