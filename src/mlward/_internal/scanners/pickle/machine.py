"""The symbolic pickle machine: runs opcodes over symbols, never over real objects.

It follows CPython's unpickler opcode by opcode (stack, MARK frames, memo, protocol) but
what it pushes are symbols: short strings, small ints and tuples (needed to resolve
STACK_GLOBAL operands and joblib array layouts), :class:`Reference` for every name the pickle
imports, :class:`Call` for what calling one returns, and :data:`OPAQUE` for everything else.
Nothing named in the stream is imported and no stream value is ever built into a real object
beyond those inert containers.

What it records: every distinct :class:`Reference` (first offset, whether it is called),
imports whose name is computed at load time, calls of computed values, and how many pickles
ended in STOP. Malformed data raises :class:`Malformed`; a limit raises :class:`LimitReached`.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import math
from struct import unpack_from
from typing import Final

from mlward._internal.scanners.interface import Limits
from mlward._internal.scanners.pickle.reader import Reader, Truncated

KEEP: Final = 1024
"""Longest string kept as a value; longer strings become OPAQUE (a STACK_GLOBAL over one is
reported as an unresolved import, so skipping them can only over-report)."""

TYPE_LOOKUPS: Final = frozenset({"dill._dill._load_type", "dill.dill._load_type"})
"""Functions returning a type by name: calls with a constant name resolve to that type."""

JOBLIB_WRAPPERS: Final = frozenset({
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
})


class Opaque:
    """A value the machine does not track."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OPAQUE"


OPAQUE: Final = Opaque()


class Reference:
    """A name the pickle imports, resolved as CPython's unpickler would resolve it."""

    __slots__ = ("called", "module", "name", "offset", "opcode")

    def __init__(self, module: str, name: str, offset: int, opcode: str) -> None:
        self.module = module
        self.name = name
        self.offset = offset
        self.opcode = opcode
        self.called = False

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    def __repr__(self) -> str:
        return f"Reference({self.qualname!r})"


class Call:
    """What calling a reference returns; BUILD records its state."""

    __slots__ = ("args", "ref", "state")

    def __init__(self, ref: Reference, args: object) -> None:
        self.ref = ref
        self.args = args
        self.state: object = None


class Malformed(Exception):
    """The stream breaks the pickle format where CPython's unpickler would fail too."""

    def __init__(self, message: str, offset: int, *, truncated: bool = False) -> None:
        super().__init__(message)
        self.offset = offset
        self.truncated = truncated
        """The stream ended early (rather than holding something invalid)."""


class LimitReached(Exception):
    """A safety limit (opcodes, stack depth) ended the analysis."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def resolve(module: str, name: str, proto: int) -> tuple[str, str]:
    """The module and name CPython's ``Unpickler.find_class`` imports for a global.

    Protocols below 3 map Python 2 names (``__builtin__``, ``copy_reg``...) as ``fix_imports``
    does. Dotted names are attribute paths inside the module; CPython follows them from
    protocol 4 (newer versions at every protocol), so they are always kept whole here.
    """
    if proto < 3:
        mapped = _compat_pickle.NAME_MAPPING.get((module, name))
        if mapped is not None:
            return mapped
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return module, name


class Machine:
    """One stream's analysis; :meth:`run` reads one pickle up to and including its STOP."""

    def __init__(self, reader: Reader, limits: Limits, *, joblib: bool = False) -> None:
        self.reader = reader
        self.limits = limits
        self.joblib = joblib
        self.pos = 0
        """Index into ``reader.buf`` of the next opcode."""
        self.ops = 0
        self.pickles = 0
        self.arrays = 0
        self.references: dict[str, Reference] = {}
        self.dynamic_imports: list[int] = []
        """Offsets of STACK_GLOBALs whose operands are not known strings."""
        self.extensions: list[tuple[int, int]] = []
        """(offset, code) of EXT opcodes: names from copyreg's extension registry."""
        self.indirect_calls: list[tuple[int, str]] = []
        """(offset, what) of calls or BUILDs on values computed while loading."""
        self.memo: dict[int, object] = {}
        """Memo values worth keeping (strings, references...); others are OPAQUE."""
        self.dense = 0
        self.extra: set[int] = set()
        """The memo's keys are ``range(dense) | extra``, exactly as in CPython's memo. The memo
        outlives one pickle: an unpickler reused for back-to-back pickles keeps it."""

    @property
    def found(self) -> int:
        """How many things were recorded so far (to tell whether a stretch found any)."""
        return (len(self.references) + len(self.dynamic_imports) + len(self.extensions)
                + len(self.indirect_calls))

    @property
    def offset(self) -> int:
        return self.reader.base + self.pos

    # -- references -----------------------------------------------------------------------

    def _reference(self, module: str, name: str, proto: int, offset: int,
                   opcode: str) -> Reference:
        module, name = resolve(module, name, proto)
        qual = f"{module}.{name}"
        ref = self.references.get(qual)
        if ref is None:
            ref = self.references[qual] = Reference(module, name, offset, opcode)
            if qual in JOBLIB_WRAPPERS:
                self.joblib = True
        return ref

    def _call(self, func: object, args: object, offset: int, what: str) -> object:
        if type(func) is Reference:
            func.called = True
            if func.qualname in TYPE_LOOKUPS:
                return self._type_lookup(args, offset)
            return Call(func, args)
        self.indirect_calls.append((offset, f"{what} calls a value computed while loading"))
        return OPAQUE

    def _mutates(self, ref: Reference, offset: int) -> None:
        """BUILD, APPEND(S), SETITEM(S) or ADDITEMS applied to an imported object itself:
        the unpickler calls its ``__setstate__``, ``append``, ``__setitem__`` or ``add``, or
        sets its attributes (a way to plant values for later dotted imports)."""
        self.indirect_calls.append((offset, f"the pickle modifies the imported {ref.qualname}"))

    def _type_lookup(self, args: object, offset: int) -> object:
        """dill's ``_load_type(name)``: the type it returns is what the pickle imports.

        Lower-case names are the builtin types (``bytearray``), the others the ``types``
        module's (``CodeType``); a name that is not a constant is a dynamic import.
        """
        if type(args) is tuple and len(args) == 1 and type(args[0]) is str:
            name = args[0]
            return self._reference("builtins" if name.islower() else "types", name, 3, offset,
                                   "REDUCE")
        self.dynamic_imports.append(offset)
        return OPAQUE

    # -- the opcode loop ------------------------------------------------------------------

    def run(self) -> None:
        """Read one pickle (up to and including STOP) from the current position."""
        reader = self.reader
        buf = reader.buf
        pos = self.pos
        end = len(buf)
        stack: list[object] = []
        push = stack.append
        marks: list[int] = []
        fence = 0
        memo = self.memo
        dense = self.dense
        extra = self.extra
        proto = 0
        tracking = self.joblib
        max_ops = self.limits.max_pickle_ops
        # Limits are checked every 256 opcodes (a stack can overshoot by that much), or at
        # every opcode when the opcode limit itself is small (sniffing).
        check = 255 if max_ops > 1 << 16 else 0
        max_depth = self.limits.max_stack_depth
        ops = self.ops
        at = 0

        def underflow() -> Malformed:
            return Malformed(f"stack underflow at opcode 0x{buf[at]:02x}", reader.base + at)

        try:
            while True:
                if end - pos < 9 and not reader.eof:
                    buf = reader.fill(pos, 9)
                    pos = 0
                    end = len(buf)
                if pos >= end:
                    raise Truncated("the stream ends before STOP", reader.base + pos)
                at = pos
                op = buf[pos]
                pos += 1
                ops += 1
                if not ops & check:
                    if ops > max_ops:
                        raise LimitReached(f"more than {max_ops} opcodes", reader.base + at)
                    if len(stack) > max_depth:
                        raise LimitReached(f"stack deeper than {max_depth}", reader.base + at)

                if op == 0x94:  # MEMOIZE
                    if len(stack) <= fence:
                        raise underflow()
                    v = stack[-1]
                    if not extra:
                        if v is not OPAQUE:
                            memo[dense] = v
                        dense += 1
                    else:
                        idx = dense + len(extra)
                        dense = _memo_add(idx, dense, extra)
                        _memo_set(memo, idx, v)
                elif op == 0x8C or op == 0x58:  # SHORT_BINUNICODE, BINUNICODE
                    if op == 0x8C:
                        if pos >= end:
                            raise Truncated("SHORT_BINUNICODE length", reader.base + at)
                        n = buf[pos]
                        pos += 1
                    else:
                        if pos + 4 > end:
                            raise Truncated("BINUNICODE length", reader.base + at)
                        n = unpack_from("<I", buf, pos)[0]
                        pos += 4
                    if pos + n <= end and n <= KEEP:
                        push(buf[pos:pos + n].decode("utf-8", "surrogatepass"))
                        pos += n
                    else:
                        if n <= KEEP:
                            data, buf, pos = reader.read(pos, n, "string")
                            push(data.decode("utf-8", "surrogatepass"))
                        else:
                            buf, pos = reader.skip(pos, n, "string")
                            push(OPAQUE)
                        end = len(buf)
                elif op == 0x4B:  # BININT1
                    if pos >= end:
                        raise Truncated("BININT1 argument", reader.base + at)
                    push(buf[pos])
                    pos += 1
                elif op == 0x4A:  # BININT
                    if pos + 4 > end:
                        raise Truncated("BININT argument", reader.base + at)
                    push(unpack_from("<i", buf, pos)[0])
                    pos += 4
                elif op == 0x4D:  # BININT2
                    if pos + 2 > end:
                        raise Truncated("BININT2 argument", reader.base + at)
                    push(buf[pos] | buf[pos + 1] << 8)
                    pos += 2
                elif op == 0x47:  # BINFLOAT
                    if pos + 8 > end:
                        raise Truncated("BINFLOAT argument", reader.base + at)
                    pos += 8
                    push(OPAQUE)
                elif op == 0x71 or op == 0x68 or op == 0x72 or op == 0x6A:
                    # BINPUT, BINGET (1-byte index), LONG_BINPUT, LONG_BINGET (4-byte index)
                    if op == 0x71 or op == 0x68:
                        if pos >= end:
                            raise Truncated("memo index", reader.base + at)
                        idx = buf[pos]
                        pos += 1
                    else:
                        if pos + 4 > end:
                            raise Truncated("memo index", reader.base + at)
                        idx = unpack_from("<I", buf, pos)[0]
                        pos += 4
                    if op == 0x68 or op == 0x6A:
                        if idx >= dense and idx not in extra:
                            raise Malformed(f"memo key {idx} not found", reader.base + at)
                        push(memo.get(idx, OPAQUE))
                    else:
                        if len(stack) <= fence:
                            raise underflow()
                        if idx == dense and not extra:  # the usual, sequential case
                            dense += 1
                            if stack[-1] is not OPAQUE:
                                memo[idx] = stack[-1]
                        else:
                            dense = _memo_add(idx, dense, extra)
                            _memo_set(memo, idx, stack[-1])
                elif op == 0x28:  # MARK
                    if len(marks) >= max_depth:
                        raise LimitReached(f"more than {max_depth} nested MARKs",
                                           reader.base + at)
                    fence = len(stack)
                    marks.append(fence)
                elif op == 0x75 or op == 0x65 or op == 0x90:  # SETITEMS, APPENDS, ADDITEMS
                    if not marks:
                        raise Malformed("MARK not found", reader.base + at)
                    mark = marks.pop()
                    fence = marks[-1] if marks else 0
                    if mark <= fence:
                        raise underflow()
                    target = stack[mark - 1]
                    if type(target) is Reference:
                        self._mutates(target, reader.base + at)
                    elif type(target) is dict and op == 0x75:
                        items = stack[mark:]
                        if len(items) % 2:
                            raise Malformed("odd number of items for SETITEMS", reader.base + at)
                        for i in range(0, len(items), 2):
                            if isinstance(items[i], (str, int)):
                                target[items[i]] = items[i + 1]
                    del stack[mark:]
                elif op == 0x7D:  # EMPTY_DICT
                    push({} if tracking else OPAQUE)
                elif op in _LINE_VALUES:  # INT, LONG, FLOAT, STRING, UNICODE, PERSID, GET, PUT
                    nl = buf.find(b"\n", pos, pos + KEEP + 1)
                    if nl >= 0:
                        line: bytes | None = buf[pos:nl]
                        pos = nl + 1
                    else:
                        line, buf, pos = reader.readline(pos, KEEP, _LINE_VALUES[op])
                        end = len(buf)
                    if op == 0x70 or op == 0x67:  # PUT, GET
                        if line is None:
                            raise Malformed("memo index too long", reader.base + at)
                        idx = int(line)
                        if idx < 0:
                            raise Malformed("negative memo index", reader.base + at)
                        if op == 0x67:
                            if idx >= dense and idx not in extra:
                                raise Malformed(f"memo key {idx} not found", reader.base + at)
                            push(memo.get(idx, OPAQUE))
                        else:
                            if len(stack) <= fence:
                                raise underflow()
                            if idx == dense and not extra:  # the usual, sequential case
                                dense += 1
                                if stack[-1] is not OPAQUE:
                                    memo[idx] = stack[-1]
                            else:
                                dense = _memo_add(idx, dense, extra)
                                _memo_set(memo, idx, stack[-1])
                    elif line is None or op == 0x50:  # too long to matter; PERSID
                        push(OPAQUE)
                    elif op == 0x56:  # UNICODE
                        push(line.decode("raw-unicode-escape"))
                    elif op == 0x49:  # INT, where 00 and 01 are False and True
                        push(line == b"01" if line in (b"00", b"01") else _int(line))
                    elif op == 0x46:  # FLOAT
                        float(line)
                        push(OPAQUE)
                    else:  # LONG, STRING
                        push(_line_value(op, line))
                elif op == 0x61:  # APPEND
                    if len(stack) - 1 <= fence:
                        raise underflow()
                    stack.pop()
                    if type(stack[-1]) is Reference:
                        self._mutates(stack[-1], reader.base + at)
                elif op == 0x73:  # SETITEM
                    if len(stack) - 2 <= fence:
                        raise underflow()
                    v = stack.pop()
                    k = stack.pop()
                    target = stack[-1]
                    if type(target) is Reference:
                        self._mutates(target, reader.base + at)
                    elif type(target) is dict and isinstance(k, (str, int)):
                        target[k] = v
                elif op in _FROM_MARK:  # TUPLE, LIST, DICT, FROZENSET, POP_MARK
                    if not marks:
                        raise Malformed("MARK not found", reader.base + at)
                    mark = marks.pop()
                    fence = marks[-1] if marks else 0
                    items = stack[mark:]
                    del stack[mark:]
                    if op == 0x74:
                        push(tuple(items))
                    elif op == 0x64:
                        if len(items) % 2:
                            raise Malformed("odd number of items for DICT", reader.base + at)
                        if tracking:
                            push({items[i]: items[i + 1] for i in range(0, len(items), 2)
                                  if isinstance(items[i], (str, int))})
                        else:
                            push(OPAQUE)
                    elif op != 0x31:
                        push(OPAQUE)
                elif op == 0x5D:  # EMPTY_LIST
                    push(OPAQUE)
                elif op == 0x85 or op == 0x86 or op == 0x87:  # TUPLE1, TUPLE2, TUPLE3
                    n = op - 0x84
                    if len(stack) - n < fence:
                        raise underflow()
                    t = tuple(stack[-n:])
                    del stack[-n:]
                    push(t)
                elif op == 0x4E:  # NONE
                    push(None)
                elif op == 0x88 or op == 0x89:  # NEWTRUE, NEWFALSE
                    push(op == 0x88)
                elif op == 0x29:  # EMPTY_TUPLE
                    push(())
                elif op == 0x52:  # REDUCE
                    if len(stack) - 2 < fence:
                        raise underflow()
                    args = stack.pop()
                    stack[-1] = self._call(stack[-1], args, reader.base + at, "REDUCE")
                elif op == 0x62:  # BUILD
                    if len(stack) - 2 < fence:
                        raise underflow()
                    state = stack.pop()
                    obj = stack[-1]
                    if type(obj) is Call:
                        obj.state = state
                        if (tracking and obj.ref.qualname in JOBLIB_WRAPPERS
                                and type(state) is dict):
                            self.pos = pos
                            self.ops = ops
                            self._joblib_array(state, reader.base + at)
                            buf = reader.buf
                            pos = self.pos
                            ops = self.ops
                            end = len(buf)
                    elif type(obj) is Reference:
                        self._mutates(obj, reader.base + at)
                elif op == 0x95:  # FRAME
                    if pos + 8 > end:
                        raise Truncated("FRAME length", reader.base + at)
                    n = unpack_from("<Q", buf, pos)[0]
                    pos += 8
                    left = reader.remaining(pos)
                    if left is not None and n > left:
                        raise Truncated(f"FRAME claims {n} bytes but only {left} remain",
                                        reader.base + at)
                elif op == 0x93:  # STACK_GLOBAL
                    if len(stack) - 2 < fence:
                        raise underflow()
                    name = stack.pop()
                    module = stack[-1]
                    if type(module) is str and type(name) is str:
                        stack[-1] = self._reference(module, name, proto, reader.base + at,
                                                    "STACK_GLOBAL")
                        tracking = self.joblib
                    else:
                        self.dynamic_imports.append(reader.base + at)
                        stack[-1] = OPAQUE
                elif op == 0x63 or op == 0x69:  # GLOBAL, INST
                    mline, buf, pos = reader.readline(pos, KEEP, "module name")
                    nline, buf, pos = reader.readline(pos, KEEP, "global name")
                    end = len(buf)
                    if mline is None or nline is None:
                        self.dynamic_imports.append(reader.base + at)
                        ref: object = OPAQUE
                    else:
                        ref = self._reference(mline.decode("utf-8", "surrogatepass"),
                                              nline.decode("utf-8", "surrogatepass"), proto,
                                              reader.base + at,
                                              "GLOBAL" if op == 0x63 else "INST")
                        tracking = self.joblib
                    if op == 0x63:
                        push(ref)
                    else:
                        if not marks:
                            raise Malformed("MARK not found", reader.base + at)
                        mark = marks.pop()
                        fence = marks[-1] if marks else 0
                        args = tuple(stack[mark:])
                        del stack[mark:]
                        push(self._call(ref, args, reader.base + at, "INST"))
                elif op == 0x81:  # NEWOBJ
                    if len(stack) - 2 < fence:
                        raise underflow()
                    args = stack.pop()
                    stack[-1] = self._call(stack[-1], args, reader.base + at, "NEWOBJ")
                elif op == 0x92:  # NEWOBJ_EX
                    if len(stack) - 3 < fence:
                        raise underflow()
                    stack.pop()
                    args = stack.pop()
                    stack[-1] = self._call(stack[-1], args, reader.base + at, "NEWOBJ_EX")
                elif op == 0x2E:  # STOP
                    if len(stack) <= fence:
                        raise underflow()
                    self.pickles += 1
                    break
                elif op == 0x80:  # PROTO
                    if pos >= end:
                        raise Truncated("PROTO argument", reader.base + at)
                    proto = buf[pos]
                    pos += 1
                    if proto > 5:
                        raise Malformed(f"unsupported pickle protocol {proto}",
                                        reader.base + at)
                elif op == 0x6F:  # OBJ
                    if not marks:
                        raise Malformed("MARK not found", reader.base + at)
                    mark = marks.pop()
                    fence = marks[-1] if marks else 0
                    if len(stack) <= mark:
                        raise underflow()
                    cls = stack[mark]
                    args = tuple(stack[mark + 1:])
                    del stack[mark:]
                    push(self._call(cls, args, reader.base + at, "OBJ"))
                elif op == 0x30:  # POP: a MARK on top is popped instead, as CPython does
                    if marks and marks[-1] == len(stack):
                        marks.pop()
                        fence = marks[-1] if marks else 0
                    elif len(stack) <= fence:
                        raise underflow()
                    else:
                        stack.pop()
                elif op == 0x32:  # DUP
                    if len(stack) <= fence:
                        raise underflow()
                    push(stack[-1])
                elif op in _SIZED_BYTES:  # BINBYTES*, BINSTRING*, BYTEARRAY8, BINUNICODE8
                    width, what = _SIZED_BYTES[op]
                    if pos + width > end:
                        raise Truncated(f"{what} length", reader.base + at)
                    n = int.from_bytes(buf[pos:pos + width], "little",
                                       signed=op == 0x54)
                    pos += width
                    if n < 0:
                        raise Malformed(f"{what} has a negative length", reader.base + at)
                    if n <= KEEP and op in (0x54, 0x55, 0x8D):
                        data, buf, pos = reader.read(pos, n, what)
                        push(data.decode("utf-8", "surrogatepass") if op == 0x8D
                                     else data.decode("latin-1"))
                    else:
                        buf, pos = reader.skip(pos, n, what)
                        push(OPAQUE)
                    end = len(buf)
                elif op == 0x8A or op == 0x8B:  # LONG1, LONG4
                    width = 1 if op == 0x8A else 4
                    if pos + width > end:
                        raise Truncated("LONG length", reader.base + at)
                    n = int.from_bytes(buf[pos:pos + width], "little", signed=True)
                    pos += width
                    if n < 0:
                        raise Malformed("LONG has a negative length", reader.base + at)
                    if n <= 16:
                        data, buf, pos = reader.read(pos, n, "LONG")
                        push(int.from_bytes(data, "little", signed=True))
                    else:
                        buf, pos = reader.skip(pos, n, "LONG")
                        push(OPAQUE)
                    end = len(buf)
                elif op == 0x51:  # BINPERSID
                    if len(stack) <= fence:
                        raise underflow()
                    stack[-1] = OPAQUE
                elif op == 0x82 or op == 0x83 or op == 0x84:  # EXT1, EXT2, EXT4
                    width = {0x82: 1, 0x83: 2, 0x84: 4}[op]
                    if pos + width > end:
                        raise Truncated("EXT code", reader.base + at)
                    code = int.from_bytes(buf[pos:pos + width], "little")
                    pos += width
                    self.extensions.append((reader.base + at, code))
                    push(OPAQUE)
                elif op == 0x8F or op == 0x97:  # EMPTY_SET, NEXT_BUFFER
                    push(OPAQUE)
                elif op == 0x98:  # READONLY_BUFFER
                    if len(stack) <= fence:
                        raise underflow()
                else:
                    raise Malformed(f"unknown opcode 0x{op:02x}", reader.base + at)
        except Truncated as exc:
            raise Malformed(f"truncated: {exc}", exc.offset, truncated=True) from None
        except UnicodeDecodeError:
            raise Malformed("a string that does not decode", reader.base + at) from None
        except ValueError as exc:  # a text argument that int(), float() or a codec refuses
            raise Malformed(f"bad argument: {exc}", reader.base + at) from None
        finally:
            self.ops = ops
            self.pos = pos
            self.dense = dense

    # -- joblib -----------------------------------------------------------------------------

    def _joblib_array(self, state: dict[object, object], offset: int) -> None:
        """Skip (or, for object arrays, analyse) the array joblib wrote after this BUILD."""
        layout = _array_layout(state)
        if layout is None:
            raise Malformed("cannot work out the size of the joblib array that follows "
                            "(unrecognised NumpyArrayWrapper state)", offset)
        count, itemsize, padded = layout
        reader = self.reader
        self.arrays += 1
        if itemsize == 0:  # object dtype: a nested pickle that must be analysed as well
            nested = Machine(reader, self.limits)
            nested.pos = self.pos
            nested.ops = self.ops
            nested.references = self.references
            nested.dynamic_imports = self.dynamic_imports
            nested.extensions = self.extensions
            nested.indirect_calls = self.indirect_calls
            nested.run()
            self.pos = nested.pos
            self.ops = nested.ops
            return
        pos = self.pos
        try:
            if padded:
                data, _, pos = reader.read(pos, 1, "joblib alignment padding")
                _, pos = reader.skip(pos, data[0], "joblib alignment padding")
            _, pos = reader.skip(pos, count * itemsize, "joblib array")
        except Truncated as exc:
            raise Malformed(f"truncated: {exc}", exc.offset, truncated=True) from None
        self.pos = pos


_FROM_MARK: Final = frozenset({0x74, 0x6C, 0x64, 0x91, 0x31})
_SIZED_BYTES: Final = {
    0x42: (4, "BINBYTES"), 0x43: (1, "SHORT_BINBYTES"), 0x8E: (8, "BINBYTES8"),
    0x96: (8, "BYTEARRAY8"), 0x54: (4, "BINSTRING"), 0x55: (1, "SHORT_BINSTRING"),
    0x8D: (8, "BINUNICODE8"),
}
_LINE_VALUES: Final = {
    0x49: "INT", 0x4C: "LONG", 0x46: "FLOAT", 0x53: "STRING", 0x56: "UNICODE",
    0x50: "PERSID", 0x67: "GET", 0x70: "PUT",
}


def _memo_add(idx: int, dense: int, extra: set[int]) -> int:
    """Add key ``idx`` to the memo key set ``range(dense) | extra``; return the new dense."""
    if idx == dense:
        dense += 1
        while dense in extra:
            extra.remove(dense)
            dense += 1
    elif idx > dense:
        extra.add(idx)
    return dense


def _memo_set(memo: dict[int, object], idx: int, value: object) -> None:
    if value is OPAQUE:
        memo.pop(idx, None)
    else:
        memo[idx] = value


def _int(text: bytes) -> int:
    """A protocol-0 INT or LONG argument: CPython reads it with base 0 (``0x10``, and in C
    ``010`` as octal); accept what either reading accepts, so parsing never stops early."""
    try:
        return int(text, 0)
    except ValueError:
        return int(text, 8 if text.lstrip(b"+- ").startswith(b"0") else 10)


def _line_value(op: int, line: bytes) -> object:
    """The value of a protocol-0 LONG or STRING argument (ValueError when malformed)."""
    if op == 0x4C:  # LONG
        return _int(line[:-1] if line.endswith(b"L") else line)
    if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
        raise ValueError("STRING argument is not quoted")
    return codecs.escape_decode(line[1:-1])[0].decode("latin-1")


def _array_layout(state: dict[object, object]) -> tuple[int, int, bool] | None:
    """(element count, item size or 0 for object arrays, padded) of a joblib array."""
    shape = state.get("shape")
    if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape):
        return None
    itemsize = _itemsize(state.get("dtype"))
    if itemsize is None:
        return None
    padded = state.get("numpy_array_alignment_bytes") is not None
    return math.prod(shape), itemsize, padded


def _itemsize(dtype: object) -> int | None:
    """Bytes per element of a pickled ``numpy.dtype``; 0 for objects; None when unknown.

    numpy pickles a dtype as ``numpy.dtype(descr, False, True)`` plus the state
    ``(version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])``.
    As numpy's ``__setstate__`` does, the size of fixed types (``f8``, ``i4``, ``M8``...)
    comes from ``descr`` and that of flexible ones (``S``, ``U``, ``V``: strings, records,
    subarrays) from ``elsize``; a record holds objects when ``flags`` has the
    NPY_ITEM_REFCOUNT bit.
    """
    if type(dtype) is not Call or dtype.ref.qualname not in _DTYPE_NAMES:
        return None
    args, state = dtype.args, dtype.state
    if type(args) is not tuple or not args or type(args[0]) is not str:
        return None
    kind, digits = args[0][:1], args[0][1:]
    if kind == "O":
        return 0
    if kind in ("S", "U", "V"):
        if type(state) is not tuple or len(state) < 8:
            return None
        elsize, flags = state[5], state[7]
        if type(elsize) is not int or type(flags) is not int or elsize < 0:
            return None
        return 0 if kind == "V" and flags & 1 else elsize
    return int(digits) if digits.isdigit() and kind in _FIXED_KINDS else None


_DTYPE_NAMES: Final = frozenset({"numpy.dtype", "numpy.core.multiarray.dtype",
                                 "numpy._core.multiarray.dtype"})
_FIXED_KINDS: Final = frozenset("biufcmM")
