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
(:func:`hash_paths`) get their size from that first ``fstat``, and are read in one thread:
a second one hashes small files no faster (the GIL changes hands at each of those short
calls). A long listing is shared with a helper process instead, forked (no interpreter to
start) where that is safe (:func:`mlward.executors.prefork.fork_task`), which reads the second
half on another core.
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
import marshal
import mmap
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mlward._internal.provenance.errors import FileChangedError, ProvenanceError
from mlward._internal.sources.remote import fetcher, is_remote
from mlward.errors import MissingExtra

if TYPE_CHECKING:
    from mlward.executors import Executor

CHUNK = 1 << 20
SMALL = 256 << 10
READ_AHEAD_CHUNK = 4 << 20
PIPELINE_MIN = 2 * READ_AHEAD_CHUNK
REMOTE_CHUNK = 16 << 20
BATCH_BYTES = 64 << 20
"""Small files go to one work unit until they add up to this (or :data:`BATCH_FILES`)."""
BATCH_FILES = 256
LOOK_BATCH = 1024
"""Files of a listing read between two progress reports (:func:`hash_paths`)."""
HELPER_MIN = 2048
"""Listings of at least this many files share their second half with a helper process
(:func:`hash_paths`); below it, forking costs more than it saves."""
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
    machine the benchmarks ran on (2.4 s instead of 0.6 s of system time for 4 GiB).
    Private where the platform says so (Python's default is a shared mapping): a process
    forked from this one (:func:`hash_paths`'s helper) writes into its own copy."""
    if hasattr(mmap, "MAP_PRIVATE"):
        return memoryview(mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE))
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
        _check_same(job, os.fstat(fd))
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
        _check_same(job, os.fstat(fd))
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


def _digest_small(fd: int, path: str | Path, st: os.stat_result, view: memoryview) -> str:
    """The SHA-256 of a small file open on ``fd`` (``st``: its ``fstat`` before the read):
    one ``readv`` into ``view``, this thread's buffer (looped only on a short read; no bytes
    object per file), then one ``fstat``: the inode, size and time it shows must be ``st``'s,
    so the bytes read were that file's, unchanged."""
    size = st.st_size
    n = os.readv(fd, [view[:size + 1]])  # one byte more: a file that grew shows here
    while n < size and (more := os.readv(fd, [view[n:size + 1]])):
        n += more
    if n != size:
        raise FileChangedError(str(path), f"size {size} became {n}")
    digest = hashlib.sha256(view[:n]).hexdigest()
    after = os.fstat(fd)
    if after.st_mtime_ns != st.st_mtime_ns or after.st_size != size \
            or after.st_ino != st.st_ino:
        _check_same(FileJob.of(path, st, "sha256"), after)  # raises, saying what changed
    return digest


def _small(job: FileJob) -> bool:
    return job.label == "sha256" and job.size <= SMALL and not job.is_remote


def _hash_small(job: FileJob) -> str:
    """A small file's SHA-256, checked against its listing (see :func:`_digest_small`)."""
    fd = _open(job.path)
    try:
        st = os.fstat(fd)
        _check_same(job, st)
        return _digest_small(fd, job.path, st, _BUFFERS.view)
    except OSError as exc:
        raise ProvenanceError(f"cannot read {job.path}: {exc.strerror}") from None
    finally:
        os.close(fd)


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


def _check_same(job: FileJob, st: os.stat_result) -> None:
    if st.st_ino != job.inode:
        raise FileChangedError(str(job.path), "it was replaced")
    if st.st_size != job.size:
        raise FileChangedError(str(job.path), f"size {job.size} became {st.st_size}")
    if st.st_mtime_ns != job.mtime_ns:
        raise FileChangedError(str(job.path), "its modification time changed")


def _shards(size: int, shard: int) -> list[tuple[int, int]]:
    return [(start, min(start + shard, size)) for start in range(0, size, shard)]


Hashed = tuple[int, str, str]
"""A file's ``(size, label, hex digest)``."""


def hash_paths(paths: Sequence[str | Path], spec: HashSpec, *,
               labels: Sequence[str | None] | None = None, workers: int | None = None,
               progress: Callable[[int], None] | None = None) -> list[Hashed]:
    """``(size, label, digest)`` of each file of a listing that did not ``stat`` them (a
    manifest's walk). The size, and the time and inode the read is checked against, come from
    the ``fstat`` of the descriptor each file is read through, which saves a ``stat`` per
    file (on many small files, a fifth of the time); the label is ``labels[i]`` (a manifest
    being verified) or the one ``spec`` gives the size.

    The listing is read in the calling thread (:func:`_look`): a small file under plain
    SHA-256 is hashed as it is opened, a larger one only sized, then hashed whole or in shards
    by ``workers`` threads (default: all cores) as :func:`hash_files` does. More threads do
    not help the small files: each costs five short system calls, the GIL changes hands at
    every one, and two threads took as long as one at more CPU time (bench/README.md). A
    listing of :data:`HELPER_MIN` files or more has its second half read by a forked helper
    process meanwhile, where one can be forked (else this thread reads it too). The first
    error (unreadable file, file changed) in the listing's order is raised."""
    out: list[Hashed] = [(-1, "", "")] * len(paths)
    later: list[tuple[int, FileJob]] = []  # (index, job) of the files left for hash_files
    view = _BUFFERS.view
    half = len(paths)  # this thread reads paths[:half], the helper (if any) the rest
    helper = None
    if len(paths) >= HELPER_MIN and spec.algorithm == "sha256":  # what _look hashes
        from mlward.executors.prefork import fork_task

        helper = fork_task(partial(_look_away, paths, labels, spec,
                                   range(len(paths) // 2, len(paths))))
        if helper is not None:
            half = len(paths) // 2
    try:
        for start in range(0, half, LOOK_BATCH):
            done = _look(paths, labels, spec, range(start, min(start + LOOK_BATCH, half)),
                         out, later, view)
            if progress is not None:
                progress(done)
        if helper is not None:
            data = helper.result()
            if data is None:  # the helper failed: its half is read here
                done = _look(paths, labels, spec, range(half, len(paths)), out, later, view)
            else:
                done = _merge_away(data, paths, out, later, half)
            if progress is not None:
                progress(done)
    finally:
        if helper is not None:
            helper.cancel()
    if later:
        from mlward.executors import available_cores

        digests = _run([job for _, job in later], workers or available_cores(), progress)
        for (index, job), digest in zip(later, digests, strict=True):
            out[index] = (job.size, job.label, digest)
    return out


def _look_away(paths: Sequence[str | Path], labels: Sequence[str | None] | None,
               spec: HashSpec, indices: range) -> bytes:
    """:func:`_look` over ``indices`` in a helper process; what it found, as plain data for
    :func:`_merge_away` (``marshal``: no class to rebuild, nothing to import): the ``out``
    slots, the files left for later (without their paths, which the parent has), the bytes
    hashed and the first error. It reads into its copy of this thread's buffer (a private
    mapping)."""
    out: list[Hashed] = [(-1, "", "")] * len(paths)
    later: list[tuple[int, FileJob]] = []
    error: tuple[str, ...] = ()
    hashed = 0
    try:  # one call: batches are for progress reports, which the helper does not make
        hashed = _look(paths, labels, spec, indices, out, later, _BUFFERS.view)
    except FileChangedError as exc:
        error = ("changed", exc.path, exc.what)
    except ProvenanceError as exc:
        error = ("read", str(exc))
    return marshal.dumps((out[indices.start:],
                          [(i, job.size, job.mtime_ns, job.inode, job.label)
                           for i, job in later], hashed, error))


def _merge_away(data: bytes, paths: Sequence[str | Path], out: list[Hashed],
                later: list[tuple[int, FileJob]], half: int) -> int:
    """Put what :func:`_look_away` found for ``paths[half:]`` into ``out`` and ``later``;
    its error, if any, is raised here. Returns the bytes it hashed."""
    slots, theirs, hashed, error = marshal.loads(data)
    out[half:] = slots
    later.extend((i, FileJob(paths[i], size, mtime, inode, label))
                 for i, size, mtime, inode, label in theirs)
    if error and error[0] == "changed":
        raise FileChangedError(error[1], error[2])
    if error:
        raise ProvenanceError(error[1])
    return int(hashed)


def _look(paths: Sequence[str | Path], labels: Sequence[str | None] | None, spec: HashSpec,
          indices: range, out: list[Hashed], later: list[tuple[int, FileJob]],
          view: memoryview) -> int:
    """Open each file of ``indices`` in ``paths`` and ``fstat`` it: a small one under plain
    SHA-256 gets its ``out`` slot filled, a larger one (or another label) goes to ``later``
    with its job. Returns the bytes hashed. Its loop is kept to the system calls: on many
    small files, the interpreter's work per file is what costs."""
    hashed = 0
    for i in indices:
        path = paths[i]
        fd = _open(path)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FileChangedError(str(path), "it is no longer a regular file")
            size = st.st_size
            label = (labels[i] if labels is not None else None) or spec.label_for(size)
            if label == "sha256" and size <= SMALL:
                out[i] = (size, label, _digest_small(fd, path, st, view))
                hashed += size
            else:
                later.append((i, FileJob.of(path, st, label)))
        except OSError as exc:
            raise ProvenanceError(f"cannot read {path}: {exc.strerror}") from None
        finally:
            os.close(fd)
    return hashed


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
