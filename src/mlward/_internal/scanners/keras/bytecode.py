"""The names a marshalled Python code object uses, read without ``marshal.loads``.

Keras stores a Lambda layer's function as base64 of ``marshal.dumps(func.__code__)``. Why not
``marshal.loads``: it never runs code, but it trusts its input (hostile data has crashed the
interpreter in past CPython versions), and it refuses code objects written by another Python
version, which is the common case for a model trained elsewhere. So this module walks the
marshal format itself, bounded in depth, count and length, and knows the three code-object
layouts (CPython 3.7, 3.8-3.10, 3.11 and later) well enough to collect ``co_names`` (the
globals and attributes the code reaches, e.g. ``os``, ``system``) and string constants,
including those of nested code objects. A layout is accepted only if it parses the whole
buffer exactly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from mlward.errors import FormatError

MAX_DEPTH = 64
MAX_OBJECTS = 200_000

# (int32 fields before the objects, objects before firstlineno, objects after it)
_LAYOUTS = {"3.11+": (5, 8, 2), "3.8-3.10": (6, 8, 1), "3.7": (5, 8, 1)}
_NAMES_INDEX = 2  # co_names is the third object in every layout
_CONSTS_INDEX = 1

# Single-byte objects with no payload.
_SINGLETONS = {ord(c) for c in "0NFTS.?"}


@dataclass
class CodeNames:
    names: list[str] = field(default_factory=list)
    """co_names of the code object and the code objects nested in it, in order."""
    strings: list[str] = field(default_factory=list)
    """String constants."""
    layout: str = ""


@dataclass
class _Code:
    names: tuple[object, ...]
    consts: tuple[object, ...]


class _Parser:
    def __init__(self, data: bytes, layout: tuple[int, int, int]) -> None:
        self.data = data
        self.pos = 0
        self.layout = layout
        self.refs: list[object] = []
        self.count = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError("marshal data ends early", self.pos)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def i32(self) -> int:
        value: int = struct.unpack("<i", self.take(4))[0]
        return value

    def size(self) -> int:
        n = self.i32()
        if n < 0 or n > len(self.data) - self.pos:
            raise FormatError(f"marshal length {n} exceeds the data", self.pos)
        return n

    def load(self, depth: int = 0) -> object:
        if depth > MAX_DEPTH:
            raise FormatError("marshal data nested too deep", self.pos)
        self.count += 1
        if self.count > MAX_OBJECTS:
            raise FormatError("too many marshal objects", self.pos)
        code = self.take(1)[0]
        flag, kind = code & 0x80, chr(code & 0x7F)
        slot = None
        if flag:
            slot = len(self.refs)
            self.refs.append(None)
        value = self.load_kind(kind, depth)
        if slot is not None:
            self.refs[slot] = value
        return value

    def load_kind(self, kind: str, depth: int) -> object:
        if ord(kind) in _SINGLETONS:
            return None
        if kind == "i":
            return self.i32()
        if kind in "I":
            return self.take(8)
        if kind == "g":
            return self.take(8)
        if kind == "y":
            return self.take(16)
        if kind in "fx":
            n = 2 if kind == "x" else 1
            for _ in range(n):
                self.take(self.take(1)[0])
            return None
        if kind == "l":
            digits = self.i32()
            self.take(2 * min(abs(digits), len(self.data)))
            return None
        if kind in "stuaA":
            raw = self.take(self.size())
            return raw if kind == "s" else raw.decode("utf-8", errors="replace")
        if kind in "zZ":
            return self.take(self.take(1)[0]).decode("latin-1")
        if kind == "r":
            index = self.i32()
            if not 0 <= index < len(self.refs):
                raise FormatError(f"marshal reference {index} out of range", self.pos)
            return self.refs[index]
        if kind in "([<>":
            return tuple(self.load(depth + 1) for _ in range(self.size()))
        if kind == ")":
            return tuple(self.load(depth + 1) for _ in range(self.take(1)[0]))
        if kind == "{":
            items = []
            while self.data[self.pos:self.pos + 1] != b"0":
                items.append(self.load(depth + 1))
                items.append(self.load(depth + 1))
            self.take(1)
            return tuple(items)
        if kind == ":":  # slice (3.14)
            return tuple(self.load(depth + 1) for _ in range(3))
        if kind == "c":
            return self.load_code(depth)
        raise FormatError(f"unknown marshal type {kind!r}", self.pos - 1)

    def load_code(self, depth: int) -> _Code:
        ints_before, objs_before, objs_after = self.layout
        self.take(4 * ints_before)
        objs = [self.load(depth + 1) for _ in range(objs_before)]
        self.take(4)  # firstlineno
        for _ in range(objs_after):
            self.load(depth + 1)
        names, consts = objs[_NAMES_INDEX], objs[_CONSTS_INDEX]
        if not isinstance(names, tuple) or not isinstance(consts, tuple):
            raise FormatError("code object without names or constants", self.pos)
        return _Code(names, consts)


def code_names(data: bytes) -> CodeNames:
    """The names and string constants of a marshalled code object.

    Raises :class:`FormatError` when no known layout parses the data as one code object.
    """
    for label, layout in _LAYOUTS.items():
        parser = _Parser(data, layout)
        try:
            top = parser.load()
        except (FormatError, IndexError):
            continue
        if isinstance(top, _Code) and parser.pos == len(data):
            out = CodeNames(layout=label)
            _collect(top, out, 0)
            return out
    raise FormatError("not a marshalled code object of a known Python version")


def _collect(code: _Code, out: CodeNames, depth: int) -> None:
    out.names.extend(n for n in code.names if isinstance(n, str))
    for const in code.consts:
        if isinstance(const, str):
            out.strings.append(const)
        elif isinstance(const, _Code) and depth < MAX_DEPTH:
            _collect(const, out, depth + 1)
