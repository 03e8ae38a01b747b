"""The CLI's scan observer: a progress bar on standard error when scanning many files on a
terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MIN_FILES_FOR_BAR = 20


class ScanProgress:
    """Observes a scan (:class:`mlward._internal.pipeline.ScanObserver`): with ``bar``, and 20
    files or more, it shows a progress bar (``rich`` is imported only then: a one-file scan
    on a terminal does not wait for it)."""

    def __init__(self, *, bar: bool) -> None:
        self._bar = bar
        self._progress: Any = None
        self._task: Any = None

    def on_start(self, total: int) -> None:
        if self._bar and total >= MIN_FILES_FOR_BAR and self._progress is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("scanning", total=total)

    def on_file(self, path: str) -> None:
        if self._task is not None:
            self._progress.advance(self._task)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = self._task = None


@contextmanager
def scan_progress(*, quiet: bool) -> Iterator[ScanProgress]:
    """A :class:`ScanProgress` whose bar shows unless ``quiet`` or standard error is not a
    terminal; the bar is gone when the block ends, however it ends."""
    observer = ScanProgress(bar=not quiet and sys.stderr.isatty())
    try:
        yield observer
    finally:
        observer.close()
