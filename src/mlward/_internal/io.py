"""Atomic file writes: a crash, a kill or a full disk never leaves a half-written file behind,
and (where the system allows) no temporary file either.

On Linux the new content is written to an unnamed file (``O_TMPFILE``) that only gets a name
once it is complete and synced, and is renamed over the target right away: a process killed
while writing (even with SIGKILL, where no clean-up code runs) leaves nothing. Elsewhere, or on
a filesystem without unnamed files, a named temporary file in the same folder is used and
removed on any error.
"""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    ``mode`` defaults to what a plain ``open`` would give (0666 less the umask); pass 0o600
    for files that hold secrets.

    A path that exists and is not a regular file (``/dev/null``, ``/dev/stdout``, a FIFO) is
    written to directly: replacing it would destroy the device or pipe.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        with open(path, "wb") as f:
            f.write(data)
        return
    directory = path.parent if str(path.parent) else Path()
    mode = mode if mode is not None else 0o666 & ~_umask()
    if _write_unnamed(directory, path, data, mode):
        return
    import tempfile  # with shutil and random: not needed by a run that writes nothing

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_unnamed(directory: Path, path: Path, data: bytes, mode: int) -> bool:
    """Write through an ``O_TMPFILE`` file, named only when complete; False when the system
    or filesystem has no such files (the caller then uses a named temporary file)."""
    flag = getattr(os, "O_TMPFILE", None)
    proc = Path("/proc/self/fd")
    if flag is None or not proc.is_dir():
        return False
    try:
        fd = os.open(directory, flag | os.O_WRONLY, 0o600)
    except OSError:
        return False
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
            f.flush()
            os.fsync(fd)
        name = directory / f".{path.name}.{os.urandom(6).hex()}.tmp"
        folder = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:  # linkat(AT_SYMLINK_FOLLOW) through /proc: the unnamed file gets a name (a dir
            # fd makes CPython call linkat, not link, which would link the /proc entry itself)
            os.link(proc / str(fd), name.name, dst_dir_fd=folder, follow_symlinks=True)
        finally:
            os.close(folder)
    finally:
        os.close(fd)
    try:
        name.replace(path)
    except BaseException:
        name.unlink(missing_ok=True)
        raise
    return True


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
