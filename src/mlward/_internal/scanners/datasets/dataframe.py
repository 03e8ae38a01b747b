"""Pickled pandas DataFrames (``to_pickle``, any compression the archive layer opens): the
shape, when it is safe to tell.

The pickle scanner judges the stream like any other pickle. This supplementary pass only
describes it: when every name the pickle imports is pandas', numpy's or pyarrow's own (or on
the pickle allowlist), it reads the structure symbolically (:func:`pickletools.genops`
decodes opcodes; nothing is imported or called) to find the DataFrame's two axes and their
lengths, and records the shape as a ``dataset`` fact. Anything else (a foreign import, an
unfamiliar layout, a stream too large to hold) leaves the shape untold.
"""

from __future__ import annotations

import io
from typing import Any

from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.scanners.pickle.machine import resolve
from mlward._internal.scanners.pickle.policy import Kind, classify
from mlward._internal.sources import Source

MAX_BYTES = 64 << 20
MAX_OPS = 2_000_000
MAX_NODES = 1_000_000
FRAMES = frozenset({"pandas.DataFrame", "pandas.core.frame.DataFrame"})
NEW_INDEX = "pandas.core.indexes.base._new_Index"
OWN_MODULES = ("pandas", "numpy", "pyarrow")


class Global:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class Call:
    """What calling ``func`` (a :class:`Global`, or anything) with ``args`` would return."""

    __slots__ = ("args", "func", "state")

    def __init__(self, func: object, args: object) -> None:
        self.func = func
        self.args = args
        self.state: object = None

    @property
    def name(self) -> str | None:
        return self.func.name if isinstance(self.func, Global) else None


class _Mark:
    pass


MARK = _Mark()
OPAQUE = object()


class NotTold(Exception):
    """The structure is not one this reader describes."""


def evaluate(data: bytes) -> tuple[object, list[str]]:
    """The pickle's value as inert nodes, and every name it imports."""
    import pickletools  # on the first DataFrame, not on every run

    stack: list[Any] = []
    memo: dict[int, Any] = {}
    names: list[str] = []
    proto = 0

    def imported(module: str, attr: str) -> Global:
        module, attr = resolve(module, attr, proto)  # Python 2 names, as the unpickler maps
        names.append(f"{module}.{attr}")
        return Global(f"{module}.{attr}")

    def pop_mark() -> list[Any]:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is MARK:
                items = stack[i + 1:]
                del stack[i:]
                return items
        raise NotTold("no MARK")

    for n, (op, raw, _) in enumerate(pickletools.genops(io.BytesIO(data))):
        arg: Any = raw
        if n > MAX_OPS:
            raise NotTold("too many opcodes")
        name = op.name
        if name == "PROTO":
            proto = int(arg)
            continue
        if name == "FRAME":
            continue
        if name == "STOP":
            return stack[-1], names
        if name == "MARK":
            stack.append(MARK)
        elif name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            g = imported(module, attr)
            stack.append(g if name == "GLOBAL" else Call(g, tuple(pop_mark())))
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            if not isinstance(attr, str) or not isinstance(module, str):
                raise NotTold("computed import")
            stack.append(imported(module, attr))
        elif name in ("REDUCE", "NEWOBJ"):
            args = stack.pop()
            stack.append(Call(stack.pop(), args))
        elif name == "NEWOBJ_EX":
            stack.pop()
            args = stack.pop()
            stack.append(Call(stack.pop(), args))
        elif name == "OBJ":
            items = pop_mark()
            stack.append(Call(items[0], tuple(items[1:])))
        elif name == "BUILD":
            state = stack.pop()
            if isinstance(stack[-1], Call):
                stack[-1].state = state
        elif name in ("EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
            k = ("EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3").index(name)
            items = stack[len(stack) - k:] if k else []
            del stack[len(stack) - k:]
            stack.append(tuple(items))
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name in ("EMPTY_LIST", "LIST"):
            stack.append(pop_mark() if name == "LIST" else [])
        elif name in ("EMPTY_DICT", "DICT"):
            items = pop_mark() if name == "DICT" else []
            stack.append(_pairs({}, items))
        elif name in ("EMPTY_SET", "FROZENSET"):
            if name == "FROZENSET":
                pop_mark()
            stack.append(OPAQUE)
        elif name == "APPEND":
            value = stack.pop()
            if isinstance(stack[-1], list):
                stack[-1].append(value)
        elif name in ("APPENDS", "ADDITEMS"):
            items = pop_mark()
            if isinstance(stack[-1], list):
                stack[-1].extend(items)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            if isinstance(stack[-1], dict):
                _pairs(stack[-1], [key, value])
        elif name == "SETITEMS":
            items = pop_mark()
            if isinstance(stack[-1], dict):
                _pairs(stack[-1], items)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[int(arg)])
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(stack[-1])
        elif name in ("PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER",
                      "READONLY_BUFFER"):
            if name in ("BINPERSID", "READONLY_BUFFER"):
                stack.pop()
            stack.append(OPAQUE)
        else:  # a constant: numbers, strings, bytes, None, booleans
            stack.append(arg if op.arg is not None else {"NONE": None, "NEWTRUE": True,
                                                         "NEWFALSE": False}.get(name))
    raise NotTold("no STOP")


def _pairs(target: dict[Any, Any], items: list[Any]) -> dict[Any, Any]:
    for k, v in zip(items[::2], items[1::2], strict=False):
        if isinstance(k, (str, int, float, bytes, bool)) or k is None:
            target[k] = v
    return target


def _length(index: Call) -> int | None:
    """The length of an Index rebuilt by ``_new_Index(cls, d)``."""
    args = index.args
    if not isinstance(args, tuple) or len(args) != 2 or not isinstance(args[1], dict):
        return None
    d = args[1]
    if all(isinstance(d.get(k), int) for k in ("start", "stop", "step")) and d["step"]:
        return len(range(d["start"], d["stop"], d["step"]))
    return _array_length(d.get("data"))


def _array_length(value: object) -> int | None:
    """The length of a numpy array or pandas extension array, from how it is rebuilt."""
    if not isinstance(value, Call):
        return None
    state, args = value.state, value.args
    # numpy: _reconstruct(...) then BUILD (version, shape, dtype, fortran, data).
    if isinstance(state, tuple) and len(state) >= 2 and isinstance(state[1], tuple) and \
            state[1] and isinstance(state[1][0], int):
        return state[1][0]
    # numpy >= 2 by value: _frombuffer(buffer, dtype, shape, order).
    if (value.name or "").endswith("_frombuffer") and isinstance(args, tuple) and len(
            args) >= 3 and isinstance(args[2], tuple) and args[2]:
        return args[2][0] if isinstance(args[2][0], int) else None
    # pyarrow-backed arrays: {'_pa_array': _restore_array((type, length, ...))}.
    if isinstance(state, dict):
        for key in ("_pa_array", "_ndarray", "_data"):
            inner = state.get(key)
            if isinstance(inner, Call) and (inner.name or "").endswith("_restore_array"):
                spec = inner.args[0] if isinstance(inner.args, tuple) and inner.args else None
                if isinstance(spec, tuple) and len(spec) > 1 and isinstance(spec[1], int):
                    return spec[1]
            elif inner is not None:
                return _array_length(inner)
    return None


def dataframe_shape(data: bytes) -> tuple[int, int] | None:
    """``(rows, columns)`` of a pickled DataFrame, or None when it is not safe to tell."""
    try:
        value, names = evaluate(data)
    except (NotTold, ValueError, KeyError, IndexError, TypeError, AttributeError,
            RecursionError, MemoryError):
        return None
    for qual in names:
        module, _, attr = qual.rpartition(".")
        if not qual.startswith(OWN_MODULES) and classify(module, attr).kind is not Kind.SAFE:
            return None
    if not isinstance(value, Call) or _class_of(value) not in FRAMES:
        return None
    axes = _axes(value.state)
    if axes is None:
        return None
    columns, rows = (_length(a) for a in axes)
    return (rows, columns) if rows is not None and columns is not None else None


def _class_of(value: Call) -> str | None:
    """The class a call builds: protocols 0-1 go through ``copyreg._reconstructor(cls, ...)``."""
    if value.name == "copyreg._reconstructor" and isinstance(value.args, tuple) and \
            value.args and isinstance(value.args[0], Global):
        return value.args[0].name
    return value.name


def _axes(root: object) -> tuple[Call, Call] | None:
    """The BlockManager's axes: the first pair of rebuilt Index objects, in pickle order."""
    stack = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen or len(seen) > MAX_NODES:
            continue
        seen.add(id(node))
        if isinstance(node, (list, tuple)):
            if len(node) == 2 and all(isinstance(x, Call) and x.name == NEW_INDEX
                                      for x in node):
                return node[0], node[1]
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, Call):
            stack.extend([node.state, node.args])
    return None


class DataFramePickleScanner(Scanner):
    name = "pandas-pickle"
    priority = 805  # after the pickle scanner, which claims and judges the stream
    supplementary = True

    def sniff(self, source: Source) -> bool:
        head = source.head()
        return b"pandas" in head and b"DataFrame" in head and (
            source.size is None or source.size <= MAX_BYTES)

    def scan(self, source: Source, ctx: ScanContext) -> None:
        with source.open() as f:
            data = f.read(MAX_BYTES + 1)
        shape = dataframe_shape(data) if len(data) <= MAX_BYTES else None
        if shape is None:
            return
        ctx.examined(source.location, f"pandas DataFrame ({shape[0]} x {shape[1]})")
        ctx.fact(source.location, "dataset", format="pandas-pickle", rows=shape[0],
                 column_count=shape[1])
