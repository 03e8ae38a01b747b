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

Each opcode has one handler (:data:`DISPATCH`, a table as in CPython's ``pickle.py``);
:meth:`Machine.run` runs the fast path of the few opcodes that make up most real pickles
inline and hands everything else to the table.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import math
import re
import warnings
from collections.abc import Callable
from struct import unpack_from
from typing import Final

from mlward._internal.scanners.interface import Limits
from mlward._internal.scanners.pickle.reader import Reader, Truncated

KEEP: Final = 1024
"""Longest string kept as a value; longer strings become OPAQUE (a STACK_GLOBAL over one is
reported as an unresolved import, so skipping them can only over-report)."""

TYPE_LOOKUPS: Final = frozenset({"dill._dill._load_type", "dill.dill._load_type"})
"""Functions returning a type by name: calls with a constant name resolve to that type."""

FOLD_AT: Final = 1 << 14
"""Items a MARK frame holds one by one before its oldest are counted (see :class:`Run`)."""
LIVE: Final = 2048
"""Items kept one by one at the top of a folded frame: more than the opcodes between two
limit checks (256, two items each at most) can take."""
MEMO_KEEP: Final = 1 << 20
"""Memo values kept (strings, references, small tuples); beyond, new ones are forgotten."""

NESTED_LOADERS: Final = {
    **dict.fromkeys(("pickle.loads", "pickle.load", "pickle._loads", "pickle._load",
                     "_pickle.loads", "_pickle.load", "dill.loads", "dill.load",
                     "dill._dill.loads", "dill._dill.load", "cloudpickle.loads",
                     "cloudpickle.load", "numpy.loads", "numpy.core.numeric.loads",
                     "pandas.read_pickle"), "pickle"),
    **dict.fromkeys(("torch.load", "torch.serialization.load", "torch.storage._load_from_bytes",
                     "joblib.load", "joblib.numpy_pickle.load", "numpy.load"), "content"),
}
"""Deserializers a pickle can hand bytes it holds, and how those bytes are read: as a
pickle, or as whatever their content is (a torch checkpoint, a joblib or numpy file)."""
ENCODERS: Final = frozenset({"_codecs.encode", "codecs.encode"})
"""How protocols 0 to 2 write bytes: ``_codecs.encode(text, "latin1")``."""
_BYTES_IO: Final = frozenset({"io.BytesIO", "_io.BytesIO"})

MAX_TWINS: Final = 4
"""Readings followed besides the first: memo reused or not, frames read two ways, joblib's
arrays read as opcodes."""

JOBLIB_WRAPPERS: Final = frozenset({
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
})


class Opaque:
    """A value the machine does not track."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OPAQUE"

    def __deepcopy__(self, memo: object) -> Opaque:
        return self


OPAQUE: Final = Opaque()
FORGOTTEN: Final = Opaque()
"""A memo value not kept (the memo held :data:`MEMO_KEEP` values already): unknown, and a
limit when it is imported or called."""


class Run:
    """The oldest items of a MARK frame too long to keep one by one, as a count.

    A frame over :data:`FOLD_AT` items keeps its last :data:`LIVE` and counts the rest in a
    Run at its start. The opcodes that take a frame whole (a long list, tuple or dict is one)
    take the Run with it; opcodes that take items one at a time reach it only after
    :data:`LIVE` others, and then the Run is unfolded into that many OPAQUE items: a stack
    consumed that way from that deep is nesting, measured against ``max_stack_depth``.
    """

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count


class _FullMemo(dict[int, object]):
    """The memo once it holds :data:`MEMO_KEEP` values: further values are forgotten."""

    def __setitem__(self, key: int, value: object) -> None:
        pass

    def get(self, key: int, default: object = None) -> object:
        return dict.get(self, key, FORGOTTEN)


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

    def __deepcopy__(self, memo: object) -> Reference:
        return self  # one record per name, whichever reading reaches it


class Blob:
    """Bytes held in the stream (kept as where they are, never read while loading): a bytes
    constant (``codec`` None), a long string (its encoding in the stream), or a string then
    encoded to bytes (``"utf-8>latin-1"``: protocols 0 to 2 write bytes that way)."""

    __slots__ = ("codec", "length", "offset")

    def __init__(self, offset: int, length: int, codec: str | None) -> None:
        self.offset = offset
        self.length = length
        self.codec = codec


class Call:
    """What calling a reference returns; BUILD records its state."""

    __slots__ = ("args", "ref", "state")

    def __init__(self, ref: Reference, args: object) -> None:
        self.ref = ref
        self.args = args
        self.state: object = None


class Malformed(Exception):
    """The stream breaks the pickle format where CPython's unpickler would fail too."""

    def __init__(self, message: str, offset: int, *, truncated: bool = False,
                 between: bool = False) -> None:
        super().__init__(message)
        self.offset = offset
        self.truncated = truncated
        """The stream ended early (rather than holding something invalid)."""
        self.between = between
        """It ended between two opcodes (every opcode before it ran to its end)."""


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


class _Stop(Exception):
    """Raised by the STOP handler to end :meth:`Machine.run`."""


Handler = Callable[["Machine", int], int]
"""An opcode's handler. Called with the index in ``reader.buf`` just after the opcode byte, it
returns the index just after the opcode's argument (in the reader's window, which it may have
moved). The loop guarantees 8 bytes after the opcode in the window unless the stream ends."""


class Machine:
    """One stream's analysis; :meth:`run` reads one pickle up to and including its STOP.

    The stack is kept as CPython's ``pickle.py`` keeps it: ``stack`` holds the innermost MARK
    frame's items, ``metastack`` the enclosing frames, so an opcode that reaches below its
    frame finds the list empty (a stack underflow) without any index arithmetic.
    """

    __slots__ = ("arrays", "at", "dense", "deserialized", "diverged", "dynamic_imports",
                 "entry", "extensions", "extra", "forks", "frames", "indirect_calls", "joblib",
                 "kept", "kept_twin", "limits", "memo", "metastack", "ops", "pickles", "plain",
                 "pos",
                 "proto", "reader", "references", "replay", "stack", "watch")

    def __init__(self, reader: Reader, limits: Limits, *, joblib: bool = False) -> None:
        self.reader = reader
        self.limits = limits
        self.joblib = joblib
        self.pos = 0
        """Index into ``reader.buf`` of the next opcode."""
        self.ops = 0
        self.pickles = 0
        self.arrays = 0
        self._new_records()
        self.memo: dict[int, object] = {}
        """Memo values worth keeping (strings, references...); others are OPAQUE."""
        self.dense = 0
        self.extra: set[int] = set()
        """The memo's keys are ``range(dense) | extra``, exactly as in CPython's memo. The memo
        outlives one pickle: an unpickler reused for back-to-back pickles keeps it."""
        self.stack: list[object] = []
        self.metastack: list[list[object]] = []
        self.proto = 0
        self.at = 0
        """Stream offset of the opcode being handled (set before each handler runs)."""
        # Readings. CPython's loaders differ where frames disagree with their contents (see
        # reader.py) and in whether back-to-back pickles share a memo (one Unpickler reused,
        # or one per pickle). This machine is one reading; where another would differ it
        # leaves a twin in ``forks`` (a copy of its state, to run from ``entry``).
        self.forks: list[Machine] = []
        self.kept = False
        """Back-to-back pickles share the memo (else each starts with an empty one)."""
        self.plain = False
        """Read joblib's arrays as ``pickle.load`` does: as opcodes (joblib skips them)."""
        self.kept_twin = False
        self.diverged = False
        """This reading has taken its one frame disagreement (a second is a limit)."""
        self.replay = False
        """The first frame crossing is the one this twin was made for."""
        self.watch: Callable[[int], None] | None = None
        """Called with each opcode before it runs, when the opcode limit is small (a sniff
        watching for what only pickles do; it may stop the run with LimitReached)."""
        self.entry: tuple[int, int | None, bool, str] = (0, None, False, "pickle")
        """A twin's start: stream offset, the end of the frame it starts in, whether it
        reads frames as a file without ``peek``, and how it begins: mid-"op" (that opcode
        again), at a "memo" boundary (the next pickle's memo to settle) or a "pickle"."""

    def _new_records(self) -> None:
        """Empty records of what the stream does (shared by every machine reading it)."""
        self.references: dict[str, Reference] = {}
        self.dynamic_imports: list[int] = []
        """Offsets of STACK_GLOBALs whose operands are not known strings."""
        self.extensions: list[tuple[int, int]] = []
        """(offset, code) of EXT opcodes: names from copyreg's extension registry."""
        self.indirect_calls: list[tuple[int, str]] = []
        """(offset, what) of calls or BUILDs on values computed while loading."""
        self.deserialized: list[tuple[str, int, bytes | Blob]] = []
        """(loader, offset, data): the bytes the pickle gives a deserializer to load."""
        self.frames: list[tuple[int, str]] = []
        """(offset, what) of frames whose length disagrees with the opcodes inside."""

    def _share_records(self, other: Machine) -> None:
        """Record into ``other``'s records: a twin reading, or a pickle nested in an array."""
        self.references = other.references
        self.dynamic_imports = other.dynamic_imports
        self.extensions = other.extensions
        self.indirect_calls = other.indirect_calls
        self.deserialized = other.deserialized
        self.frames = other.frames

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
            if qual in JOBLIB_WRAPPERS and not self.plain:
                self.joblib = True
        return ref

    def _call(self, func: object, args: object, offset: int, what: str) -> object:
        if type(func) is Reference:
            func.called = True
            qual = func.qualname
            if qual in TYPE_LOOKUPS:
                return self._type_lookup(args, offset)
            if qual in ENCODERS:
                return _encoded(args)
            if qual in NESTED_LOADERS:
                data = _loader_input(args)
                if data is not None:
                    self.deserialized.append((qual, offset, data))
            return Call(func, args)
        if func is FORGOTTEN:
            raise _forgotten(what, offset)
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
        self.stack = []
        self.metastack = []
        self.proto = 0
        self.resume()

    def resume(self) -> None:
        """Read on to the current pickle's STOP."""
        reader = self.reader
        buf = reader.buf
        pos = self.pos
        end = reader.end
        stack = self.stack
        push = stack.append
        metastack = self.metastack
        memo = self.memo
        extra = self.extra
        tracking = self.joblib
        table = _TABLE
        max_ops = self.limits.max_pickle_ops
        # Limits are checked every 256 opcodes (a stack can overshoot by that much), or at
        # every opcode when the opcode limit itself is small (sniffing).
        check = 255 if max_ops > 1 << 16 else 0
        max_depth = self.limits.max_stack_depth
        ops = self.ops
        watch = self.watch
        at = pos
        in_table = False  # whether the error offset is self.at (the window may have moved)
        try:
            while True:
                if end - pos < 9:  # near the end of the window, or of a frame
                    frame = reader.frame_end
                    if (len(buf) - pos < 9 and not reader.eof) or (
                            frame is not None and reader.base + pos >= frame):
                        pos = reader.ahead(pos)
                        buf = reader.buf
                        end = reader.end
                    if pos >= end:
                        raise Truncated("the stream ends before STOP", reader.base + pos)
                at = pos
                op = buf[pos]
                pos += 1
                ops += 1
                if not ops & check:
                    if watch is not None:
                        watch(op)
                    if ops > max_ops:
                        raise LimitReached(f"more than {max_ops} opcodes", reader.base + at)
                    if not ops & 255:  # every 256 opcodes, also when sniffing
                        if len(stack) > FOLD_AT:
                            _fold(stack)
                        elif stack and len(stack) <= LIVE and type(head := stack[0]) is Run:
                            self._unfold(head, reader.base + at)
                        if len(memo) >= MEMO_KEEP and type(memo) is dict:
                            memo = self.memo = _FullMemo(memo)
                # The fast paths of the commonest opcodes' handlers, for the cases they cover
                # (memo stores in sequence: _memo_put's first case; no joblib dicts to follow;
                # short strings); everything else goes to the table. Kept inline because a
                # call per opcode costs a quarter of the time on pickles of many small
                # objects. The window holds 8 bytes after the opcode unless the stream ends.
                if op == 0x94 and stack and not extra:  # MEMOIZE
                    v = stack[-1]
                    if v is not OPAQUE:
                        memo[self.dense] = v
                    self.dense += 1
                elif op == 0x68 and pos < end and buf[pos] < self.dense:  # BINGET
                    push(memo.get(buf[pos], OPAQUE))
                    pos += 1
                elif op == 0x4B and pos < end:  # BININT1
                    push(buf[pos])
                    pos += 1
                elif op == 0x28 and len(metastack) < max_depth:  # MARK
                    metastack.append(stack)
                    self.stack = stack = []
                    push = stack.append
                elif (op == 0x75 or op == 0x65) and metastack and metastack[-1] \
                        and not tracking:  # SETITEMS, APPENDS
                    self.stack = stack = metastack.pop()
                    push = stack.append
                    target = stack[-1]
                    if type(target) is Reference:
                        self._mutates(target, reader.base + at)
                elif op == 0x7D and not tracking:  # EMPTY_DICT
                    push(OPAQUE)
                elif op == 0x8C and pos < end and pos + buf[pos] < end:  # SHORT_BINUNICODE
                    n = pos + 1 + buf[pos]
                    push(buf[pos + 1:n].decode("utf-8", "surrogatepass"))
                    pos = n
                elif op == 0x71 and stack and not extra and pos < end \
                        and buf[pos] == self.dense:  # BINPUT
                    v = stack[-1]
                    if v is not OPAQUE:
                        memo[buf[pos]] = v
                    self.dense += 1
                    pos += 1
                elif op == 0x72 and stack and not extra and pos + 4 <= end \
                        and unpack_from("<I", buf, pos)[0] == self.dense:  # LONG_BINPUT
                    v = stack[-1]
                    if v is not OPAQUE:
                        memo[self.dense] = v
                    self.dense += 1
                    pos += 4
                elif op == 0x4D and pos + 2 <= end:  # BININT2
                    push(buf[pos] | buf[pos + 1] << 8)
                    pos += 2
                elif op == 0x4A and pos + 4 <= end:  # BININT
                    push(unpack_from("<i", buf, pos)[0])
                    pos += 4
                elif op == 0x47 and pos + 8 <= end:  # BINFLOAT
                    push(OPAQUE)
                    pos += 8
                elif op == 0x5D:  # EMPTY_LIST
                    push(OPAQUE)
                elif op == 0x61 and len(stack) > 1 \
                        and type(stack[-2]) is not Reference:  # APPEND
                    stack.pop()
                elif op == 0x58 and pos + 4 <= end \
                        and (n := unpack_from("<I", buf, pos)[0]) <= KEEP \
                        and pos + 4 + n <= end:  # BINUNICODE
                    push(buf[pos + 4:pos + 4 + n].decode("utf-8", "surrogatepass"))
                    pos += 4 + n
                elif op == 0x49 and pos < end and buf[pos] != 0x30 \
                        and pos < (nl := buf.find(b"\n", pos, pos + 20)) <= end \
                        and (line := buf[pos:nl]).isdigit():  # INT, plain decimal
                    push(int(line))
                    pos = nl + 1
                elif op == 0x70 and stack and not extra \
                        and pos < (nl := buf.find(b"\n", pos, pos + 20)) <= end \
                        and (line := buf[pos:nl]).isdigit() \
                        and int(line) == self.dense:  # PUT, the next key
                    v = stack[-1]
                    if v is not OPAQUE:
                        memo[self.dense] = v
                    self.dense += 1
                    pos = nl + 1
                else:
                    self.ops = ops
                    self.at = reader.base + at
                    in_table = True
                    pos = table[op](self, pos)
                    in_table = False
                    ops = self.ops
                    buf = reader.buf
                    end = reader.end
                    if self.stack is not stack:
                        stack = self.stack
                        push = stack.append
                    tracking = self.joblib
        except _Stop:
            self.pickles += 1
            pos = self.pos
        except Truncated as exc:
            frame = reader.frame_end
            if frame is not None and reader.size is None and reader.eof:  # found out only now
                self.frames.append((exc.offset, "a FRAME claims more bytes than remain"))
            raise Malformed(f"truncated: {exc}", exc.offset, truncated=True,
                            between=not in_table) from None
        except UnicodeDecodeError:
            raise Malformed("a string that does not decode",
                            self.at if in_table else reader.base + at) from None
        except ValueError as exc:  # a text argument that int(), float() or a codec refuses
            raise Malformed(f"bad argument: {exc}",
                            self.at if in_table else reader.base + at) from None
        finally:
            self.ops = ops
            self.pos = pos

    # -- readings -------------------------------------------------------------------------

    def _crossed(self) -> None:
        """The reader is about to run past the frame's end (in the opcode at ``self.at``):
        a file without ``peek`` would read after the frame instead."""
        if self.replay:  # the crossing this twin was made for
            self.replay = False
            return
        self._diverge("a read runs past the end of its FRAME", self.at, "op")

    def _diverge(self, what: str, offset: int, phase: str) -> None:
        """Record a frame disagreement and leave a twin that reads it as a file without
        ``peek`` does: this opcode again (``phase`` "op"), or the next pickle from the frame's
        end ("memo", at STOP). A second disagreement in one reading is a limit: the buffered
        files ``pickle.load`` reads may mix the two ways from frame to frame."""
        self.frames.append((offset, what))
        if self.diverged or self.reader.droptail:
            raise LimitReached(f"{what}, a second time: CPython's loaders may read it in more "
                               "ways than mlward follows", offset)
        self.diverged = True
        frame = self.reader.frame_end
        if phase == "op":
            self._twin(offset, frame, True, phase).replay = True
        elif frame is not None:
            self._twin(frame, None, True, phase)

    def _twin(self, offset: int, frame: int | None, droptail: bool, phase: str) -> Machine:
        """A copy of this reading's state, to run from stream ``offset`` (``frame``: where
        the frame it starts in ends); the records of what it finds are shared."""
        if len(self.forks) >= MAX_TWINS:
            raise LimitReached(f"more than {MAX_TWINS + 1} ways to read the stream", offset)
        twin = Machine(self.reader, self.limits, joblib=self.joblib)
        if phase == "op":  # mid-pickle: this reading goes on changing what it holds
            import copy  # only for the rare stream that CPython's loaders read in two ways

            twin.stack, twin.metastack, twin.memo, twin.extra = copy.deepcopy(
                (self.stack, self.metastack, self.memo, self.extra))
        else:  # between pickles: the stack is empty and this reading starts a new memo
            twin.memo, twin.extra = type(self.memo)(self.memo), set(self.extra)
        twin.dense, twin.proto, twin.ops, twin.pickles = (self.dense, self.proto, self.ops,
                                                          self.pickles)
        twin._share_records(self)
        twin.forks = self.forks
        twin.kept = self.kept
        twin.kept_twin = self.kept_twin
        twin.plain = self.plain
        twin.diverged = True
        twin.entry = (offset, frame, droptail, phase)
        self.forks.append(twin)
        return twin

    def _plain_twin(self, pos: int) -> None:
        """joblib reads the array bytes after a NumpyArrayWrapper's BUILD itself;
        ``pickle.load`` reads them as opcodes. A twin reads the file that way, with records
        of its own: random array bytes decode as stray opcodes, so what it finds counts only
        when it calls a well-formed name (see :func:`plain_findings`)."""
        twin = self._twin(self.reader.base + pos, self.reader.frame_end, self.reader.droptail,
                          "op")
        twin.joblib = False
        twin.plain = True
        twin._new_records()

    def start_next(self) -> None:
        """Between two pickles: where the next one starts, and with which memo.

        One Unpickler reused for the next pickle keeps its memo and its buffer (the rest of
        a frame that runs on past STOP); a new one per pickle starts empty, after the frame
        when it reads it as a file without ``peek`` does. This reading is the second kind
        unless ``kept``; a twin follows the first from the first boundary where they differ.
        """
        if self.kept:
            return
        reader = self.reader
        frame = reader.frame_end
        if frame is not None and reader.base + self.pos >= frame:
            frame = None  # used up
        if (frame is not None or self.dense or self.extra) and not self.kept_twin:
            self.kept_twin = True
            twin = self._twin(reader.base + self.pos, frame, reader.droptail, "pickle")
            twin.kept = True
            twin.diverged = self.diverged
        if frame is not None:
            if reader.droptail:
                _, self.pos = reader.skip(self.pos, frame - reader.base - self.pos, "a frame")
            else:
                self._diverge("a FRAME runs on past STOP", reader.base + self.pos, "memo")
        reader.frame_end = None
        self.memo = {}
        self.dense = 0
        self.extra = set()

    # -- shared steps ---------------------------------------------------------------------

    def _unfold(self, run: Run, offset: int) -> None:
        """Opcodes have taken the top frame's items one at a time down to its Run: give them
        the next :data:`LIVE` (OPAQUE), unless that is nesting deeper than the limit."""
        stack = self.stack
        depth = len(self.metastack) + run.count + len(stack) - 1
        max_depth = self.limits.max_stack_depth
        if depth > max_depth:
            raise LimitReached(f"nesting deeper than {max_depth} (items taken one at a time "
                               f"from under {depth} others)", offset)
        n = min(run.count, LIVE)
        run.count -= n
        stack[:1] = [OPAQUE] * n if not run.count else [run, *[OPAQUE] * n]


    def _underflow(self, name: str) -> Malformed:
        return Malformed(f"stack underflow at {name}", self.at)

    def _arg(self, pos: int, n: int, what: str) -> tuple[int, int]:
        """A fixed-size unsigned little-endian argument of ``n`` bytes and the pos after it."""
        data, _, pos = self.reader.read(pos, n, what)
        return int.from_bytes(data, "little"), pos

    def _pop_mark(self) -> list[object]:
        """Close the innermost MARK frame: returns its items (CPython's ``pop_mark``)."""
        if not self.metastack:
            raise Malformed("MARK not found", self.at)
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def _memo_put(self, idx: int, value: object) -> None:
        """Store at key ``idx`` (PUT, BINPUT, LONG_BINPUT, MEMOIZE), as CPython's memo does."""
        dense = self.dense
        extra = self.extra
        if idx == dense and not extra:  # the usual, sequential case
            self.dense = dense + 1
            if value is not OPAQUE:
                self.memo[idx] = value
            return
        if idx == dense:
            dense += 1
            while dense in extra:
                extra.remove(dense)
                dense += 1
            self.dense = dense
        elif idx > dense:
            extra.add(idx)
        if value is OPAQUE:
            self.memo.pop(idx, None)
        else:
            self.memo[idx] = value

    def _put(self, idx: int, name: str) -> None:
        """Store the top of the stack at key ``idx``."""
        if not self.stack:
            raise self._underflow(name)
        self._memo_put(idx, self.stack[-1])

    def _get(self, idx: int) -> None:
        """Push the value at key ``idx``; a missing key stops CPython's unpickler."""
        if idx >= self.dense and idx not in self.extra:
            raise Malformed(f"memo key {idx} not found", self.at)
        self.stack.append(self.memo.get(idx, OPAQUE))

    def _line(self, pos: int, what: str) -> tuple[bytes | None, int]:
        """A protocol-0 argument line (None when longer than :data:`KEEP`) and the new pos."""
        reader = self.reader
        stop = pos + KEEP + 1
        if stop > reader.end:
            stop = reader.end
        nl = reader.buf.find(b"\n", pos, stop)
        if nl >= 0:
            return reader.buf[pos:nl], nl + 1
        line, _, pos = reader.readline(pos, KEEP, what)
        return line, pos

    def _line_index(self, pos: int, what: str) -> tuple[int, int]:
        """The memo key of a protocol-0 GET or PUT and the new pos."""
        line, pos = self._line(pos, what)
        if line is None:
            raise Malformed("memo index too long", self.at)
        idx = int(_c_string(line), 10)
        if idx < 0:
            raise Malformed("negative memo index", self.at)
        return idx, pos

    def _sized(self, pos: int, width: int, what: str, *, signed: bool = False) -> tuple[int, int]:
        """A length prefix of ``width`` bytes: returns it and the pos after it."""
        data, _, pos = self.reader.read(pos, width, f"{what} length")
        n = int.from_bytes(data, "little", signed=signed)
        if n < 0:
            raise Malformed(f"{what} has a negative length", self.at)
        return n, pos

    def _string(self, pos: int, n: int, what: str, *, text: bool) -> int:
        """Push a length-prefixed string (``text``: UTF-8, else latin-1 as the C unpickler
        decodes BINSTRING by default); long ones are skipped and pushed as a :class:`Blob`."""
        if n > KEEP:
            return self._blob(pos, n, what, "utf-8" if text else "latin-1")
        data, _, pos = self.reader.read(pos, n, what)
        self.stack.append(data.decode("utf-8", "surrogatepass") if text
                          else data.decode("latin-1"))
        return pos

    def _skip(self, pos: int, n: int, what: str) -> int:
        """Skip a length-prefixed argument whose value does not matter; push OPAQUE."""
        _, pos = self.reader.skip(pos, n, what)
        self.stack.append(OPAQUE)
        return pos

    def _blob(self, pos: int, n: int, what: str, codec: str | None) -> int:
        """Skip ``n`` bytes of data and push where they are (bytes a loader may be given)."""
        offset = self.reader.base + pos
        _, pos = self.reader.skip(pos, n, what)
        self.stack.append(Blob(offset, n, codec))
        return pos

    # -- the handlers, one per opcode, in pickletools' order ------------------------------

    def load_int(self, pos: int) -> int:  # I: INT, where 00 and 01 are False and True
        line, pos = self._line(pos, "INT")
        self.stack.append(OPAQUE if line is None else _int_arg(line))
        return pos

    def load_binint(self, pos: int) -> int:  # J
        data, _, pos = self.reader.read(pos, 4, "BININT argument")
        self.stack.append(int.from_bytes(data, "little", signed=True))
        return pos

    def load_binint1(self, pos: int) -> int:  # K
        n, pos = self._arg(pos, 1, "BININT1 argument")
        self.stack.append(n)
        return pos

    def load_binint2(self, pos: int) -> int:  # M
        n, pos = self._arg(pos, 2, "BININT2 argument")
        self.stack.append(n)
        return pos

    def load_long(self, pos: int) -> int:  # L
        line, pos = self._line(pos, "LONG")
        self.stack.append(OPAQUE if line is None else _long_arg(line))
        return pos

    def load_long1(self, pos: int) -> int:  # \x8a
        n, pos = self._sized(pos, 1, "LONG")  # unsigned; LONG4's is signed
        return self._long(pos, n)

    def load_long4(self, pos: int) -> int:  # \x8b
        n, pos = self._sized(pos, 4, "LONG", signed=True)
        return self._long(pos, n)

    def _long(self, pos: int, n: int) -> int:
        if n > 16:
            return self._skip(pos, n, "LONG")
        data, _, pos = self.reader.read(pos, n, "LONG")
        self.stack.append(int.from_bytes(data, "little", signed=True))
        return pos

    def load_string(self, pos: int) -> int:  # S
        line, pos = self._line(pos, "STRING")
        self.stack.append(OPAQUE if line is None else _string_arg(line))
        return pos

    def load_binstring(self, pos: int) -> int:  # T
        n, pos = self._sized(pos, 4, "BINSTRING")  # unsigned in _pickle.c
        return self._string(pos, n, "BINSTRING", text=False)

    def load_short_binstring(self, pos: int) -> int:  # U
        n, pos = self._sized(pos, 1, "SHORT_BINSTRING")
        return self._string(pos, n, "SHORT_BINSTRING", text=False)

    def load_binbytes(self, pos: int) -> int:  # B
        n, pos = self._sized(pos, 4, "BINBYTES")
        return self._blob(pos, n, "BINBYTES", None)

    def load_short_binbytes(self, pos: int) -> int:  # C
        n, pos = self._sized(pos, 1, "SHORT_BINBYTES")
        return self._blob(pos, n, "SHORT_BINBYTES", None)

    def load_binbytes8(self, pos: int) -> int:  # \x8e
        n, pos = self._sized(pos, 8, "BINBYTES8")
        return self._blob(pos, n, "BINBYTES8", None)

    def load_bytearray8(self, pos: int) -> int:  # \x96
        n, pos = self._sized(pos, 8, "BYTEARRAY8")
        return self._blob(pos, n, "BYTEARRAY8", None)

    def load_next_buffer(self, pos: int) -> int:  # \x97: an out-of-band buffer
        self.stack.append(OPAQUE)
        return pos

    def load_readonly_buffer(self, pos: int) -> int:  # \x98
        if not self.stack:
            raise self._underflow("READONLY_BUFFER")
        return pos

    def load_none(self, pos: int) -> int:  # N
        self.stack.append(None)
        return pos

    def load_newtrue(self, pos: int) -> int:  # \x88
        self.stack.append(True)
        return pos

    def load_newfalse(self, pos: int) -> int:  # \x89
        self.stack.append(False)
        return pos

    def load_unicode(self, pos: int) -> int:  # V
        line, pos = self._line(pos, "UNICODE")
        self.stack.append(OPAQUE if line is None else line.decode("raw-unicode-escape"))
        return pos

    def load_short_binunicode(self, pos: int) -> int:  # \x8c
        n, pos = self._sized(pos, 1, "SHORT_BINUNICODE")
        return self._string(pos, n, "string", text=True)

    def load_binunicode(self, pos: int) -> int:  # X
        n, pos = self._sized(pos, 4, "BINUNICODE")
        return self._string(pos, n, "string", text=True)

    def load_binunicode8(self, pos: int) -> int:  # \x8d
        n, pos = self._sized(pos, 8, "BINUNICODE8")
        return self._string(pos, n, "BINUNICODE8", text=True)

    def load_float(self, pos: int) -> int:  # F
        line, pos = self._line(pos, "FLOAT")
        if line is not None:
            _float_arg(line)
        self.stack.append(OPAQUE)
        return pos

    def load_binfloat(self, pos: int) -> int:  # G
        _, _, pos = self.reader.read(pos, 8, "BINFLOAT argument")
        self.stack.append(OPAQUE)
        return pos

    def load_empty_list(self, pos: int) -> int:  # ]
        self.stack.append(OPAQUE)
        return pos

    def load_append(self, pos: int) -> int:  # a
        stack = self.stack
        if len(stack) < 2:
            raise self._underflow("APPEND")
        stack.pop()
        target = stack[-1]
        if type(target) is Reference:
            self._mutates(target, self.at)
        return pos

    def load_appends(self, pos: int) -> int:  # e
        self._pop_mark()
        self._into(pos, "APPENDS")
        return pos

    def load_setitems(self, pos: int) -> int:  # u
        items = self._pop_mark()
        target = self._into(pos, "SETITEMS")
        if type(target) is dict:
            if _count(items) % 2:
                raise Malformed("odd number of items for SETITEMS", self.at)
            if items and type(items[0]) is Run:
                return pos  # too many to follow: the dict is not one joblib's arrays use
            for i in range(0, len(items), 2):
                if isinstance(items[i], (str, int)):
                    target[items[i]] = items[i + 1]
        return pos

    def load_additems(self, pos: int) -> int:  # \x90
        self._pop_mark()
        self._into(pos, "ADDITEMS")
        return pos

    def _into(self, pos: int, name: str) -> object:
        """The object a closed MARK frame's items go into (APPENDS, SETITEMS, ADDITEMS)."""
        if not self.stack:
            raise self._underflow(name)
        target = self.stack[-1]
        if type(target) is Reference:
            self._mutates(target, self.at)
        return target

    def load_list(self, pos: int) -> int:  # l
        self._pop_mark()
        self.stack.append(OPAQUE)
        return pos

    load_frozenset = load_list  # \x91: built the same way

    def load_empty_tuple(self, pos: int) -> int:  # )
        self.stack.append(())
        return pos

    def load_tuple(self, pos: int) -> int:  # t
        items = self._pop_mark()
        self.stack.append(OPAQUE if items and type(items[0]) is Run else tuple(items))
        return pos

    def load_tuple1(self, pos: int) -> int:  # \x85
        stack = self.stack
        if not stack:
            raise self._underflow("TUPLE1")
        stack[-1] = (stack[-1],)
        return pos

    def load_tuple2(self, pos: int) -> int:  # \x86
        stack = self.stack
        if len(stack) < 2:
            raise self._underflow("TUPLE2")
        second = stack.pop()
        stack[-1] = (stack[-1], second)
        return pos

    def load_tuple3(self, pos: int) -> int:  # \x87
        stack = self.stack
        if len(stack) < 3:
            raise self._underflow("TUPLE3")
        third = stack.pop()
        second = stack.pop()
        stack[-1] = (stack[-1], second, third)
        return pos

    def load_empty_dict(self, pos: int) -> int:  # }
        self.stack.append({} if self.joblib else OPAQUE)
        return pos

    def load_dict(self, pos: int) -> int:  # d
        items = self._pop_mark()
        if _count(items) % 2:
            raise Malformed("odd number of items for DICT", self.at)
        if self.joblib and not (items and type(items[0]) is Run):
            self.stack.append({items[i]: items[i + 1] for i in range(0, len(items), 2)
                               if isinstance(items[i], (str, int))})
        else:
            self.stack.append(OPAQUE)
        return pos

    def load_setitem(self, pos: int) -> int:  # s
        stack = self.stack
        if len(stack) < 3:
            raise self._underflow("SETITEM")
        v = stack.pop()
        k = stack.pop()
        target = stack[-1]
        if type(target) is Reference:
            self._mutates(target, self.at)
        elif type(target) is dict and isinstance(k, (str, int)):
            target[k] = v
        return pos

    def load_empty_set(self, pos: int) -> int:  # \x8f
        self.stack.append(OPAQUE)
        return pos

    def load_pop(self, pos: int) -> int:  # 0: an empty frame's MARK is popped instead
        if self.stack:
            self.stack.pop()
        else:
            self._pop_mark()
        return pos

    def load_dup(self, pos: int) -> int:  # 2
        stack = self.stack
        if not stack:
            raise self._underflow("DUP")
        stack.append(stack[-1])
        return pos

    def load_mark(self, pos: int) -> int:  # (
        max_depth = self.limits.max_stack_depth
        if len(self.metastack) >= max_depth:
            raise LimitReached(f"more than {max_depth} nested MARKs", self.at)
        self.metastack.append(self.stack)
        self.stack = []
        return pos

    def load_pop_mark(self, pos: int) -> int:  # 1
        self._pop_mark()
        return pos

    def load_get(self, pos: int) -> int:  # g
        idx, pos = self._line_index(pos, "GET")
        self._get(idx)
        return pos

    def load_binget(self, pos: int) -> int:  # h
        idx, pos = self._arg(pos, 1, "memo index")
        self._get(idx)
        return pos

    def load_long_binget(self, pos: int) -> int:  # j
        idx, pos = self._arg(pos, 4, "memo index")
        self._get(idx)
        return pos

    def load_put(self, pos: int) -> int:  # p
        idx, pos = self._line_index(pos, "PUT")
        self._put(idx, "PUT")
        return pos

    def load_binput(self, pos: int) -> int:  # q
        idx, pos = self._arg(pos, 1, "memo index")
        self._put(idx, "BINPUT")
        return pos

    def load_long_binput(self, pos: int) -> int:  # r
        idx, pos = self._arg(pos, 4, "memo index")
        self._put(idx, "LONG_BINPUT")
        return pos

    def load_memoize(self, pos: int) -> int:  # \x94
        self._put(self.dense + len(self.extra), "MEMOIZE")
        return pos

    def load_ext1(self, pos: int) -> int:  # \x82
        return self._ext(pos, 1)

    def load_ext2(self, pos: int) -> int:  # \x83
        return self._ext(pos, 2)

    def load_ext4(self, pos: int) -> int:  # \x84
        return self._ext(pos, 4)

    def _ext(self, pos: int, width: int) -> int:
        code, pos = self._arg(pos, width, "EXT code")
        self.extensions.append((self.at, code))
        self.stack.append(OPAQUE)
        return pos

    def load_global(self, pos: int) -> int:  # c
        ref, pos = self._global_lines(pos, "GLOBAL")
        self.stack.append(ref)
        return pos

    def load_stack_global(self, pos: int) -> int:  # \x93
        stack = self.stack
        if len(stack) < 2:
            raise self._underflow("STACK_GLOBAL")
        name = stack.pop()
        module = stack[-1]
        if module is FORGOTTEN or name is FORGOTTEN:
            raise _forgotten("STACK_GLOBAL", self.at)
        if type(module) is str and type(name) is str:
            stack[-1] = self._reference(module, name, self.proto, self.at,
                                        "STACK_GLOBAL")
        else:
            self.dynamic_imports.append(self.at)
            stack[-1] = OPAQUE
        return pos

    def _global_lines(self, pos: int, opcode: str) -> tuple[object, int]:
        """The name GLOBAL and INST import: two lines, module then name."""
        reader = self.reader
        mline, _, pos = reader.readline(pos, KEEP, "module name")
        nline, _, pos = reader.readline(pos, KEEP, "global name")
        if mline == b"" or nline == b"":
            raise Malformed(f"{opcode} with an empty line", self.at)
        if mline is None or nline is None:
            self.dynamic_imports.append(self.at)
            return OPAQUE, pos
        encoding = "utf-8" if opcode == "GLOBAL" else "ascii"  # as _pickle.c decodes them
        return self._reference(mline.decode(encoding), nline.decode(encoding), self.proto,
                               self.at, opcode), pos

    def load_reduce(self, pos: int) -> int:  # R
        stack = self.stack
        if len(stack) < 2:
            raise self._underflow("REDUCE")
        args = stack.pop()
        stack[-1] = self._call(stack[-1], args, self.at, "REDUCE")
        return pos

    def load_build(self, pos: int) -> int:  # b
        stack = self.stack
        if len(stack) < 2:
            raise self._underflow("BUILD")
        state = stack.pop()
        obj = stack[-1]
        if type(obj) is Call:
            obj.state = state
            if self.joblib and obj.ref.qualname in JOBLIB_WRAPPERS and type(state) is dict:
                self.pos = pos
                if not any(twin.plain for twin in self.forks):
                    self._plain_twin(pos)
                self._joblib_array(state, self.at)
                return self.pos
        elif type(obj) is Reference:
            self._mutates(obj, self.at)
        return pos

    def load_inst(self, pos: int) -> int:  # i
        ref, pos = self._global_lines(pos, "INST")
        args = tuple(self._pop_mark())
        self.stack.append(self._call(ref, args, self.at, "INST"))
        return pos

    def load_obj(self, pos: int) -> int:  # o
        items = self._pop_mark()
        if not items:
            raise self._underflow("OBJ")
        cls = OPAQUE if type(items[0]) is Run else items[0]
        self.stack.append(self._call(cls, tuple(items[1:]), self.at, "OBJ"))
        return pos

    def load_newobj(self, pos: int) -> int:  # \x81
        stack = self.stack
        if len(stack) < 2:
            raise self._underflow("NEWOBJ")
        args = stack.pop()
        stack[-1] = self._call(stack[-1], args, self.at, "NEWOBJ")
        return pos

    def load_newobj_ex(self, pos: int) -> int:  # \x92
        stack = self.stack
        if len(stack) < 3:
            raise self._underflow("NEWOBJ_EX")
        stack.pop()
        args = stack.pop()
        stack[-1] = self._call(stack[-1], args, self.at, "NEWOBJ_EX")
        return pos

    def load_proto(self, pos: int) -> int:  # \x80
        proto, pos = self._arg(pos, 1, "PROTO argument")
        if proto > 5:
            raise Malformed(f"unsupported pickle protocol {proto}", self.at)
        self.proto = proto
        return pos

    def load_stop(self, pos: int) -> int:  # .
        if not self.stack:
            raise self._underflow("STOP")
        self.pos = pos
        raise _Stop

    def load_frame(self, pos: int) -> int:  # \x95
        """The C unpickler reads the frame into its buffer, and the pure-Python one checks
        that the previous frame is used up; ``pickle.loads`` only needs the bytes to exist.
        Every disagreement is recorded; the reader follows frames (see reader.py)."""
        n, pos = self._arg(pos, 8, "FRAME length")
        reader = self.reader
        left = reader.remaining(pos)
        if left is not None and n > left:  # the C unpickler stops; pickle.py reads on
            self.frames.append((self.at, f"a FRAME claims {n} bytes but only {left} remain"))
        frame = reader.frame_end
        if frame is not None and reader.base + pos + n <= frame:
            self.frames.append((self.at, "a FRAME inside a frame"))
            return pos
        pos = reader.start_frame(pos, n)
        return pos

    def load_persid(self, pos: int) -> int:  # P
        _, pos = self._line(pos, "PERSID")
        self.stack.append(OPAQUE)
        return pos

    def load_binpersid(self, pos: int) -> int:  # Q
        if not self.stack:
            raise self._underflow("BINPERSID")
        self.stack[-1] = OPAQUE
        return pos

    def load_unknown(self, pos: int) -> int:
        raise Malformed(f"unknown opcode 0x{self.reader.buf[pos - 1]:02x}", self.at)

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
        if reader.frame_end is not None and reader.base + self.pos < reader.frame_end:
            # joblib writes arrays between frames, and reads them from the file past the
            # frame the unpickler holds: not the bytes that follow here.
            self.frames.append((offset, "a joblib array inside a FRAME"))
            raise LimitReached("a joblib array inside a FRAME: joblib reads it from after "
                               "the frame, which mlward does not follow", offset)
        if itemsize == 0:  # object dtype: a nested pickle that must be analysed as well
            nested = Machine(reader, self.limits)
            nested.pos = self.pos
            nested.ops = self.ops
            nested._share_records(self)
            nested.diverged = True  # no twins from inside an array
            reader.crossed = nested._crossed
            try:
                nested.run()
            finally:
                reader.crossed = self._crossed
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

DISPATCH: Final[dict[int, Handler]] = {
    0x28: Machine.load_mark,  # (
    0x2E: Machine.load_stop,  # .
    0x30: Machine.load_pop,  # 0
    0x31: Machine.load_pop_mark,  # 1
    0x32: Machine.load_dup,  # 2
    0x46: Machine.load_float,  # F
    0x49: Machine.load_int,  # I
    0x4A: Machine.load_binint,  # J
    0x4B: Machine.load_binint1,  # K
    0x4C: Machine.load_long,  # L
    0x4D: Machine.load_binint2,  # M
    0x4E: Machine.load_none,  # N
    0x50: Machine.load_persid,  # P
    0x51: Machine.load_binpersid,  # Q
    0x52: Machine.load_reduce,  # R
    0x53: Machine.load_string,  # S
    0x54: Machine.load_binstring,  # T
    0x55: Machine.load_short_binstring,  # U
    0x56: Machine.load_unicode,  # V
    0x58: Machine.load_binunicode,  # X
    0x61: Machine.load_append,  # a
    0x62: Machine.load_build,  # b
    0x63: Machine.load_global,  # c
    0x64: Machine.load_dict,  # d
    0x7D: Machine.load_empty_dict,  # }
    0x65: Machine.load_appends,  # e
    0x67: Machine.load_get,  # g
    0x68: Machine.load_binget,  # h
    0x69: Machine.load_inst,  # i
    0x6A: Machine.load_long_binget,  # j
    0x6C: Machine.load_list,  # l
    0x5D: Machine.load_empty_list,  # ]
    0x6F: Machine.load_obj,  # o
    0x70: Machine.load_put,  # p
    0x71: Machine.load_binput,  # q
    0x72: Machine.load_long_binput,  # r
    0x73: Machine.load_setitem,  # s
    0x74: Machine.load_tuple,  # t
    0x29: Machine.load_empty_tuple,  # )
    0x75: Machine.load_setitems,  # u
    0x47: Machine.load_binfloat,  # G
    # Protocol 2.
    0x80: Machine.load_proto,
    0x81: Machine.load_newobj,
    0x82: Machine.load_ext1,
    0x83: Machine.load_ext2,
    0x84: Machine.load_ext4,
    0x85: Machine.load_tuple1,
    0x86: Machine.load_tuple2,
    0x87: Machine.load_tuple3,
    0x88: Machine.load_newtrue,
    0x89: Machine.load_newfalse,
    0x8A: Machine.load_long1,
    0x8B: Machine.load_long4,
    # Protocol 3.
    0x42: Machine.load_binbytes,  # B
    0x43: Machine.load_short_binbytes,  # C
    # Protocol 4.
    0x8C: Machine.load_short_binunicode,
    0x8D: Machine.load_binunicode8,
    0x8E: Machine.load_binbytes8,
    0x8F: Machine.load_empty_set,
    0x90: Machine.load_additems,
    0x91: Machine.load_frozenset,
    0x92: Machine.load_newobj_ex,
    0x93: Machine.load_stack_global,
    0x94: Machine.load_memoize,
    0x95: Machine.load_frame,
    # Protocol 5.
    0x96: Machine.load_bytearray8,
    0x97: Machine.load_next_buffer,
    0x98: Machine.load_readonly_buffer,
}
"""Every opcode of protocols 0 to 5 and its handler (the order of ``pickle.py``'s table)."""
_TABLE: Final = [DISPATCH.get(code, Machine.load_unknown) for code in range(256)]


def plain_findings(twin: Machine) -> dict[str, Reference]:
    """The names a plain twin (joblib's arrays read as opcodes) imports, when it calls one
    with a well-formed name: what a payload in array bytes does and random bytes do not."""
    named = {qual: ref for qual, ref in twin.references.items()
             if NAME.fullmatch(ref.module) and NAME.fullmatch(ref.name)}
    return named if any(ref.called for ref in named.values()) else {}


NAME: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*", re.ASCII)
"""A name Python can import: dotted identifiers (stray bytes rarely spell one)."""


def _encoded(args: object) -> object:
    """What ``_codecs.encode(text, encoding)`` returns, when it is bytes a loader may get."""
    if type(args) is not tuple or not 1 <= len(args) <= 2:
        return OPAQUE
    text = args[0]
    encoding = args[1] if len(args) == 2 else "utf-8"
    if encoding not in ("latin1", "latin-1", "iso-8859-1"):
        return OPAQUE
    if type(text) is str:
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            return OPAQUE
    if type(text) is Blob and text.codec == "utf-8":
        return Blob(text.offset, text.length, "utf-8>latin-1")
    return OPAQUE


def _loader_input(args: object) -> bytes | Blob | None:
    """The bytes a deserializer is called with: its first argument, bytes or a ``BytesIO``
    made of bytes."""
    if type(args) is not tuple or not args:
        return None
    data = args[0]
    if type(data) is Call and data.ref.qualname in _BYTES_IO:
        inner = data.args
        data = inner[0] if type(inner) is tuple and inner else None
    if type(data) is bytes or (type(data) is Blob and data.codec != "utf-8"):
        return data
    return None


def _fold(stack: list[object]) -> None:
    """Count all but the last :data:`LIVE` items of a long MARK frame in a :class:`Run`."""
    n = len(stack) - LIVE
    head = stack[0]
    stack[:n] = [Run(n - 1 + head.count if type(head) is Run else n)]


def _count(items: list[object]) -> int:
    """How many items a closed MARK frame held."""
    head = items[0] if items else None
    return len(items) - 1 + head.count if type(head) is Run else len(items)


def _forgotten(what: str, offset: int) -> LimitReached:
    return LimitReached(f"{what} uses a memo value not kept (over {MEMO_KEEP} values)",
                        offset)


# Protocol 0's text arguments, read exactly as _pickle.c reads them (pickle.loads and
# pickle.load use it): the line goes to C functions as a C string, so it ends at its first NUL.

_C_SPACE: Final = b" \t\n\v\f\r"


def _c_string(line: bytes) -> bytes:
    nul = line.find(b"\0")
    return line if nul < 0 else line[:nul]


def _int_arg(line: bytes) -> int:
    """INT (``load_int``): ``strtol(s, &end, 0)``, which must stop at the line's end or a NUL,
    else (or on overflow) ``int(s, 0)``; ``00`` and ``01`` lines (any 2-character line that
    strtol reads as 0 or 1: ``+1``, `` 0``, ``1\0``) are False and True."""
    if line.isdigit() and (line[0] != 0x30 or len(line) == 1):  # plain decimal: the usual
        return int(line)
    if not line:
        raise ValueError("an empty INT argument")
    s = _c_string(line)
    value, rest = _strtol(s)
    if rest is None or rest:
        return int(s, 0)
    return bool(value) if len(line) == 2 and value in (0, 1) else value


def _strtol(s: bytes) -> tuple[int, bytes | None]:
    """C's ``strtol(s, &end, 0)`` for a 64-bit long: the value and the bytes after the
    number (None on overflow). Without digits: 0 and ``s`` itself (``end`` is ``s``)."""
    i, n = 0, len(s)
    while i < n and s[i] in _C_SPACE:
        i += 1
    negative = i < n and s[i] == 0x2D
    if i < n and s[i] in b"+-":
        i += 1
    if s[i:i + 2] in (b"0x", b"0X") and s[i + 2:i + 3] and s[i + 2] in _HEX:
        base, i = 16, i + 2
    else:
        base = 8 if s[i:i + 1] == b"0" else 10
    digits = _HEX[:base] if base < 16 else _HEX
    j = i
    while j < n and s[j] in digits:
        j += 1
    if j == i:
        return 0, s
    value = int(s[i:j], base)
    value = -value if negative else value
    return value, (s[j:] if -2**63 <= value < 2**63 else None)


_HEX: Final = b"0123456789abcdefABCDEF"


def _long_arg(line: bytes) -> int:
    """LONG (``load_long``): one trailing ``L`` dropped, then ``int(s, 0)``."""
    return int(_c_string(line[:-1] if line.endswith(b"L") else line), 0)


def _float_arg(line: bytes) -> None:
    """FLOAT (``load_float``): ``PyOS_string_to_double``, which must stop at the line's end
    or a NUL: no spaces, no underscores, no overflow to infinity (ValueError otherwise)."""
    s = _c_string(line)
    if s.strip(_C_SPACE) != s or b"_" in s:
        raise ValueError(f"FLOAT argument {s!r}")
    if math.isinf(float(s)) and s.lstrip(b"+-").lower() not in (b"inf", b"infinity"):
        raise ValueError(f"FLOAT argument {s!r} overflows")


def _string_arg(line: bytes) -> str:
    """STRING (``load_string``): quoted alike at both ends, then escape-decoded. The result
    is decoded as latin-1, the encoding numpy and torch pass for Python 2 pickles (the
    default, ASCII, reads fewer pickles)."""
    if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
        raise ValueError("the STRING argument is not quoted")
    body = line[1:-1]
    if b"\\" not in body:
        return body.decode("latin-1")
    with warnings.catch_warnings():  # "\q" is deprecated, still read: no warning printed
        warnings.simplefilter("ignore", DeprecationWarning)
        return codecs.escape_decode(body)[0].decode("latin-1")


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
