"""Small files hashed in a loop kept to its system calls, here or in a helper process.

A small file costs five system calls (``open``, ``fstat``, one ``readv``, ``fstat``,
``close``) around a SHA-256 of a few KiB, and CPython's threads hand the GIL over at each of
them: two threads hash small files no faster than one. A second interpreter does: started on
this file alone (``python -I -S smallfiles.py``: the standard library only, no ``site``, no
environment, no current folder on its path; about 10 ms), it hashes its share of a listing on
another core and writes one record per file to a pipe.

This module imports nothing from mlward (the helper runs it by its path) and judges nothing:
:mod:`mlward._internal.provenance.hashing` turns its records into digests and errors.

A record is ``(size, mtime_ns, inode, digest)``, the first three from the ``fstat`` of the
descriptor the file is read through; ``digest`` is the hex SHA-256 when the file is at most
:data:`SMALL` bytes, else ``""`` (only sized: the caller hashes it). The bytes hashed are
checked to be that file's, unchanged: a second ``fstat`` after the read must show the same
inode, size and modification time. The first file that cannot be read or changed ends the
listing with a :class:`Failure`.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Sequence
from typing import NamedTuple

SMALL = 256 << 10
"""Files up to this size are read with one ``readv`` and hashed whole."""
FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
"""``O_NOFOLLOW`` and ``O_NONBLOCK``: a link or a FIFO swapped in since the listing is neither
followed nor waited on."""

Record = tuple[int, int, int, str]


class Failure(NamedTuple):
    """Why the file at ``at`` in a listing ended it: ``kind`` is ``"read"`` (``detail``: the
    system's reason) or ``"changed"`` (``detail``: what changed)."""

    at: int
    kind: str
    detail: str


def look(paths: Sequence[str | bytes | os.PathLike[str]], view: memoryview,
         limit: int = SMALL) -> tuple[list[Record], Failure | None]:
    """A record for each of ``paths`` in order, up to the first failure: files of at most
    ``limit`` bytes (at most :data:`SMALL`; -1: none) hashed, read into ``view`` (at least
    ``limit + 1`` bytes)."""
    records: list[Record] = []
    sha256, fstat, readv = hashlib.sha256, os.fstat, os.readv
    for index, path in enumerate(paths):
        try:
            fd = os.open(path, FLAGS)
        except OSError as exc:
            return records, Failure(index, "read", exc.strerror or str(exc))
        try:
            st = fstat(fd)
            size = st.st_size
            if not stat.S_ISREG(st.st_mode):
                return records, Failure(index, "changed", "it is no longer a regular file")
            if size > limit:
                records.append((size, st.st_mtime_ns, st.st_ino, ""))
                continue
            n = readv(fd, [view[:size + 1]])  # one byte more: a file that grew shows here
            while n < size and (more := readv(fd, [view[n:size + 1]])):
                n += more
            if n != size:
                return records, Failure(index, "changed", f"size {size} became {n}")
            digest = sha256(view[:n]).hexdigest()
            after = fstat(fd)
            if after.st_ino != st.st_ino:
                return records, Failure(index, "changed", "it was replaced")
            if after.st_size != size:
                return records, Failure(index, "changed",
                                        f"size {size} became {after.st_size}")
            if after.st_mtime_ns != st.st_mtime_ns:
                return records, Failure(index, "changed", "its modification time changed")
            records.append((size, st.st_mtime_ns, st.st_ino, digest))
        except OSError as exc:
            return records, Failure(index, "read", exc.strerror or str(exc))
        finally:
            os.close(fd)
    return records, None


def encode(records: list[Record], failure: Failure | None) -> bytes:
    """What the helper writes: a line per record, then one for the failure, if any."""
    lines = [f"{size} {mtime} {inode} {digest or '-'}" for size, mtime, inode, digest in records]
    if failure is not None:
        lines.append(f"! {failure.at} {failure.kind} {failure.detail}")
    return "\n".join(lines).encode("utf-8", "surrogateescape")


def decode(data: bytes) -> tuple[list[Record], Failure | None]:
    """The records and failure :func:`encode` wrote; ``ValueError`` for anything else."""
    records: list[Record] = []
    failure = None
    for line in data.decode("utf-8", "surrogateescape").split("\n") if data else ():
        if failure is not None:
            raise ValueError("a record after the failure")
        if line.startswith("! "):
            at, kind, detail = line[2:].split(" ", 2)
            failure = Failure(int(at), kind, detail)
            continue
        size, mtime, inode, digest = line.split(" ")
        records.append((int(size), int(mtime), int(inode), "" if digest == "-" else digest))
    return records, failure


def main() -> None:
    """The helper: the size limit as its argument, NUL-separated paths on standard input,
    records on standard output."""
    import mmap

    limit = min(int(sys.argv[1]), SMALL)
    data = sys.stdin.buffer.read()
    paths = data.split(b"\0") if data else []
    view = memoryview(mmap.mmap(-1, SMALL + 1))
    sys.stdout.buffer.write(encode(*look(paths, view, limit)))


if __name__ == "__main__":
    main()
