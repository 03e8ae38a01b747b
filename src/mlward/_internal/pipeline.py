"""The scan pipeline: targets -> sources -> sniff -> scanners -> findings -> report.

The walk (:mod:`mlward._internal.walk`) turns inputs into work units, one per file; each unit
runs through an :class:`~mlward.executors.Executor` (worker processes by default, so a
scanner that crashes or hangs on a hostile file costs only that file) and comes back as
findings, facts, skips and the formats examined; folder-level scanners (model repositories,
ML tool configs) run while walking. :class:`~mlward.findings.ReportBuilder` makes the report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import NamedTuple, Protocol

from mlward._internal.scanners import load_scanners
from mlward._internal.scanners.interface import DirectoryScanner, ScanContext, Scanner
from mlward._internal.sources import Source
from mlward._internal.sources.archives import BOMB_FLOOR
from mlward._internal.sources.remote import RemoteObject, is_remote
from mlward._internal.targets import expand, is_target
from mlward._internal.walk import Item, Walk, is_regular, unreadable
from mlward._version import __version__
from mlward.errors import ExecutorLost, MissingExtra, ScanError, UsageError
from mlward.executors import Executor, make_executor
from mlward.findings import (
    Examined,
    Fact,
    Finding,
    Location,
    Report,
    ReportBuilder,
    Skipped,
    TargetKind,
)
from mlward.rules import ARCHIVE_BOMB, SCANNER_CRASH
from mlward.settings import Settings, project_root

log = logging.getLogger("mlward.scan")


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
    folders = _FolderScan(settings, builder)
    items: list[Item] = []
    for given in inputs:
        if is_target(given):
            items.extend(expand(given, settings, walk, builder))
        else:
            items.extend(walk.files([Path(given)], on_dir=folders.scan))
    total = len(items)
    if resume is not None:
        items = _resume(resume, builder, items)
    obs.on_start(len(items))
    log.info("scanning %d file(s) under %s", len(items), root)
    own = executor is None
    executor = executor or make_executor(settings, units=len(items))
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
        builder.stats["resumed"] = total - len(items)
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


class ItemResult(NamedTuple):
    findings: list[Finding]
    facts: list[Fact]
    skipped: list[Skipped]
    examined: list[Examined]


def scan_item(settings: Settings, item: Item) -> ItemResult:
    """Scan one file (a work unit; runs in a worker)."""
    engine = Engine(settings)
    engine.scan_file(item)
    return ItemResult(engine.findings, engine.facts, engine.skipped, engine.examined_items)


class _FolderScan:
    """Folder-level scanners, run in the walking process for every folder walked."""

    def __init__(self, settings: Settings, builder: ReportBuilder) -> None:
        self.settings = settings
        self.engine: Engine | None = None  # made on the first folder: scanners import then
        self.builder = builder

    def scan(self, path: str, uri: str) -> None:
        engine = self.engine = self.engine or Engine(self.settings)
        for ds in engine.dir_scanners:
            try:
                if ds.matches(Path(path)):
                    ds.scan(Path(path), Location(uri), engine)
            except Exception as exc:  # a bug in one check must not stop the scan
                engine.crash(Location(uri), ds, exc)
        self.builder.merge(engine.findings, engine.facts, engine.skipped, engine.examined_items)
        engine.findings, engine.facts, engine.skipped, engine.examined_items = [], [], [], []


class Engine(ScanContext):
    """Sniffs and dispatches one file (and everything nested in it) to the scanners."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.limits = self.settings.limits
        self.scanners, self.dir_scanners = load_scanners()
        self.findings: list[Finding] = []
        self.facts: list[Fact] = []
        self.skipped: list[Skipped] = []
        self.examined_items: list[Examined] = []
        self._depth = 0
        self._charged = 0
        self._members = 0
        self._input_size = 0
        self._over_budget = False

    def scan_file(self, item: Item) -> None:
        loc = Location(item.uri)
        if is_remote(item.path):
            self._start_input(item.size or 0)
            self._scan_remote(item, loc)
            return
        try:
            regular, size = is_regular(item.path)
        except OSError as exc:
            self.skipped.append(unreadable(loc, exc, ignore=self.settings.ignore_unreadable))
            return
        if not regular:
            self.skip(loc, "not a regular file", inconclusive=False)
            return
        self._start_input(size)
        # An unreadable file fails its first read in a sniff: "cannot read", inconclusive.
        self._dispatch(Source.from_path(Path(item.path), item.uri, size=size))

    def _start_input(self, size: int) -> None:
        """A new top-level input: its own depth, member count and byte budgets."""
        self._depth = 0
        self._charged = 0
        self._members = 0
        self._input_size = size
        self._over_budget = False

    def _scan_remote(self, item: Item, loc: Location) -> None:
        """A remote object, read with ranged requests; the bytes it took are a fact."""
        try:
            obj = RemoteObject(item.path, item.size or 0)
        except MissingExtra as exc:
            self.skip(loc, exc.diagnostics(), inconclusive=True)
            return
        self._dispatch(Source(loc, obj.open, size=obj.size,
                              name=item.uri.rsplit("/", 1)[-1]))
        self.fact(loc, "object", url=item.path, size=obj.size, read=obj.counter.bytes,
                  requests=obj.counter.requests)

    def _dispatch(self, source: Source) -> None:
        if source.size == 0:
            self.skip(source.location, "empty file", inconclusive=False)
            return
        claimed = None
        for scanner in self.scanners:
            match = self._sniff(scanner, source)
            if match is None:  # the sniff itself failed and was reported
                return
            if match:
                claimed = scanner
                self._run(scanner, source)
                break
        if claimed is None:
            self.skip(source.location, "unrecognised format", inconclusive=False)
            return
        for extra in self.scanners:
            if (extra.supplementary and extra is not claimed and extra.name not in claimed.covers
                    and self._sniff(extra, source)):
                self._run(extra, source)

    def _sniff(self, scanner: Scanner, source: Source) -> bool | None:
        """Whether ``scanner`` recognises ``source``; None when sniffing failed (reported)."""
        try:
            return scanner.sniff(source)
        except PermissionError as exc:  # the file's first read: it cannot be read at all
            self.skipped.append(unreadable(source.location, exc,
                                           ignore=self.settings.ignore_unreadable))
        except OSError as exc:
            self.skip(source.location, f"cannot read: {exc}", inconclusive=True)
        except Exception as exc:
            self.crash(source.location, scanner, exc)
        return None

    def _run(self, scanner: Scanner, source: Source) -> None:
        try:
            scanner.scan(source, self)
        except (MemoryError, RecursionError) as exc:
            self.skip(source.location, f"{scanner.name}: analysis aborted "
                      f"({type(exc).__name__})", inconclusive=True)
        except OSError as exc:
            self.skip(source.location, f"cannot read: {exc}", inconclusive=True)
        except Exception as exc:
            self.crash(source.location, scanner, exc)

    def crash(self, loc: Location, scanner: Scanner | DirectoryScanner,
              exc: BaseException) -> None:
        log.debug("%s scanner failed on %s", scanner.name, loc, exc_info=exc)
        self.add(SCANNER_CRASH.finding(
            loc, f"{scanner.name} scanner failed: {type(exc).__name__}: {exc}"))
        self.skip(loc, f"{scanner.name} scanner failed", inconclusive=True)

    # -- ScanContext ----------------------------------------------------------------------

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def fact(self, location: Location, kind: str, **data: object) -> None:
        self.facts.append(Fact(location, kind, data))

    def skip(self, location: Location, reason: str, *, inconclusive: bool) -> None:
        self.skipped.append(Skipped(location, reason, inconclusive))

    def examined(self, location: Location, format: str) -> None:
        self.examined_items.append(Examined(location, format))

    @property
    def depth(self) -> int:
        return self._depth

    def scan_child(self, source: Source) -> None:
        if self._depth + 1 > self.limits.max_depth:
            self.skip(source.location,
                      f"nested deeper than {self.limits.max_depth} containers", inconclusive=True)
            return
        self._members += 1
        if self._members > self.limits.max_members:
            self._exhausted(source.location, f"more than {self.limits.max_members} members "
                            "across all nesting levels of this input", bomb=True)
        if self._over_budget:
            return
        self._depth += 1
        try:
            self._dispatch(source)
        finally:
            self._depth -= 1

    def charge(self, location: Location, nbytes: int) -> bool:
        """One budget for everything decompressed under one input, at every nesting level:
        past ``max_ratio`` times the input's size (and the bomb floor) it is a bomb, however
        modestly each layer expands (42.zip); past ``max_total_bytes`` it is inconclusive."""
        self._charged += nbytes
        limits = self.limits
        if self._charged > max(BOMB_FLOOR, limits.max_ratio * self._input_size):
            self._exhausted(location, f"expands to more than {limits.max_ratio:g} times its "
                            f"{self._input_size} bytes across all nesting levels", bomb=True)
        elif self._charged > limits.max_total_bytes:
            self._exhausted(location, "decompressed size budget for this input exhausted "
                            f"({limits.max_total_bytes} bytes)", bomb=False)
        return not self._over_budget

    def _exhausted(self, location: Location, why: str, *, bomb: bool) -> None:
        """Stop reading anything more under this input (once); what was read stays judged."""
        if self._over_budget:
            return
        self._over_budget = True
        if bomb:
            self.add(ARCHIVE_BOMB.finding(location, f"decompression bomb: the input {why}; "
                                          "reading stopped"))
        self.skip(location, f"{why}: the rest of this input not examined", inconclusive=True)
