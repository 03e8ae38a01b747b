"""One work unit's scan: sniff a file (and everything nested in it) and run the scanners that
claim it, or run the folder-level scanners over one folder.

Runs where the unit runs (a worker process, a Dask worker, or the caller's process with the
inline executor); the process that walks the inputs and builds the report
(:mod:`mlward._internal.pipeline`) does not import it, nor the scanners.
"""

from __future__ import annotations

from pathlib import Path

from mlward._internal import logs
from mlward._internal.scanners import load_scanners, text_loaded
from mlward._internal.scanners.interface import DirectoryScanner, ScanContext, Scanner
from mlward._internal.sources import Source
from mlward._internal.sources.archives import BOMB_FLOOR
from mlward._internal.sources.remote import RemoteObject, is_remote
from mlward._internal.walk import Item, is_regular, unreadable
from mlward.errors import MissingExtra
from mlward.findings import Examined, Fact, Finding, Location, Skipped
from mlward.rules import ARCHIVE_BOMB, SCANNER_CRASH
from mlward.settings import Settings

log = logs.get("mlward.scan")

ItemResult = tuple[list[Finding], list[Fact], list[Skipped], list[Examined]]
"""What one unit found, in :meth:`~mlward.findings.ReportBuilder.merge`'s order. A plain tuple:
the process that receives it needs no class from this module to unpickle it."""


def scan_unit(settings: Settings, item: Item) -> ItemResult:
    """Scan one work unit: a file, or (``item.folder``) a folder's folder-level checks."""
    engine = Engine(settings)
    if item.folder:
        engine.scan_folder(item)
    else:
        engine.scan_file(item)
    return engine.findings, engine.facts, engine.skipped, engine.examined_items


_supplementary: tuple[list[Scanner], list[Scanner]] = ([], [])


def supplementary(scanners: list[Scanner]) -> list[Scanner]:
    """The supplementary scanners among ``scanners``, in their order (the answer for the
    last list asked about is kept: it is the same list for every file)."""
    global _supplementary
    if _supplementary[0] is not scanners:
        _supplementary = (scanners, [s for s in scanners if s.supplementary])
    return _supplementary[1]


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
        self._dispatch(Source.from_path(item.path, item.uri, size=size))

    def scan_folder(self, item: Item) -> None:
        """The folder-level scanners (a model repository, a dataset repository, a Zarr
        store) over one folder; its files are units of their own."""
        path, loc = Path(item.path), Location(item.uri)
        for ds in self.dir_scanners:
            try:
                if ds.matches(path):
                    ds.scan(path, loc, self)
            except Exception as exc:  # a bug in one check must not stop the scan
                self.crash(loc, ds, exc)

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
        if not text_loaded() and self._may_be_text(source):
            self.scanners, self.dir_scanners = load_scanners(text=True)
        claimed = None
        # The sniffs are called here, not through _sniff: a call less for each of some 30
        # scanners, for every file.
        for scanner in self.scanners:
            try:
                match = scanner.sniff(source)
            except Exception as exc:
                self._sniff_failed(scanner, source, exc)
                return
            if match:
                claimed = scanner
                self._run(scanner, source)
                break
        if claimed is None:
            self.skip(source.location, "unrecognised format", inconclusive=False)
            return
        for extra in supplementary(self.scanners):
            if extra is not claimed and extra.name not in claimed.covers \
                    and self._sniff(extra, source):
                self._run(extra, source)

    @staticmethod
    def _may_be_text(source: Source) -> bool:
        """Whether a :data:`~mlward._internal.scanners.TEXT_ONLY` scanner could claim the
        source: its head holds no NUL byte. A head that cannot be read says no; the first
        sniff reports why."""
        try:
            return b"\0" not in source.head()
        except Exception:  # reported by the sniff that reads it next
            return False

    def _sniff(self, scanner: Scanner, source: Source) -> bool:
        """Whether ``scanner`` recognises ``source`` (a sniff that fails is reported, and
        says no)."""
        try:
            return scanner.sniff(source)
        except Exception as exc:
            self._sniff_failed(scanner, source, exc)
            return False

    def _sniff_failed(self, scanner: Scanner, source: Source, exc: Exception) -> None:
        if isinstance(exc, PermissionError):  # the file's first read: it cannot be read
            self.skipped.append(unreadable(source.location, exc,
                                           ignore=self.settings.ignore_unreadable))
        elif isinstance(exc, OSError):
            self.skip(source.location, f"cannot read: {exc}", inconclusive=True)
        else:
            self.crash(source.location, scanner, exc)

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
