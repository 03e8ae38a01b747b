"""A bounded, buffered, frame-aware byte reader for hostile pickle streams.

Lengths a stream claims are checked against what remains BEFORE anything is allocated: the
stream's size when it can be measured, otherwise bytes are consumed in bounded chunks until
EOF. Nothing larger than :data:`CHUNK` (plus one kept string) is ever held in memory.

Frames (protocol 4's FRAME opcode) are where CPython's unpicklers disagree, so the reader
tracks the current one. ``pickle.loads`` ignores frame boundaries (bytes run on); the C
unpickler over a file without ``peek`` (a ``BytesIO``, as ``torch.load`` passes it) reads a
frame into its buffer and, when a read runs past the buffer's end, drops what is left of it
and reads after the frame (``_Unpickler_ReadImpl``). The reader follows one of the two
(``droptail``) and, following the first, tells the machine when the second would differ.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import BinaryIO

CHUNK = 1 << 20
"""Bytes read from the stream at a time (by default)."""


class Truncated(Exception):
    """The stream ended (or would end) before a length it claims."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def _nothing() -> None:
    pass


class Reader:
    """A window ``buf`` over the stream; ``base`` is the stream offset of ``buf[0]``.

    The machine reads ``buf`` directly up to ``end`` (the window's end, or the current
    frame's when that comes first) and calls :meth:`ahead`, :meth:`read`, :meth:`skip` or
    :meth:`readline` with its current index when it needs more.
    """

    def __init__(self, stream: BinaryIO, chunk: int = CHUNK) -> None:
        self.stream = stream
        self.chunk = chunk
        self.seekable = is_seekable(stream)
        self.start = stream.tell() if self.seekable else 0
        self.size: int | None = None
        if self.seekable:
            self.size = stream.seek(0, io.SEEK_END)
            stream.seek(self.start)
        self.buf = b""
        self.base = self.start
        self.eof = False
        self.end = 0
        """Index in ``buf`` where readable bytes end: the window's end or the frame's."""
        self.frame_end: int | None = None
        """Stream offset where the current frame's bytes end (None outside a frame)."""
        self.droptail = False
        """Read as the C unpickler reads a file without ``peek``: a read running past the
        frame's end starts after the frame instead (the rest of the frame is dropped)."""
        self.crossed: Callable[[], None] = _nothing
        """Called when a read runs past the frame's end (before it is followed)."""

    def remaining(self, pos: int) -> int | None:
        """Bytes left in the stream after ``buf[pos]``, when the size is known."""
        return None if self.size is None else self.size - (self.base + pos)

    def _set_end(self) -> None:
        n = len(self.buf)
        frame = self.frame_end
        if frame is not None and frame - self.base < n:
            n = max(frame - self.base, 0)
        self.end = n

    def _start(self, pos: int, n: int) -> int:
        """Where a read of ``n`` bytes wanted at ``buf[pos]`` starts, given the frame."""
        frame = self.frame_end
        if frame is None:
            return pos
        rel = frame - self.base
        if pos + n <= rel:
            return pos
        if pos < rel:  # the read runs past the frame's end
            self.crossed()
            self.frame_end = None
            if self.droptail:
                if rel > len(self.buf):
                    _, rel = self._advance(len(self.buf), rel - len(self.buf), "a frame")
                self._set_end()
                return rel
        self.frame_end = None
        self._set_end()
        return pos

    def start_frame(self, pos: int, n: int) -> int:
        """A FRAME of ``n`` bytes follows ``buf[pos]``; returns where it starts (after the
        current frame, when it runs past that one and ``droptail``)."""
        pos = self._start(pos, n)
        self.frame_end = self.base + pos + n
        self._set_end()
        return pos

    def ahead(self, pos: int) -> int:
        """Keep 9 bytes from ``buf[pos]`` in the window unless the stream ends (an opcode
        and its fixed-size argument); forget a frame that is used up. Returns the new pos."""
        frame = self.frame_end
        if frame is not None and self.base + pos >= frame:
            self.frame_end = None
            self._set_end()
        if len(self.buf) - pos < 9 and not self.eof:
            self.fill(pos, 9)
            return 0
        return pos

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
        self._set_end()
        return data

    def skip(self, pos: int, n: int, what: str) -> tuple[bytes, int]:
        """Skip ``n`` bytes from ``buf[pos]``; returns the new ``(buf, pos)``."""
        return self._advance(self._start(pos, n), n, what)

    def _advance(self, pos: int, n: int, what: str) -> tuple[bytes, int]:
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
        self._set_end()
        return self.buf, 0

    def read(self, pos: int, n: int, what: str) -> tuple[bytes, bytes, int]:
        """Read ``n`` (small) bytes from ``buf[pos]``; returns ``(data, buf, pos)``."""
        if self.frame_end is not None:
            pos = self._start(pos, n)
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
        (it is consumed all the same, in bounded chunks). The C unpickler looks for the
        newline in its buffer first: a line that runs past the frame's end starts after the
        frame when ``droptail``.
        """
        if self.frame_end is not None and self.base + pos >= self.frame_end:
            self.frame_end = None
        buf = self.buf
        if len(buf) - pos <= keep and not self.eof:
            buf = self.fill(pos, keep + 1)
            pos = 0
        start = self.base + pos  # the line's first byte, as a stream offset
        while True:
            frame = self.frame_end
            limit = len(buf) if frame is None else min(len(buf), frame - self.base)
            nl = buf.find(b"\n", pos, limit)
            if nl >= 0:
                self._set_end()
                first = start - self.base
                if first >= 0 and nl - first <= keep:
                    return buf[first:nl], buf, nl + 1
                return None, buf, nl + 1
            if frame is not None and limit == frame - self.base:  # no newline in the frame
                self.crossed()
                self.frame_end = None
                if self.droptail:
                    return self.readline(limit, keep, what)
                pos = limit
            elif self.eof:
                raise Truncated(f"{what}: the stream ends inside a line", start)
            else:  # longer than the window: consume it chunk by chunk (too long to keep)
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
            self._set_end()
        return offset


def is_seekable(stream: BinaryIO) -> bool:
    try:
        if not stream.seekable():
            return False
        stream.tell()
    except (OSError, AttributeError, ValueError):
        return False
    return True
