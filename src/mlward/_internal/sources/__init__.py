"""Where bytes come from: files on disk and members of containers.

A :class:`Source` is a named, re-openable byte stream. Scanners read it through
:meth:`Source.open` and should read only what a verdict needs; :meth:`Source.head` gives the
first bytes for sniffing without re-reading them each time.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:  # the manifest commands read remote objects through this package,
    from mlward.findings import Location  # without a report to make

HEAD_BYTES = 4096


class Source:
    """A named byte stream: a file, or a member inside one or more containers."""

    def __init__(self, location: Location, opener: Callable[[], BinaryIO], *,
                 size: int | None = None, fs_path: str | Path | None = None,
                 name: str = "") -> None:
        self.location = location
        self._opener = opener
        self.size = size
        self._fs_path = fs_path
        self.name = name or (location.members[-1] if location.members
                             else location.uri.rsplit("/", 1)[-1])
        """The file or member name (for hints only: formats are sniffed by content)."""
        self._head: bytes | None = None
        self.sniffed: dict[str, object] = {}
        """What sniffing learnt that other sniffers reuse (e.g. a zip's member names, which
        the torch, numpy and Keras sniffers all ask for), keyed by what it is."""

    @property
    def fs_path(self) -> Path | None:
        """The file on disk when the source is one (scanners that need a path use it)."""
        if self._fs_path is None or isinstance(self._fs_path, Path):
            return self._fs_path
        self._fs_path = Path(self._fs_path)  # made when asked: most scans never ask
        return self._fs_path

    @classmethod
    def from_path(cls, path: str | Path, display: str | None = None,
                  size: int | None = None) -> Source:
        from mlward.findings import Location

        # A str stays a str (a Path per file is a tenth of a tiny file's scan): os, not Path.
        return cls(Location(display or os.fspath(path)), lambda: open(path, "rb"),
                   size=os.stat(path).st_size if size is None else size,  # noqa: PTH116
                   fs_path=path, name=os.path.basename(path))  # noqa: PTH119

    @classmethod
    def from_bytes(cls, location: Location, data: bytes, name: str = "") -> Source:
        return cls(location, lambda: io.BytesIO(data), size=len(data), name=name)

    def open(self) -> BinaryIO:
        return self._opener()

    def head(self, n: int = HEAD_BYTES) -> bytes:
        """The first ``n`` bytes; the first :data:`HEAD_BYTES` are read once and cached."""
        if n > HEAD_BYTES:
            with self.open() as f:
                return f.read(n)
        if self._head is None:
            if self._fs_path is not None:  # a file on disk: no buffered reader just for this
                self._head = _read_head(self._fs_path)
            else:
                with self.open() as f:
                    self._head = f.read(HEAD_BYTES)
        return self._head[:n]

    def __repr__(self) -> str:
        return f"Source({self.location.container_path!r})"


def _read_head(path: str | Path) -> bytes:
    """The first :data:`HEAD_BYTES` of a file (every scan reads one per file: a third of the
    cost of ``open(path, "rb").read()``)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block
    try:
        data = b""
        while len(data) < HEAD_BYTES:
            chunk = os.read(fd, HEAD_BYTES - len(data))
            if not chunk:
                break
            data += chunk
        return data
    finally:
        os.close(fd)
