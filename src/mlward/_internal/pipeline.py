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
from mlward._internal.walk import Item, Walk, is_regular, unreadable
from mlward._version import __version__
from mlward.errors import ScanError
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


def scan(paths: Iterable[str | os.PathLike[str]], *, settings: Settings | None = None,
         observer: ScanObserver | None = None, executor: Executor | None = None) -> Report:
    """Scan files and folders (recursively) and return one :class:`~mlward.findings.Report`.

    ``settings`` (default: :class:`~mlward.settings.Settings` defaults) choose the executor,
    limits, excludes and root; ``executor`` overrides the one they name. Raises
    :class:`~mlward.errors.ScanError` only when an input does not exist; problems inside
    files are findings or inconclusive skips.
    """
    settings = settings or Settings()
    inputs = [Path(p) for p in paths]
    for p in inputs:
        if not p.exists() and not p.is_symlink():
            raise ScanError(f"no such file or directory: {p}")
    started = datetime.now(timezone.utc)
    root = scan_root(settings, inputs)
    builder = ReportBuilder(TargetKind.FILES, started=started, version=__version__,
                            root=str(root), inputs=[str(p) for p in inputs])
    obs = observer or _NullObserver()
    walk = Walk.for_settings(root, settings)
    folders = _FolderScan(settings, builder)
    items = list(walk.files(inputs, on_dir=folders.scan))
    obs.on_start(len(items))
    log.info("scanning %d file(s) under %s", len(items), root)
    own = executor is None
    executor = executor or make_executor(settings, units=len(items))
    try:
        for outcome in executor.map(partial(scan_item, settings), items):
            item = items[outcome.unit]
            if outcome.error is not None:
                loc = Location(item.uri)
                log.warning("%s: %s", item.uri, outcome.error)
                builder.add(SCANNER_CRASH.finding(loc, f"scanning stopped: {outcome.error}"))
                builder.skip(loc, outcome.error, inconclusive=True)
            else:
                builder.merge(*outcome.result)
            obs.on_file(item.uri)
    finally:
        if own:
            executor.close()
    builder.merge(skipped=walk.skipped)
    if any(e.format.startswith("dependencies") for e in builder.examined):
        from mlward._internal.scanners.deps import note_data

        note_data(builder, settings)
    builder.stats.update({"files": len(items), "executor": executor.name,
                          "excluded": dict(sorted(walk.excluded.items()))})
    from mlward._internal.triage import make_triage

    return builder.build(finished=datetime.now(timezone.utc),
                         triage=make_triage(settings, root))


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
        try:
            regular, size = is_regular(item.path)
        except OSError as exc:
            self.skipped.append(unreadable(loc, exc, ignore=self.settings.ignore_unreadable))
            return
        if not regular:
            self.skip(loc, "not a regular file", inconclusive=False)
            return
        self._depth = 0
        self._charged = 0
        self._members = 0
        self._input_size = size
        self._over_budget = False
        # An unreadable file fails its first read in a sniff: "cannot read", inconclusive.
        self._dispatch(Source.from_path(Path(item.path), item.uri, size=size))

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
