"""The tensors a PyTorch checkpoint's pickle describes: names, dtypes and shapes.

``torch.save`` pickles each tensor as a call to ``torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, ...)`` whose storage is a persistent id ``('storage', <dtype>Storage,
key, location, numel)``: the shapes and dtypes are in the pickle, the bytes are not. This
reader follows just those opcodes with a small value stack, over :func:`pickletools.genops`
(a parser: nothing is imported or called), after the pickle machine has judged the same
bytes. It is for facts, not verdicts: anything it does not follow makes it give up quietly.
"""

from __future__ import annotations

import pickletools
from collections.abc import Iterator
from typing import BinaryIO

from mlward._internal.scanners.facts import Tensor

REBUILD = frozenset({"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
                     "torch._utils._rebuild_parameter"})
STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "UntypedStorage": "uint8",
}
MAX_OPS = 50_000_000


class _Global(str):
    """An imported name (``module.name``)."""


class _Storage(str):
    """A storage persistent id; the value is the dtype."""


class _Tensor:
    __slots__ = ("dtype", "shape")

    def __init__(self, dtype: str, shape: tuple[int, ...]) -> None:
        self.dtype = dtype
        self.shape = shape


class _Mark:
    pass


_MARK = _Mark()
_OPAQUE = object()
_CONSTANTS = frozenset({"BININT", "BININT1", "BININT2", "INT", "LONG", "LONG1", "LONG4",
                        "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE",
                        "STRING", "BINSTRING", "SHORT_BINSTRING", "BINFLOAT", "FLOAT"})
_FIXED_TUPLES = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_PUSH_OPAQUE = frozenset({"EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "NONE", "NEWTRUE",
                          "NEWFALSE", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
                          "NEXT_BUFFER", "EXT1", "EXT2", "EXT4", "PERSID"})
_TO_MARK_OPAQUE = frozenset({"LIST", "DICT", "FROZENSET", "INST", "OBJ"})
_TO_MARK_DROP = frozenset({"APPENDS", "ADDITEMS", "POP_MARK"})
_NO_STACK = frozenset({"PROTO", "FRAME", "STOP", "READONLY_BUFFER", "PUT", "BINPUT",
                       "LONG_BINPUT", "MEMOIZE"})


class _GiveUp(Exception):
    pass


def torch_tensors(stream: BinaryIO, max_ops: int = MAX_OPS) -> list[Tensor] | None:
    """(name, dtype, shape) of every tensor in the pickle at ``stream``; None when the
    stream does not follow the shape ``torch.save`` gives it."""
    try:
        return list(_run(pickletools.genops(stream), max_ops))
    except (_GiveUp, ValueError, IndexError, TypeError, OverflowError):
        return None


def _run(ops: Iterator[tuple[pickletools.OpcodeInfo, object, int | None]],
         max_ops: int) -> Iterator[Tensor]:
    stack: list[object] = []
    memo: dict[int, object] = {}
    count = 0
    for n, (op, arg, _) in enumerate(ops):
        if n > max_ops:
            raise _GiveUp
        name = op.name
        # The memo first: most of a checkpoint's opcodes are BINPUT, LONG_BINPUT and BINGET
        # (their arguments are ints: genops reads them as such).
        if name == "LONG_BINPUT" or name == "BINPUT":
            memo[arg] = stack[-1]  # type: ignore[index]
        elif name == "BINGET" or name == "LONG_BINGET":
            stack.append(memo.get(arg, _OPAQUE))  # type: ignore[call-overload]
        elif name in _CONSTANTS:
            stack.append(arg)
        elif name == "MARK":
            stack.append(_MARK)
        elif name in _FIXED_TUPLES:
            k = _FIXED_TUPLES[name]
            values = tuple(stack[len(stack) - k:]) if k else ()
            del stack[len(stack) - k:]
            stack.append(values)
        elif name == "TUPLE":
            stack.append(tuple(_pop_to_mark(stack)))
        elif name in _PUSH_OPAQUE:
            stack.append(_OPAQUE)
        elif name in _TO_MARK_OPAQUE:
            _pop_to_mark(stack)
            stack.append(_OPAQUE)
        elif name in _TO_MARK_DROP:
            _pop_to_mark(stack)
        elif name == "GLOBAL":
            stack.append(_Global(str(arg).replace(" ", ".", 1)))
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            stack.append(_Global(f"{module}.{attr}"))
        elif name == "GET":
            stack.append(memo.get(int(str(arg)), _OPAQUE))
        elif name == "PUT":
            memo[int(str(arg))] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name == "BINPERSID":
            stack.append(_storage(stack.pop()))
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            stack.append(_call(func, args))
        elif name in ("NEWOBJ", "BUILD", "APPEND"):
            stack.pop()
            if name == "NEWOBJ":
                stack[-1] = _OPAQUE
        elif name == "NEWOBJ_EX":
            del stack[-2:]
            stack[-1] = _OPAQUE
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            if isinstance(value, _Tensor):
                count += 1
                yield _named(key, count), value.dtype, value.shape
        elif name == "SETITEMS":
            items = _pop_to_mark(stack)
            for key, value in zip(items[::2], items[1::2], strict=False):
                if isinstance(value, _Tensor):
                    count += 1
                    yield _named(key, count), value.dtype, value.shape
        elif name == "POP":
            stack.pop()
        elif name == "DUP":
            stack.append(stack[-1])
        elif name not in _NO_STACK:
            raise _GiveUp


def _pop_to_mark(stack: list[object]) -> list[object]:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1:]
            del stack[i:]
            return items
    raise _GiveUp


def _storage(pid: object) -> object:
    if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" \
            and isinstance(pid[1], _Global):
        kind = pid[1].rsplit(".", 1)[-1]
        return _Storage(STORAGE_DTYPES.get(kind, kind))
    return _OPAQUE


def _call(func: object, args: object) -> object:
    if isinstance(func, _Global) and func in REBUILD and isinstance(args, tuple) and args:
        first = args[0]
        if isinstance(first, _Tensor):  # _rebuild_parameter(tensor, requires_grad, hooks)
            return first
        if isinstance(first, _Storage) and len(args) >= 3 and isinstance(args[2], tuple) \
                and all(isinstance(d, int) and d >= 0 for d in args[2]):
            return _Tensor(str(first), args[2])
    return _OPAQUE


def _named(key: object, count: int) -> str:
    return key if isinstance(key, str) else f"tensor {count}"
