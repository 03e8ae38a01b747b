"""Streaming, parallel file digests in bounded memory.

Digest labels name exactly how a digest was computed, so a verifier recomputes it the same way:

``sha256``
    The plain SHA-256 of the whole file: what ``sha256sum`` prints.
``sha256-sharded-<S>``
    For a file larger than ``S`` bytes: the file is cut into shards of ``S`` bytes (the last
    one shorter), each shard hashed with SHA-256 on its own core, and the digest is
    ``SHA-256(b"mlward-sharded-v1 <S> <size>\\n" + d0 + d1 + ...)`` where ``dN`` is the raw
    32-byte SHA-256 of shard N. A file of ``S`` bytes or fewer gets the plain ``sha256`` label.
    A whole-file SHA-256 is a chain through every byte and cannot use a second core; the
    sharded digest can, and is as strong (any change to any byte changes a shard digest).
``blake3``
    The plain BLAKE3 of the whole file (what ``b3sum`` prints). BLAKE3 is a tree hash itself,
    so its digest is the same however many threads compute it.

Memory is bounded: each worker thread reads into one reusable buffer of ``CHUNK`` bytes with
``os.preadv`` (the file is never mapped: a file truncated under a mapping kills the process
with SIGBUS; the buffer is an anonymous mapping, for page alignment),
plus two read-ahead buffers of ``READ_AHEAD_CHUNK`` bytes for a large file under BLAKE3.
A file of at most ``SMALL`` bytes under plain SHA-256 (most files of a dataset) takes the
short path: ``open``, ``fstat``, one ``readv`` into that buffer, one ``hashlib`` call,
``fstat``, ``close``; per-file overhead is what limits hashing many small files, so that
path is kept to its system calls. Files a manifest lists without a ``stat`` each
(:func:`hash_paths`) get their size from that first ``fstat``.
A file whose size, modification time or inode changes while it is read raises
:class:`FileChangedError`.

Across machines (:func:`hash_with`, an :class:`~mlward.executors.Executor` such as a Dask
cluster), the same ranges are work units: each shard of a large file is one, small files go
whole in batches, and the shard digests are combined in the client exactly as above, so the
digests are identical to a local run's. Objects in S3, GCS or Azure (``s3://bucket/key``) are
read in ranged GETs of :data:`REMOTE_CHUNK` bytes; one that is shorter than its listing said
raises :class:`FileChangedError`.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mlward._internal.provenance import smallfiles
from mlward._internal.provenance.errors import FileChangedError, ProvenanceError
from mlward._internal.provenance.smallfiles import SMALL
from mlward._internal.sources.remote import fetcher, is_remote
from mlward.errors import MissingExtra

if TYPE_CHECKING:
    from mlward.executors import Executor

CHUNK = 1 << 20
READ_AHEAD_CHUNK = 4 << 20
PIPELINE_MIN = 2 * READ_AHEAD_CHUNK
REMOTE_CHUNK = 16 << 20
BATCH_BYTES = 64 << 20
"""Small files go to one work unit until they add up to this (or :data:`BATCH_FILES`)."""
BATCH_FILES = 256
HELPER_MIN_FILES = 2000
"""A listing this long is shared with helper processes (:func:`hash_paths`); a shorter one
would not repay their start-up (about 10 ms each)."""
DEFAULT_SHARD_SIZE = 64 << 20
ALGORITHMS = ("sha256", "blake3")
_SHARDED_PREFIX = "sha256-sharded-"


@dataclass(frozen=True)
class HashSpec:
    """How to hash: the algorithm, and the shard size for SHA-256 (``None``: whole file)."""

    algorithm: str = "sha256"
    shard_size: int | None = DEFAULT_SHARD_SIZE

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ProvenanceError(f"unknown hash algorithm {self.algorithm!r} "
                                  f"(choose from {', '.join(ALGORITHMS)})")
        if self.shard_size is not None and self.shard_size < CHUNK:
            raise ProvenanceError(f"shard size must be at least {CHUNK} bytes")

    def label_for(self, size: int) -> str:
        """The digest label this spec gives a file of ``size`` bytes."""
        if self.algorithm == "blake3":
            return "blake3"
        if self.shard_size is not None and size > self.shard_size:
            return f"{_SHARDED_PREFIX}{self.shard_size}"
        return "sha256"


def parse_label(label: str) -> tuple[str, int | None]:
    """``(algorithm, shard size or None)`` for a digest label; unknown labels are an error."""
    if label in ALGORITHMS:
        return label, None
    if label.startswith(_SHARDED_PREFIX) and label[len(_SHARDED_PREFIX):].isdigit():
        shard = int(label[len(_SHARDED_PREFIX):])
        if shard >= CHUNK:
            return "sha256", shard
    raise ProvenanceError(f"unknown digest algorithm {label!r}")


class FileJob(NamedTuple):
    """One file to hash: where it is, what it looked like when listed, and which digest.
    (A named tuple: one is made per file, and a dataclass costs several times as much.)"""

    path: str | Path
    size: int
    mtime_ns: int
    inode: int
    label: str

    @classmethod
    def of(cls, path: str | Path, st: os.stat_result, label: str) -> FileJob:
        return cls(path, st.st_size, st.st_mtime_ns, st.st_ino, label)

    @classmethod
    def remote(cls, url: str, size: int, label: str) -> FileJob:
        """An object in object storage (``s3://bucket/key``), ``size`` bytes when listed."""
        return cls(url, size, 0, 0, label)

    @property
    def is_remote(self) -> bool:
        return isinstance(self.path, str) and is_remote(self.path)


def _blake3() -> Any:
    try:
        import blake3
    except ImportError:
        raise MissingExtra("blake3", "provenance") from None
    return blake3.blake3


def _page_aligned(size: int) -> memoryview:
    """A read buffer in its own anonymous mapping: page-aligned. Reading the page cache into a
    ``bytearray`` from ``malloc`` (not page-aligned) cost four times the kernel time on the
    machine the benchmarks ran on (2.4 s instead of 0.6 s of system time for 4 GiB)."""
    return memoryview(mmap.mmap(-1, size))


class _Buffers(threading.local):
    def __init__(self) -> None:
        self.view = _page_aligned(CHUNK)


_BUFFERS = _Buffers()


def _hash_range(job: FileJob, hasher: Any, start: int, end: int) -> None:
    """Feed bytes ``start..end`` of the job's file to ``hasher``, checking the file held still."""
    if job.is_remote:
        _hash_remote_range(job, hasher, start, end)
        return
    view = _BUFFERS.view
    try:
        # O_NONBLOCK: a file swapped for a FIFO since it was listed must not block the open.
        fd = os.open(job.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ProvenanceError(f"cannot read {job.path}: {exc.strerror}") from None
    try:
        _check_stat(job, os.fstat(fd))
        if job.label == "blake3" and end - start > PIPELINE_MIN:
            _read_ahead(job, fd, hasher, start, end)
        else:
            pos = start
            while pos < end:
                n = os.preadv(fd, [view[:min(CHUNK, end - pos)]], pos)
                if n == 0:
                    raise FileChangedError(str(job.path), "it became shorter")
                hasher.update(view[:n])
                pos += n
        _check_stat(job, os.fstat(fd))
    except OSError as exc:
        raise ProvenanceError(f"cannot read {job.path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _hash_remote_range(job: FileJob, hasher: Any, start: int, end: int) -> None:
    url = str(job.path)
    fetch = fetcher(url)
    pos = start
    while pos < end:
        try:
            data = fetch(pos, min(pos + REMOTE_CHUNK, end))
        except OSError as exc:
            raise ProvenanceError(f"cannot read {url}: {exc}") from None
        if not data:
            raise FileChangedError(url, "it became shorter")
        hasher.update(data)
        pos += len(data)


def _read_ahead(job: FileJob, fd: int, hasher: Any, start: int, end: int) -> None:
    """Read the next chunk on a helper thread while ``hasher`` (BLAKE3, itself multithreaded)
    hashes the current one: two buffers of ``READ_AHEAD_CHUNK`` bytes (large chunks let
    BLAKE3 spread each one over all cores)."""
    size = READ_AHEAD_CHUNK
    buffers = (_page_aligned(size), _page_aligned(size))
    from concurrent.futures import ThreadPoolExecutor  # only large BLAKE3 files need it

    with ThreadPoolExecutor(1) as reader:
        pending = reader.submit(os.preadv, fd, [buffers[0][:min(size, end - start)]], start)
        pos, which = start, 0
        while pos < end:
            n = pending.result()
            if n == 0:
                raise FileChangedError(str(job.path), "it became shorter")
            current, pos, which = buffers[which], pos + n, 1 - which
            if pos < end:
                pending = reader.submit(os.preadv, fd, [buffers[which][:min(size, end - pos)]],
                                        pos)
            hasher.update(current[:n])


def _open(path: str | Path) -> int:
    """A descriptor for reading ``path``: ``O_NOFOLLOW`` and ``O_NONBLOCK`` keep a link or a
    FIFO swapped in since the listing from being followed or from blocking."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ProvenanceError(f"cannot read {path}: {exc.strerror}") from None


def _small(job: FileJob) -> bool:
    return job.label == "sha256" and job.size <= SMALL and not job.is_remote


def _hash_small(job: FileJob) -> str:
    """A small file's SHA-256 (:func:`smallfiles.look`), checked against its listing."""
    records, failure = smallfiles.look([job.path], _BUFFERS.view)
    if failure is not None:
        raise _error(job.path, failure)
    size, mtime_ns, inode, digest = records[0]
    _check_same(job, size, mtime_ns, inode)
    return digest


def _error(path: str | Path, failure: smallfiles.Failure) -> ProvenanceError:
    if failure.kind == "changed":
        return FileChangedError(str(path), failure.detail)
    return ProvenanceError(f"cannot read {path}: {failure.detail}")


def _new_hasher(job: FileJob, size: int) -> Any:
    if job.label == "blake3":
        return _blake3()(max_threads=-1 if size > PIPELINE_MIN else 1)
    return hashlib.sha256()


def _combine(job: FileJob, digests: Sequence[bytes]) -> str:
    """The ``sha256-sharded-<S>`` digest from its shards' raw SHA-256 digests, in order."""
    _, shard = parse_label(job.label)
    outer = hashlib.sha256(f"mlward-sharded-v1 {shard} {job.size}\n".encode())
    for d in digests:
        outer.update(d)
    return outer.hexdigest()


def _check_same(job: FileJob, size: int, mtime_ns: int, inode: int) -> None:
    """Raise unless a file shows the inode, size and time it was listed with."""
    if inode != job.inode:
        raise FileChangedError(str(job.path), "it was replaced")
    if size != job.size:
        raise FileChangedError(str(job.path), f"size {job.size} became {size}")
    if mtime_ns != job.mtime_ns:
        raise FileChangedError(str(job.path), "its modification time changed")


def _check_stat(job: FileJob, st: os.stat_result) -> None:
    _check_same(job, st.st_size, st.st_mtime_ns, st.st_ino)


def _shards(size: int, shard: int) -> list[tuple[int, int]]:
    return [(start, min(start + shard, size)) for start in range(0, size, shard)]


Hashed = tuple[int, str, str]
"""A file's ``(size, label, hex digest)``."""


def hash_paths(paths: Sequence[str | Path], spec: HashSpec, *,
               labels: Sequence[str | None] | None = None, workers: int | None = None,
               progress: Callable[[int], None] | None = None,
               helper_min: int = HELPER_MIN_FILES) -> list[Hashed]:
    """``(size, label, digest)`` of each file of a listing that did not ``stat`` them (a
    manifest's walk). The size, and the time and inode the read is checked against, come from
    the ``fstat`` of the descriptor each file is read through, which saves a ``stat`` per
    file (on many small files, a fifth of the time); the label is ``labels[i]`` (a manifest
    being verified) or the one ``spec`` gives the size.

    Small files under SHA-256 are hashed as they are opened (:mod:`smallfiles`). A listing of
    at least ``helper_min`` files is cut into ``workers`` shares (default: one per core): this
    process reads the first, a helper process each other one (threads would not help:
    :mod:`smallfiles` says why); a helper that cannot start or fails leaves its share to this
    process. Larger files are then hashed whole or in shards as :func:`hash_files` does. The
    first error (unreadable file, file changed) is raised."""
    from mlward.executors import available_cores

    workers = workers or available_cores()
    limit = SMALL if spec.algorithm == "sha256" else -1
    shares = workers if len(paths) >= helper_min and _Helper.possible() else 1
    bounds = [len(paths) * k // shares for k in range(shares + 1)]
    helpers = [_Helper(paths[bounds[k]:bounds[k + 1]], limit) for k in range(1, shares)]
    try:
        out, later = _gather(paths, bounds, helpers, labels, spec, limit, progress)
    finally:
        for helper in helpers:
            helper.stop()
    if later:
        digests = _run([job for _, job in later], workers, progress)
        for (index, job), digest in zip(later, digests, strict=True):
            out[index] = (job.size, job.label, digest)
    return out


def _gather(paths: Sequence[str | Path], bounds: list[int], helpers: list[_Helper],
            labels: Sequence[str | None] | None, spec: HashSpec, limit: int,
            progress: Callable[[int], None] | None,
            ) -> tuple[list[Hashed], list[tuple[int, FileJob]]]:
    """Each file's ``(size, label, digest)``, share by share (the first read here, the others
    by ``helpers``), and the ``(index, job)`` of those still to hash (larger files, or
    labels other than plain SHA-256); the first failure raised."""
    out: list[Hashed] = []
    later: list[tuple[int, FileJob]] = []
    for k in range(len(bounds) - 1):
        share = paths[bounds[k]:bounds[k + 1]]
        got = helpers[k - 1].result() if k else None
        records, failure = got or smallfiles.look(share, _BUFFERS.view, limit)
        if failure is not None:
            raise _error(share[failure.at], failure)
        hashed = 0
        for i, (size, mtime_ns, inode, digest) in enumerate(records, bounds[k]):
            label = (labels[i] if labels is not None else None) or spec.label_for(size)
            if label == "sha256" and digest:
                out.append((size, label, digest))
                hashed += size
            else:
                out.append((size, label, ""))
                later.append((i, FileJob(paths[i], size, mtime_ns, inode, label)))
        if progress is not None:
            progress(hashed)
    return out, later


class _Helper:
    """A helper process (``python -I -S smallfiles.py``) reading a share of a listing. A
    thread feeds it the paths and reads its records, so that neither side waits for the
    other while this process reads its own share."""

    _SCRIPT = smallfiles.__file__

    @classmethod
    def possible(cls) -> bool:
        """An interpreter to start, and the helper's source as a file to start it on."""
        return bool(sys.executable) and Path(cls._SCRIPT).is_file()

    def __init__(self, paths: Sequence[str | Path], limit: int) -> None:
        import subprocess

        self._got: tuple[list[smallfiles.Record], smallfiles.Failure | None] | None = None
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-I", "-S", self._SCRIPT, str(limit)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError:
            self._proc = None
            return
        data = b"\0".join(os.fsencode(p) for p in paths)
        self._thread = threading.Thread(target=self._talk, args=(data, len(paths)),
                                        daemon=True)
        self._thread.start()

    def _talk(self, data: bytes, count: int) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            with proc.stdin:
                proc.stdin.write(data)
            with proc.stdout:
                raw = proc.stdout.read()
            got = smallfiles.decode(raw)
        except (OSError, ValueError):
            return
        finally:
            proc.wait()
        records, failure = got
        if proc.returncode == 0 and (len(records) == count if failure is None else
                                     failure.at == len(records) < count):
            self._got = got

    def result(self) -> tuple[list[smallfiles.Record], smallfiles.Failure | None] | None:
        """The helper's records and failure; None when it could not run or failed (its share
        is then read here)."""
        if self._proc is None:
            return None
        self._thread.join()
        return self._got

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()


def hash_files(jobs: Sequence[FileJob], *, workers: int | None = None,
               progress: Callable[[int], None] | None = None,
               failed: dict[int, ProvenanceError] | None = None) -> list[str]:
    """Hex digests of ``jobs`` (listed with their size, time and inode) in order; see
    :func:`_run` for ``failed``."""
    from mlward.executors import available_cores

    return _run(list(jobs), workers or available_cores(), progress, failed)


def _run(jobs: list[FileJob], workers: int, progress: Callable[[int], None] | None,
         failed: dict[int, ProvenanceError] | None = None) -> list[str]:
    """Hash ``jobs`` with ``workers`` threads: each file whole, or in shards that the threads
    take in turn. ``progress`` is called with byte counts as work finishes; the first error
    (unreadable file, file changed) stops the work and is raised; given a ``failed`` dict
    instead, a file's error is put there under its job index, its digest is ``""``, and the
    other files are still hashed (an audit records what it could not read).
    """
    results: list[str] = [""] * len(jobs)
    errors: list[BaseException] = []
    tasks: deque[tuple[int, int, int, int]] = deque()  # job index, shard index, start, end
    shard_digests: dict[int, list[bytes]] = {}
    for index, job in enumerate(jobs):
        _, shard = parse_label(job.label)
        if shard is None:
            tasks.append((index, -1, 0, job.size))
        else:
            ranges = _shards(job.size, shard)
            shard_digests[index] = [b""] * len(ranges)
            tasks.extend((index, n, start, end) for n, (start, end) in enumerate(ranges))

    def work() -> None:
        while not errors:
            try:
                index, shard_index, start, end = tasks.popleft()
            except IndexError:
                return
            job = jobs[index]
            try:
                if shard_index < 0 and _small(job):
                    results[index] = _hash_small(job)
                    if progress is not None:
                        progress(job.size)
                    continue
                hasher = _new_hasher(job, job.size)
                _hash_range(job, hasher, start, end)
            except BaseException as exc:
                if failed is not None and isinstance(exc, ProvenanceError):
                    failed[index] = exc
                    continue
                errors.append(exc)
                return
            if shard_index < 0:
                results[index] = hasher.hexdigest()
            else:
                shard_digests[index][shard_index] = hasher.digest()
            if progress is not None:
                progress(end - start)

    _threads(work, min(workers, len(tasks)))
    if errors:
        raise errors[0]
    for index, digests in shard_digests.items():
        if failed is not None and index in failed:
            results[index] = ""
            continue
        results[index] = _combine(jobs[index], digests)
    return results


class HashUnit(NamedTuple):
    """A work unit for :func:`hash_with`: byte ranges to digest (one shard of a large file,
    or several small files whole), each ``(job index, shard index or -1, start, end)``."""

    jobs: tuple[FileJob, ...]
    ranges: tuple[tuple[int, int, int, int], ...]


def hash_unit(unit: HashUnit) -> list[bytes]:
    """The raw digest of each range of ``unit`` (runs on a worker)."""
    out = []
    for job, (_, shard, start, end) in zip(unit.jobs, unit.ranges, strict=True):
        if shard < 0 and _small(job):
            out.append(bytes.fromhex(_hash_small(job)))
            continue
        hasher = _new_hasher(job, end - start)
        _hash_range(job, hasher, start, end)
        out.append(hasher.digest())
    return out


def plan_units(jobs: Sequence[FileJob]) -> list[HashUnit]:
    """Shards of sharded files one unit each; other files batched up to :data:`BATCH_BYTES`
    or :data:`BATCH_FILES` (a file over the byte budget alone)."""
    units: list[HashUnit] = []
    batch: list[tuple[FileJob, tuple[int, int, int, int]]] = []
    size = 0

    def flush() -> None:
        nonlocal size
        if batch:
            units.append(HashUnit(tuple(j for j, _ in batch), tuple(r for _, r in batch)))
            batch.clear()
            size = 0

    for index, job in enumerate(jobs):
        _, shard = parse_label(job.label)
        if shard is not None:
            units.extend(HashUnit((job,), ((index, n, start, end),))
                         for n, (start, end) in enumerate(_shards(job.size, shard)))
            continue
        batch.append((job, (index, -1, 0, job.size)))
        size += job.size
        if size >= BATCH_BYTES or len(batch) >= BATCH_FILES:
            flush()
    flush()
    return units


def hash_with(executor: Executor, jobs: Sequence[FileJob]) -> list[str]:
    """Hex digests of ``jobs`` (listed with their sizes) in order, the work spread by
    ``executor`` (a Dask cluster; threads for object storage); the same digests as
    :func:`hash_files`. The first unit that fails raises its error as a
    :class:`ProvenanceError`."""
    units = plan_units(jobs)
    results: list[str] = [""] * len(jobs)
    shard_digests: dict[int, dict[int, bytes]] = {}
    for outcome in executor.map(hash_unit, units):
        if outcome.error is not None:
            failed = units[outcome.unit].jobs[0].path
            raise ProvenanceError(f"hashing {failed} failed: {outcome.error}")
        for (index, shard, _, _), digest in zip(units[outcome.unit].ranges, outcome.result,
                                                strict=True):
            if shard < 0:
                results[index] = digest.hex()
            else:
                shard_digests.setdefault(index, {})[shard] = digest
    for index, digests in shard_digests.items():
        results[index] = _combine(jobs[index], [digests[n] for n in sorted(digests)])
    return results


def _threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def file_digest(path: Path, label: str = "sha256") -> str:
    """The hex digest of one file under ``label`` (see the module docstring)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ProvenanceError(f"cannot read {path}: {exc.strerror}") from None
    return hash_files([FileJob.of(path, st, label)])[0]
