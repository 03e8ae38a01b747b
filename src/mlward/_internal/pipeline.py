"""The scan pipeline: targets -> sources -> sniff -> scanners -> findings -> report.

The walk (:mod:`mlward._internal.walk`) turns inputs into work units, one per file and one
per folder (its folder-level checks: model and dataset repositories, Zarr stores); each unit
runs through an :class:`~mlward.executors.Executor` (worker processes by default, so a
scanner that crashes or hangs on a hostile file costs only that file) and comes back as
findings, facts, skips and the formats examined (:mod:`mlward._internal.engine`, imported
only where units run). :class:`~mlward.findings.ReportBuilder` makes the report.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Protocol

from mlward._internal import logs
from mlward._internal.targets import expand, is_target
from mlward._internal.units import scan_item
from mlward._internal.walk import Item, Walk
from mlward._version import __version__
from mlward.errors import ExecutorLost, ScanError, UsageError
from mlward.executors import Executor, make_executor
from mlward.findings import Finding, Location, Report, ReportBuilder, TargetKind
from mlward.rules import SCANNER_CRASH, WAIVER_EXPIRED
from mlward.settings import Settings, project_root

log = logs.get("mlward.scan")


class ScanObserver(Protocol):
    """Progress hooks; the CLI attaches a progress bar, the API ignores them by default."""

    def on_start(self, total: int) -> None: ...

    def on_file(self, path: str) -> None: ...


class _NullObserver:
    def on_start(self, total: int) -> None:
        pass

    def on_file(self, path: str) -> None:
        pass


def scan_root(settings: Settings, inputs: Sequence[Path]) -> Path:
    """The folder local locations are relative to: ``settings.root``, else the project (a
    folder with ``.mlward/``, ``.git`` or ``pyproject.toml``) holding every input, else the
    inputs' common folder."""
    if settings.root:
        return Path(settings.root).resolve()
    absolute = [Path(p).absolute() for p in inputs] or [Path.cwd()]
    common = Path(os.path.commonpath([str(p) for p in absolute]))
    if not common.is_dir():
        common = common.parent
    project = project_root(common)
    return project if project is not None else common


INTERRUPTED = "not examined: the run was interrupted"
"""How a partial report marks each input the run did not reach (``--resume`` re-scans
exactly those)."""


def scan(paths: Iterable[str | os.PathLike[str]], *, settings: Settings | None = None,
         observer: ScanObserver | None = None, executor: Executor | None = None,
         resume: Report | None = None) -> Report:
    """Scan files and folders (recursively), object-storage prefixes, MLflow registered
    models and the Hugging Face cache (see :mod:`mlward._internal.targets`), and return one
    :class:`~mlward.findings.Report`.

    ``settings`` (default: :class:`~mlward.settings.Settings` defaults) choose the executor,
    limits, excludes and root; ``executor`` overrides the one they name. ``resume``, a partial
    report of the same run, supplies the results of every input it finished: only the rest
    is scanned. Raises :class:`~mlward.errors.ScanError` only when an input does not exist or
    cannot be listed; problems inside files are findings or inconclusive skips. When the
    executor loses its workers (:class:`~mlward.errors.ExecutorLost`), the report is partial:
    every input without a result is an inconclusive skip and ``stats["interrupted"]`` says why.
    """
    settings = settings or Settings()
    inputs = [os.fspath(p) for p in paths]
    local = [Path(p) for p in inputs if not is_target(p)]
    for p in local:
        if not p.exists() and not p.is_symlink():
            raise ScanError(f"no such file or directory: {p}")
    started = datetime.now(timezone.utc)
    root = scan_root(settings, local)
    builder = ReportBuilder(TargetKind.FILES, started=started, version=__version__,
                            root=str(root), inputs=inputs)
    obs = observer or _NullObserver()
    walk = Walk.for_settings(root, settings)
    items: list[Item] = []

    def folder(path: str, uri: str) -> None:  # before the folder's files
        items.append(Item(path, uri, folder=True))

    for given in inputs:
        if is_target(given):
            items.extend(expand(given, settings, walk, builder))
        else:
            for item in walk.files([Path(given)], on_dir=folder):  # folder() appends too
                items.append(item)
    total = sum(not i.folder for i in items)
    if resume is not None:
        items = _resume(resume, builder, items)
    files = sum(not i.folder for i in items)
    obs.on_start(files)
    log.info("scanning %d file(s) under %s", files, root)
    own = executor is None
    executor = executor or make_executor(settings, units=max(1, files))
    done: set[int] = set()
    try:
        for outcome in executor.map(partial(scan_item, settings), items):
            item = items[outcome.unit]
            done.add(outcome.unit)
            if outcome.error is not None:
                loc = Location(item.uri)
                log.warning("%s: %s", item.uri, outcome.error)
                builder.add(SCANNER_CRASH.finding(loc, f"scanning stopped: {outcome.error}"))
                builder.skip(loc, outcome.error, inconclusive=True)
            else:
                builder.merge(*outcome.result)
            if not item.folder:
                obs.on_file(item.uri)
    except ExecutorLost as exc:
        log.error("%s", exc.diagnostics())
        unfinished = [item for n, item in enumerate(items) if n not in done]
        for item in unfinished:
            builder.skip(Location(item.uri), f"{INTERRUPTED} ({exc.diagnostics()})",
                         inconclusive=True)
        builder.stats["interrupted"] = {"reason": exc.diagnostics(),
                                        "unfinished": len(unfinished)}
    finally:
        if own:
            executor.close()
    builder.merge(skipped=walk.skipped)
    if any(e.format.startswith("dependencies") for e in builder.examined):
        from mlward._internal.scanners.deps import note_data

        note_data(builder, settings)
    builder.stats.update({"files": total, "executor": executor.name,
                          "excluded": dict(sorted(walk.excluded.items()))})
    if resume is not None:
        builder.stats["resumed"] = total - files
    remote = [f.data for f in builder.facts if f.kind == "object"]
    if remote:
        builder.stats["object_storage"] = {
            "objects": len(remote), "bytes_stored": sum(int(d["size"]) for d in remote),
            "bytes_read": sum(int(d["read"]) for d in remote),
            "requests": sum(int(d["requests"]) for d in remote)}
    from mlward._internal.triage import make_triage

    return builder.build(finished=datetime.now(timezone.utc),
                         triage=make_triage(settings, root))


def _resume(previous: Report, builder: ReportBuilder, items: list[Item]) -> list[Item]:
    """The items ``previous`` (a partial report of the same run) did not finish; what it
    found for the others goes into ``builder`` as it was."""
    if previous.root != builder.root or tuple(previous.inputs) != builder.inputs:
        raise UsageError("the report to resume is of another run (its root or inputs "
                         f"differ: {previous.root} {list(previous.inputs)})")
    unfinished = {s.location.uri for s in previous.skipped
                  if s.inconclusive and s.reason.startswith(INTERRUPTED)}
    seen = ({f.location.uri for f in previous.findings}
            | {f.location.uri for f in previous.facts}
            | {s.location.uri for s in previous.skipped}
            | {e.location.uri for e in previous.examined})
    finished = seen & {i.uri for i in items} - unfinished
    builder.merge(
        [f._replace(fingerprint="", suppression=None, baseline=None)
         for f in previous.findings if f.location.uri in finished],
        [f for f in previous.facts if f.location.uri in finished],
        [s for s in previous.skipped if s.location.uri in finished],
        [e for e in previous.examined if e.location.uri in finished])
    return [i for i in items if i.uri not in finished]


def with_findings(report: Report, findings: Iterable[Finding], settings: Settings) -> Report:
    """``report`` (a scan's) with ``findings`` added as if its scan had made them: all of
    them fingerprinted and triaged (waivers, baseline) together again, which also makes the
    expired-waiver notices again (the old ones are dropped)."""
    from mlward._internal.triage import make_triage

    builder = ReportBuilder(report.kind, started=report.started, version=report.version,
                            root=report.root, inputs=report.inputs)
    builder.merge([f for f in report.findings if f.rule_id != WAIVER_EXPIRED.id],
                  report.facts, report.skipped, report.examined)
    builder.merge(findings)
    builder.stats.update(report.stats)
    return builder.build(finished=report.finished,
                         triage=make_triage(settings, Path(report.root) if report.root else None))

