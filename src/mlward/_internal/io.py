"""Atomic file writes: a crash or a full disk never leaves a half-written file behind."""

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
    import tempfile  # with shutil and random: not needed by a run that writes nothing

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode if mode is not None else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
