"""The scan engine: walk inputs, sniff each source by content, dispatch, collect a Report."""

from __future__ import annotations

import os
import signal
import stat
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mlward._internal.scanners import load_scanners
from mlward._internal.scanners.interface import DirectoryScanner, Limits, ScanContext, Scanner
from mlward._internal.sources import Source
from mlward._version import __version__
from mlward.errors import ScanError
from mlward.findings import Examined, Finding, Location, Report, Skipped, sort_findings
from mlward.rules import SCANNER_CRASH

# Folders that hold tooling state, not project content.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".ruff_cache",
                       ".pytest_cache", ".tox", ".nox", "node_modules", ".mlward"})


class ScanObserver(Protocol):
    """Progress hooks; the CLI attaches a progress bar, the API ignores them by default."""

    def on_start(self, total: int) -> None: ...

    def on_file(self, path: str) -> None: ...


class _NullObserver:
    def on_start(self, total: int) -> None:
        pass

    def on_file(self, path: str) -> None:
        pass


PARALLEL_MIN_FILES = 64
"""Below this many files, worker processes cost more than they save."""


def scan(paths: Iterable[str | os.PathLike[str]], *, limits: Limits | None = None,
         observer: ScanObserver | None = None, jobs: int | None = None) -> Report:
    """Scan files and folders (recursively) and return one :class:`Report`.

    ``jobs`` worker processes share the files (default: one per available core; 1 scans in
    this process). Raises :class:`~mlward.errors.ScanError` only when an input does not
    exist; problems inside files are reported as findings or inconclusive skips.
    """
    inputs = [Path(p) for p in paths]
    for p in inputs:
        if not p.exists() and not p.is_symlink():
            raise ScanError(f"no such file or directory: {p}")
    engine = _Engine(limits or Limits())
    obs = observer or _NullObserver()
    started = datetime.now(timezone.utc)
    files = list(engine.walk(inputs))
    obs.on_start(len(files))
    workers = min(jobs or _available_cores(), len(files) // (PARALLEL_MIN_FILES // 2))
    if workers > 1 and len(files) >= PARALLEL_MIN_FILES:
        _scan_in_workers(engine, files, workers, obs)
    else:
        for path, display in files:
            engine.scan_file(path, display)
            obs.on_file(display)
    return Report(
        findings=tuple(sort_findings(_dedupe(engine.findings))),
        skipped=tuple(engine.skipped),
        examined=tuple(engine.examined_items),
        started=started,
        finished=datetime.now(timezone.utc),
        version=__version__,
        inputs=tuple(str(p) for p in inputs),
    )


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_Results = tuple[list[Finding], list[Skipped], list[Examined]]


def _scan_chunk(limits: Limits, files: list[tuple[Path, str]]) -> _Results:
    engine = _Engine(limits)
    for path, display in files:
        engine.scan_file(path, display)
    return engine.findings, engine.skipped, engine.examined_items


def _scan_in_workers(engine: _Engine, files: list[tuple[Path, str]], workers: int,
                     obs: ScanObserver) -> None:
    """Scan ``files`` in forked worker processes (scanners already imported), in chunks.

    A worker that dies (a native library crashing on a hostile file) loses only the chunk it
    was on: that chunk is scanned again, in a process of its own and then file by file, so that
    only the file that kills its process ends up inconclusive. Results merge in input order.
    """
    size = max(8, len(files) // (workers * 8), -(-len(files) // MAX_CHUNKS))
    chunks = [files[i:i + size] for i in range(0, len(files), size)]
    results: dict[int, _Results | None] = {}
    for index, result in _fork_map(partial(_scan_chunk, engine.limits), chunks, workers):
        results[index] = result
        for _, display in chunks[index]:
            obs.on_file(display)
    for index, chunk in enumerate(chunks):
        result = results.get(index)
        if result is not None:
            _merge(engine, result)
            continue
        _scan_isolated(engine, chunk)  # its worker died on it, or every worker died before it
        if index not in results:
            for _, display in chunk:
                obs.on_file(display)


def _scan_isolated(engine: _Engine, chunk: list[tuple[Path, str]]) -> None:
    result = dict(_fork_map(partial(_scan_chunk, engine.limits), [chunk], 1)).get(0)
    if result is not None:
        _merge(engine, result)
    elif len(chunk) > 1:
        for item in chunk:
            _scan_isolated(engine, [item])
    else:
        engine.skip(Location(chunk[0][1]), "the scanner process died on this file",
                    inconclusive=True)


MAX_CHUNKS = 1024
"""Chunks of files per parallel scan (their 4-byte indices fit any pipe's buffer)."""
_T = TypeVar("_T")
_R = TypeVar("_R")
_HEADER = struct.Struct("<IQ")  # item index, pickled result length (0: the item failed)


def _fork_map(fn: Callable[[_T], _R], items: Sequence[_T],
              workers: int) -> Iterator[tuple[int, _R | None]]:
    """``(index, fn(item))`` for the items, computed in ``workers`` forked processes, in the
    order they finish; ``None`` for an item whose process died or raised while on it. Items
    that no worker reached (every worker died first) are not yielded.

    Forked, not spawned: the workers start with the scanners imported. Plain ``os.fork`` and
    pipes rather than ``concurrent.futures``, whose import (with ``multiprocessing``) cost
    about 40 ms of every parallel scan. The item indices wait in one pipe that the workers
    read 4 bytes at a time (reads of a pipe are atomic); each worker announces an item before
    working on it, so an item whose worker dies is known.
    """
    import pickle
    import selectors

    if len(items) > MAX_CHUNKS:
        raise ValueError(f"more than {MAX_CHUNKS} items")  # their indices fill one pipe
    tasks_r, tasks_w = os.pipe()
    os.write(tasks_w, b"".join(_INDEX.pack(i) for i in range(len(items))))
    os.close(tasks_w)  # the workers see EOF once every index is taken
    children: dict[int, int] = {}  # result pipe -> pid
    try:
        for _ in range(min(workers, len(items))):
            results_r, results_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                os.close(results_r)
                for fd in children:
                    os.close(fd)
                code = 0
                try:
                    while len(raw := os.read(tasks_r, 4)) == 4:
                        (index,) = _INDEX.unpack(raw)
                        _write_all(results_w, _INDEX.pack(index))  # "working on index"
                        try:
                            payload = pickle.dumps(fn(items[index]), pickle.HIGHEST_PROTOCOL)
                        except BaseException:
                            payload = b""
                        _write_all(results_w, _HEADER.pack(index, len(payload)) + payload)
                except BaseException:
                    code = 1
                os._exit(code)
            os.close(results_w)
            children[results_r] = pid
        os.close(tasks_r)
        tasks_r = -1
        with selectors.DefaultSelector() as selector:
            buffers = {fd: bytearray() for fd in children}
            for fd in children:
                selector.register(fd, selectors.EVENT_READ)
            while buffers:
                for key, _ in selector.select():
                    fd = int(key.fd)
                    data = os.read(fd, 1 << 20)
                    buf = buffers[fd]
                    buf += data
                    yield from _completed(buf, pickle.loads)
                    if not data:  # the worker exited: whatever it announced is lost
                        if len(buf) >= 4:
                            yield _INDEX.unpack_from(buf)[0], None
                        selector.unregister(fd)
                        os.close(fd)
                        os.waitpid(children.pop(fd), 0)
                        del buffers[fd]
    finally:
        if tasks_r >= 0:
            os.close(tasks_r)
        for fd, pid in children.items():  # interrupted: stop the workers
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(fd)


_INDEX = struct.Struct("<I")


def _completed(buf: bytearray, loads: Callable[[bytes], Any]) -> Iterator[tuple[int, Any]]:
    """Take the finished results off the front of ``buf``: each is the announced index, then
    the header and the pickled result."""
    while len(buf) >= 4 + _HEADER.size:
        index, length = _HEADER.unpack_from(buf, 4)
        end = 4 + _HEADER.size + length
        if len(buf) < end:
            return
        payload = bytes(buf[4 + _HEADER.size:end])
        del buf[:end]
        yield index, (loads(payload) if length else None)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _merge(engine: _Engine, results: _Results) -> None:
    findings, skipped, examined = results
    engine.findings.extend(findings)
    engine.skipped.extend(skipped)
    engine.examined_items.extend(examined)


def _dedupe(findings: list[Finding]) -> Iterator[Finding]:
    seen: set[tuple[object, ...]] = set()
    for f in findings:
        key = (f.rule_id, f.location, f.evidence, f.message)
        if key not in seen:
            seen.add(key)
            yield f


class _Engine(ScanContext):
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.scanners, self.dir_scanners = load_scanners()
        self.findings: list[Finding] = []
        self.skipped: list[Skipped] = []
        self.examined_items: list[Examined] = []
        self._depth = 0
        self._charged = 0
        self._over_budget = False

    # -- walking ------------------------------------------------------------------------

    def walk(self, inputs: Sequence[Path]) -> Iterator[tuple[Path, str]]:
        for root in inputs:
            if root.is_dir():
                yield from self._walk_dir(root)
            else:
                yield root, str(root)

    def _walk_dir(self, root: Path) -> Iterator[tuple[Path, str]]:
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for d in list(dirnames):
                if (here / d).is_symlink():
                    dirnames.remove(d)
                    self.skip(Location(str(here / d)), "symbolic link to a folder (not followed)",
                              inconclusive=False)
            self._run_directory_scanners(here)
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)  # noqa: PTH118 (thousands of files: str first)
                yield Path(path), path

    def _run_directory_scanners(self, directory: Path) -> None:
        for ds in self.dir_scanners:
            try:
                if ds.matches(directory):
                    ds.scan(directory, Location(str(directory)), self)
            except Exception as exc:  # a bug in one check must not stop the scan
                self._crash(Location(str(directory)), ds, exc)

    # -- one file -----------------------------------------------------------------------

    def scan_file(self, path: Path, display: str) -> None:
        loc = Location(display)
        try:
            st = path.stat()
        except OSError as exc:
            self.skip(loc, f"cannot read: {exc.strerror or exc}", inconclusive=True)
            return
        if not stat.S_ISREG(st.st_mode):
            self.skip(loc, "not a regular file", inconclusive=False)
            return
        self._depth = 0
        self._charged = 0
        self._over_budget = False
        # An unreadable file fails its first read in a sniff: "cannot read", inconclusive.
        self._dispatch(Source.from_path(path, display, size=st.st_size))

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
        except OSError as exc:
            self.skip(source.location, f"cannot read: {exc}", inconclusive=True)
        except Exception as exc:
            self._crash(source.location, scanner, exc)
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
            self._crash(source.location, scanner, exc)

    def _crash(self, loc: Location, scanner: Scanner | DirectoryScanner,
               exc: BaseException) -> None:
        self.add(SCANNER_CRASH.finding(
            loc, f"{scanner.name} scanner failed: {type(exc).__name__}: {exc}"))
        self.skip(loc, f"{scanner.name} scanner failed", inconclusive=True)

    # -- ScanContext ----------------------------------------------------------------------

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

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
        self._depth += 1
        try:
            self._dispatch(source)
        finally:
            self._depth -= 1

    def charge(self, location: Location, nbytes: int) -> bool:
        self._charged += nbytes
        if self._charged > self.limits.max_total_bytes:
            if not self._over_budget:
                self._over_budget = True
                self.skip(location, "decompressed size budget for this input exhausted "
                          f"({self.limits.max_total_bytes} bytes)", inconclusive=True)
            return False
        return True
