"""Report writers, registered by name: ``--format`` lists what is registered here.

A writer turns a :class:`~mlward.findings.Report` into text and does nothing else (no
scanning, no printing). Built-in writers are registered by module and function name, so a run
imports only the writer it uses; :func:`register_writer` adds one (a plugin, a test)::

    from mlward.formats import register_writer
    register_writer("csv", "one line per finding", render=my_csv_writer)

:func:`write_output` is the one way reports reach a file: atomically, with the user's umask.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple

from mlward.errors import MlwardError
from mlward.findings import Report, Severity


class RenderOptions(NamedTuple):
    """What a writer may be told besides the report."""

    fail_on: Severity = Severity.HIGH
    color: bool = False
    verbose: bool = False
    show_all: bool = False
    """Show findings that a baseline marks as unchanged (text output hides them)."""


Render = Callable[[Report, RenderOptions], str]


class Writer(NamedTuple):
    name: str
    description: str
    target: str | Render
    """The render function, or ``"module:function"`` to import on first use."""

    def render(self, report: Report, options: RenderOptions) -> str:
        fn = self.target
        if isinstance(fn, str):
            module, _, attr = fn.partition(":")
            fn = getattr(importlib.import_module(module), attr)
        return str(fn(report, options))


WRITERS: dict[str, Writer] = {}


def register_writer(name: str, description: str, render: Render | str) -> None:
    """Register a writer under ``name`` (replacing one of that name)."""
    WRITERS[name] = Writer(name, description, render)


register_writer("text", "for people: findings by file, then a summary",
                "mlward.formats.text:render_text")
register_writer("json", "the report's data model, one compact line (schema: mlward report "
                "v2; `jq .` indents it)", "mlward.formats.json:render_json")
register_writer("sarif", "SARIF 2.1.0 for GitHub code scanning and other SARIF tools",
                "mlward.formats.sarif:render_sarif")
register_writer("junit", "JUnit XML for CI dashboards: a test case per file, failing at "
                "--fail-on", "mlward.formats.junit:render_junit")
register_writer("markdown", "for pull requests and wikis: summary, data changes, findings "
                "table", "mlward.formats.markdown:render_markdown")


def writer_names() -> list[str]:
    return list(WRITERS)


class OutputError(MlwardError):
    """A report could not be written where the user asked."""


def import_when_idle(fmt: str | None) -> None:
    """Import ``fmt``'s writer while the scan waits for its workers
    (:mod:`mlward._internal.idle`): a one-file scan's own process mostly waits, and the
    import (the text writer's ``rich`` is a fifth of such a scan's time) then costs nothing
    instead of following the scan."""
    from mlward._internal.idle import when_idle

    writer = WRITERS.get(fmt) if fmt is not None else None
    if writer is not None and isinstance(writer.target, str):
        when_idle(partial(importlib.import_module, writer.target.partition(":")[0]))


def render(report: Report, fmt: str, options: RenderOptions | None = None) -> str:
    """The report as text in ``fmt``."""
    try:
        writer = WRITERS[fmt]
    except KeyError:
        raise OutputError(f"unknown format {fmt!r} (choose from "
                          f"{', '.join(writer_names())})") from None
    return writer.render(report, options or RenderOptions())


def write_output(text: str, path: Path, *, private: bool = False, what: str = "report") -> None:
    """Write ``text`` to ``path`` atomically (never a half-written file): mode from the
    user's umask, or 0600 when ``private`` (it holds something secret). Raises
    :class:`OutputError` with one clear line, naming ``what`` was written, when it cannot."""
    from mlward._internal.io import atomic_write_text

    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write the {what} to {path}: it is a folder")
    parent = path.parent if str(path.parent) else Path()
    if not parent.is_dir():
        raise OutputError(f"cannot write the {what} to {path}: folder {parent} does not "
                          "exist")
    try:
        atomic_write_text(path, text, mode=0o600 if private else None)
    except OSError as exc:
        raise OutputError(f"cannot write the {what} to {path}: "
                          f"{exc.strerror or exc}") from None


__all__ = ["WRITERS", "OutputError", "RenderOptions", "Writer", "register_writer", "render",
           "write_output", "writer_names"]
