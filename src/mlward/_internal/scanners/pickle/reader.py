"""A bounded, buffered byte reader for hostile pickle streams.

Lengths a stream claims are checked against what remains BEFORE anything is allocated: the
stream's size when it can be measured, otherwise bytes are consumed in bounded chunks until
EOF. Nothing larger than :data:`CHUNK` (plus one kept string) is ever held in memory.
"""

from __future__ import annotations

import io
from typing import BinaryIO

CHUNK = 1 << 20
"""Bytes read from the stream at a time (by default)."""


class Truncated(Exception):
    """The stream ended (or would end) before a length it claims."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class Reader:
    """A window ``buf`` over the stream; ``base`` is the stream offset of ``buf[0]``.

    The machine reads ``buf`` directly for speed and calls :meth:`fill`, :meth:`skip` or
    :meth:`readline` with its current index when it needs more.
    """

    def __init__(self, stream: BinaryIO, chunk: int = CHUNK) -> None:
        self.stream = stream
        self.chunk = chunk
        self.seekable = _seekable(stream)
        self.start = stream.tell() if self.seekable else 0
        self.size: int | None = None
        if self.seekable:
            self.size = stream.seek(0, io.SEEK_END)
            stream.seek(self.start)
        self.buf = b""
        self.base = self.start
        self.eof = False

    def remaining(self, pos: int) -> int | None:
        """Bytes left in the stream after ``buf[pos]``, when the size is known."""
        return None if self.size is None else self.size - (self.base + pos)

    def fill(self, pos: int, n: int) -> bytes:
        """Re-window so that ``buf[0:]`` starts at ``pos`` with at least ``n`` bytes if any.

        Returns the new ``buf`` (index 0 is the old ``pos``); shorter than ``n`` only at EOF.
        """
        data = self.buf[pos:]
        self.base += pos
        while len(data) < n and not self.eof:
            want = max(self.chunk, n - len(data))
            if self.size is not None:  # no oversized read buffers for small streams
                want = min(want, self.size - self.base - len(data))
            chunk = self.stream.read(want) if want > 0 else b""
            if not chunk:
                self.eof = True
            data += chunk
            if self.size is not None and self.base + len(data) >= self.size:
                self.eof = True
        self.buf = data
        return data

    def skip(self, pos: int, n: int, what: str) -> tuple[bytes, int]:
        """Skip ``n`` bytes from ``buf[pos]``; returns the new ``(buf, pos)``."""
        end = pos + n
        if end <= len(self.buf):
            return self.buf, end
        left = self.remaining(pos)
        if left is not None and n > left:
            raise Truncated(f"{what} claims {n} bytes but only {left} remain", self.base + pos)
        need = end - len(self.buf)
        here = self.base + len(self.buf)
        if self.seekable:
            self.stream.seek(here + need)
            here += need
        else:
            while need:
                chunk = self.stream.read(min(self.chunk, need))
                if not chunk:
                    self.eof = True
                    raise Truncated(f"{what} claims {n} bytes; the stream ends first",
                                    self.base + pos)
                need -= len(chunk)
                here += len(chunk)
        self.buf = b""
        self.base = here
        return self.buf, 0

    def read(self, pos: int, n: int, what: str) -> tuple[bytes, bytes, int]:
        """Read ``n`` (small) bytes from ``buf[pos]``; returns ``(data, buf, pos)``."""
        buf = self.buf
        if pos + n > len(buf):
            left = self.remaining(pos)
            if left is not None and n > left:
                raise Truncated(f"{what} claims {n} bytes but only {left} remain",
                                self.base + pos)
            buf = self.fill(pos, n)
            pos = 0
            if n > len(buf):
                raise Truncated(f"{what} claims {n} bytes; the stream ends first", self.base)
        return buf[pos:pos + n], buf, pos + n

    def readline(self, pos: int, keep: int, what: str) -> tuple[bytes | None, bytes, int]:
        """Read a newline-terminated line from ``buf[pos]`` (without the newline).

        Returns ``(line, buf, pos)``; ``line`` is None when it is longer than ``keep`` bytes
        (it is consumed all the same, in bounded chunks).
        """
        buf = self.buf
        nl = buf.find(b"\n", pos, pos + keep + 1)
        if nl >= 0:
            return buf[pos:nl], buf, nl + 1
        if len(buf) - pos <= keep:
            buf = self.fill(pos, keep + 1)
            pos = 0
            nl = buf.find(b"\n", 0, keep + 1)
            if nl >= 0:
                return buf[:nl], buf, nl + 1
        start = self.base + pos
        while True:  # longer than ``keep``: consume it chunk by chunk
            nl = buf.find(b"\n", pos)
            if nl >= 0:
                return None, buf, nl + 1
            if self.eof:
                raise Truncated(f"{what}: the stream ends inside a line", start)
            buf = self.fill(len(buf), self.chunk)
            pos = 0
            if not buf:
                raise Truncated(f"{what}: the stream ends inside a line", start)

    def finish(self, pos: int) -> int:
        """Leave the stream just after ``buf[pos]`` (when it can seek); return that offset."""
        offset = self.base + pos
        if self.seekable:
            self.stream.seek(offset)
            self.buf = b""
            self.base = offset
        return offset


def _seekable(stream: BinaryIO) -> bool:
    try:
        if not stream.seekable():
            return False
        stream.tell()
    except (OSError, AttributeError, ValueError):
        return False
    return True
