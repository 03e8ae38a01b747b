"""The opcode machine against CPython's own unpickler, on generated and mutated pickles.

For any byte string, :mod:`oracle` tells which globals CPython's C unpickler resolves (it
records ``find_class`` and answers with an inert stand-in, never importing anything). The
property: every global CPython resolves is one the machine resolves too, or the machine
calls the stream inconclusive (a limit, or damage it cannot follow), or it reports a name it
could not compute (MW103). Streams come from a seeded generator of structured pickles (every
opcode family, the memo, frames, back-to-back pickles, protocol-0 text arguments) and from
mutations of them; the run is bounded by time, not by a count.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import random
import re
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from oracle import Standin, load, names, resolved
from pickle_payloads import call

from mlward._internal.scanners.interface import Limits
from mlward._internal.scanners.pickle import SNIFF_HEAD, analyse, looks_like_pickle
from mlward._internal.scanners.pickle.machine import LimitReached

_REAL = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*", re.ASCII)
BUDGET = float(os.environ.get("MLWARD_ORACLE_SECONDS", "45"))
"""Seconds of fuzzing (the CI default keeps the whole module near a minute)."""
SEED = 20261204

MODULES = ["os", "posix", "builtins", "__builtin__", "copy_reg", "collections", "subprocess",
           "numpy", "torch._utils", "dill._dill", "mod", "a.b", "cPickle", "UserDict",
           "exceptions", "io", "string"]
NAMES = ["system", "eval", "OrderedDict", "_reconstructor", "Popen", "_load_type",
         "_rebuild_tensor_v2", "path.join", "x", "UserDict", "StandardError", "loads", "int",
         "core.multiarray._reconstruct", "letters", "open"]


class Gen:
    """Writes one structured pickle: values built from opcodes of the chosen protocol."""

    def __init__(self, rng: random.Random, proto: int) -> None:
        self.rng = rng
        self.proto = proto
        self.out = bytearray()
        self.bounds: list[int] = []
        """Offsets where an opcode starts (frames are cut there)."""
        self.keys: list[int] = []
        self.next_key = 0

    def op(self, data: bytes) -> None:
        self.bounds.append(len(self.out))
        self.out += data

    # -- values (each pushes exactly one item) ---------------------------------------------

    def value(self, depth: int = 0) -> None:
        rng = self.rng
        choices: list[Callable[[int], None]] = [self.const, self.const, self.string, self.ref]
        if depth < 4:
            choices += [self.call, self.call, self.container, self.build, self.obj, self.inst]
        if self.keys:
            choices.append(self.get)
        if depth < 3:
            choices.append(self.noise)
        choices.append(self.persid)
        rng.choice(choices)(depth)
        if rng.random() < 0.35:
            self.put()

    def const(self, depth: int) -> None:
        rng, p = self.rng, self.proto
        n = rng.choice([0, 1, 2, 7, 255, 256, 65535, 65536, -1, 2**31 - 1, 2**40, -2**70])
        options = [b"I" + digits(rng, n) + b"\n", b"L" + digits(rng, n) + b"L\n", b"N",
                   b"F" + rng.choice([b"1.5", b"inf", b"-nan", b".5", b"1e3", b"2\x00x"]) + b"\n",
                   b"I01\n", b"I00\n", b"I\x00\n"]
        if p >= 1:
            if 0 <= n < 256:
                options.append(b"K" + bytes([n]))
            if 0 <= n < 65536:
                options.append(b"M" + struct.pack("<H", n))
            if -2**31 <= n < 2**31:
                options.append(b"J" + struct.pack("<i", n))
            options.append(b"G" + struct.pack(">d", 0.5))
        if p >= 2:
            raw = n.to_bytes(12, "little", signed=True)
            options += [b"\x8a" + bytes([len(raw)]) + raw, b"\x88", b"\x89"]
        if p >= 3:
            options += [b"C\x03abc", b"B\x02\x00\x00\x00ab"]
        if p >= 4:
            options.append(b"\x8e" + struct.pack("<Q", 1) + b"z")
        if p >= 5:
            options.append(b"\x96" + struct.pack("<Q", 1) + b"z")
        self.op(rng.choice(options))

    def string(self, depth: int, text: str | None = None) -> None:
        rng, p = self.rng, self.proto
        s = text if text is not None else rng.choice(MODULES + NAMES)
        raw = s.encode()
        options = [b"V" + raw + b"\n", b"S'" + raw + b"'\n", b'S"' + raw + b'"\n']
        if p >= 1:
            options += [b"X" + struct.pack("<I", len(raw)) + raw,
                        b"T" + struct.pack("<i", len(raw)) + raw, b"U" + bytes([len(raw)]) + raw]
        if p >= 4:
            options += [b"\x8c" + bytes([len(raw)]) + raw,
                        b"\x8d" + struct.pack("<Q", len(raw)) + raw]
        self.op(rng.choice(options))

    def ref(self, depth: int) -> None:
        rng = self.rng
        module, name = rng.choice(MODULES), rng.choice(NAMES)
        if self.proto >= 4 and rng.random() < 0.6:
            self.string(depth, module)
            if rng.random() < 0.3:
                self.put()
            self.string(depth, name)
            self.op(b"\x93")
        else:
            self.op(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def args(self, depth: int) -> None:
        """Push a tuple of arguments."""
        rng = self.rng
        n = rng.randint(0, 3)
        if n == 0:
            self.op(b")")
        elif self.proto >= 2 and rng.random() < 0.5:
            for _ in range(n):
                self.value(depth + 1)
            self.op(bytes([0x84 + n]))
        else:
            self.op(b"(")
            for _ in range(n):
                self.value(depth + 1)
            self.op(b"t")

    def call(self, depth: int) -> None:
        rng = self.rng
        self.ref(depth) if rng.random() < 0.8 else self.value(depth + 1)
        self.args(depth)
        if self.proto >= 4 and rng.random() < 0.2:
            self.op(b"}")
            self.op(b"\x92")
        elif self.proto >= 2 and rng.random() < 0.3:
            self.op(b"\x81")
        else:
            self.op(b"R")

    def obj(self, depth: int) -> None:
        self.op(b"(")
        self.ref(depth)
        for _ in range(self.rng.randint(0, 2)):
            self.value(depth + 1)
        self.op(b"o")

    def inst(self, depth: int) -> None:
        self.op(b"(")
        for _ in range(self.rng.randint(0, 2)):
            self.value(depth + 1)
        module, name = self.rng.choice(MODULES), self.rng.choice(NAMES)
        self.op(b"i" + module.encode() + b"\n" + name.encode() + b"\n")

    def build(self, depth: int) -> None:
        self.call(depth)
        self.value(depth + 1)
        self.op(b"b")

    def container(self, depth: int) -> None:
        rng = self.rng
        kind = rng.choice(["list", "dict", "set"] if self.proto >= 4 else ["list", "dict"])
        n = rng.randint(0, 3)
        if kind == "list":
            if rng.random() < 0.5:
                self.op(b"(")
                for _ in range(n):
                    self.value(depth + 1)
                self.op(b"l")
                return
            self.op(b"]")
            if self.proto >= 1 and rng.random() < 0.5:
                self.op(b"(")
                for _ in range(n):
                    self.value(depth + 1)
                self.op(b"e")
                return
            for _ in range(n):
                self.value(depth + 1)
                self.op(b"a")
        elif kind == "dict":
            if rng.random() < 0.5:
                self.op(b"(")
                for _ in range(n):
                    self.value(depth + 1)
                    self.value(depth + 1)
                self.op(b"d")
                return
            self.op(b"}")
            self.op(b"(")
            for _ in range(n):
                self.value(depth + 1)
                self.value(depth + 1)
            self.op(b"u")
        else:
            self.op(b"\x8f(")
            for _ in range(n):
                self.value(depth + 1)
            self.op(b"\x90")

    def get(self, depth: int) -> None:
        rng = self.rng
        key = rng.choice(self.keys) if rng.random() < 0.9 else rng.randint(0, 9)
        options = [b"g" + digits(rng, key) + b"\n"]
        if self.proto >= 1:
            options.append(b"j" + struct.pack("<I", key))
            if key < 256:
                options.append(b"h" + bytes([key]))
        self.op(rng.choice(options))

    def put(self) -> None:
        rng = self.rng
        key = self.next_key if rng.random() < 0.8 else rng.randint(0, 9)
        if self.proto >= 4 and rng.random() < 0.6:
            key = self.next_key + len([k for k in self.keys if k > self.next_key])
            self.op(b"\x94")
        else:
            options = [b"p" + digits(rng, key) + b"\n"]
            if self.proto >= 1:
                options.append(b"r" + struct.pack("<I", key))
                if key < 256:
                    options.append(b"q" + bytes([key]))
            self.op(rng.choice(options))
        self.keys.append(key)
        while self.next_key in self.keys:
            self.next_key += 1

    def noise(self, depth: int) -> None:
        """Stack traffic that leaves one value: DUP and POP, a MARK then POP_MARK."""
        rng = self.rng
        self.value(depth + 1)
        if rng.random() < 0.5:
            self.op(b"2")
            self.op(b"0")
        else:
            self.op(b"(")
            self.value(depth + 1)
            self.op(b"1")

    def persid(self, depth: int) -> None:
        if self.proto >= 1 and self.rng.random() < 0.5:
            self.value(depth + 1)
            self.op(b"Q")
        else:
            self.op(b"Pid\n")

    # -- whole pickles ------------------------------------------------------------------

    def pickle(self) -> bytes:
        rng = self.rng
        if self.proto >= 2:
            self.op(b"\x80" + bytes([self.proto]))
        self.value()
        for _ in range(rng.randint(0, 3)):
            self.value()
            self.op(b"0")
        self.op(b".")
        data = bytes(self.out)
        if self.proto >= 4 and rng.random() < 0.7:
            data = frame(data, self.bounds, rng)
        return data


def digits(rng: random.Random, n: int) -> bytes:
    """``n`` written as the C unpickler also reads it (mostly plainly): signs, spaces,
    underscores, leading zeros, a NUL ending the C string."""
    text = b"%d" % n
    kind = rng.randrange(12)
    if kind == 0:
        return b" " + text
    if kind == 1 and n >= 0:
        return b"+" + text
    if kind == 2 and n >= 10:
        return text[:1] + b"_" + text[1:]
    if kind == 3:
        return text + b"\x00" + rng.choice([b"", b"junk", b"7"])
    if kind == 4 and n >= 0:
        return b"00" + text
    if kind == 5:
        return text + b" "
    return text


def frame(data: bytes, bounds: list[int], rng: random.Random) -> bytes:
    """Cut the opcodes after PROTO into FRAMEs at opcode boundaries, as picklers do; or,
    one time in four, anywhere, with lengths that lie, and sometimes a frame in a frame."""
    honest = rng.random() < 0.75
    points = bounds if honest else range(len(data))
    cuts = sorted({b for b in points if b >= 2 and rng.random() < 0.2} | {2, len(data)})
    out = bytearray(data[:2])
    for start, stop in itertools.pairwise(cuts):
        length = stop - start
        if not honest and rng.random() < 0.3:
            length = max(0, length + rng.choice([-3, -1, 1, 2, 5, 40]))
        body = data[start:stop]
        if not honest and rng.random() < 0.1 and len(body) > 2:
            body = body[:1] + b"\x95" + struct.pack("<Q", len(body) - 1) + body[1:]
            length += 9
        out += b"\x95" + struct.pack("<Q", length) + body
    return bytes(out)


def generate(rng: random.Random) -> bytes:
    """One to three back-to-back pickles (the memo of the first can feed the next)."""
    out = b""
    for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 3)):
        out += Gen(rng, rng.randint(0, 5)).pickle()
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not buf:
            break
        i = rng.randrange(len(buf))
        kind = rng.randrange(6)
        if kind == 0:
            buf[i] = rng.getrandbits(8)
        elif kind == 1:
            buf.insert(i, rng.choice(b"()0123.abcdeghijlopqrstuKMJNRbo\x85\x86\x93\x94\x95"))
        elif kind == 2:
            del buf[i]
        elif kind == 3:
            j = rng.randrange(i, len(buf) + 1)
            buf[i:i] = buf[i:j]
        elif kind == 4:
            del buf[i:]
        else:
            buf += generate(rng)
    return bytes(buf)


def check(data: bytes) -> str | None:
    """None when the properties hold for ``data``, else what the machine missed.

    Damage is no excuse: the machine stops where CPython stops (or later, where it reads
    more leniently), so every global resolved before the damage must be among its names.
    A limit is (the machine says inconclusive), and so is a name it reports as computed
    while loading (MW103). And a stream in which CPython calls what it imports is taken for
    a pickle by the sniff, however it looks (as text, or after a PROTO header); names that
    cannot exist (not dotted identifiers: only the stand-in answers to them) do not count.
    """
    found, calls = load(data)
    calls = {c for c in calls if _REAL.fullmatch(c[0]) and _REAL.fullmatch(c[1])}
    if calls and not looks_like_pickle(io.BytesIO(data), data[:SNIFF_HEAD]):
        return f"CPython calls {sorted(calls)}; the sniff does not take it for a pickle"
    analysis = analyse(io.BytesIO(data), Limits())
    if isinstance(analysis.stop, LimitReached) or analysis.dynamic_imports:
        return None
    seen = set(analysis.references)
    missed = sorted(f"{m}.{n}" for m, n in found if not names(m, n) & seen)
    if missed:
        return f"CPython resolves {missed}; the machine {sorted(seen)}, stop: {analysis.stop}"
    return None


# CPython's C unpickler leaks an unraisable SystemError when a BYTEARRAY8 read from a
# buffered file comes up short (the bytearray is freed while a view of it is alive).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_fuzz_against_cpython() -> None:
    rng = random.Random(SEED)
    deadline = time.monotonic() + BUDGET
    cases = failures = 0
    report: list[str] = []
    while time.monotonic() < deadline:
        data = generate(rng)
        if rng.random() < 0.5:
            data = mutate(data, rng)
        cases += 1
        problem = check(data)
        if problem:
            failures += 1
            if len(report) < 5:
                report.append(f"{data!r}: {problem}")
    assert not report, f"{failures} of {cases} streams:\n" + "\n".join(report)
    assert cases > 200  # the budget bought a real run


def test_the_generator_reaches_every_opcode_family() -> None:
    import pickletools

    rng = random.Random(SEED)
    seen: set[str] = set()
    for _ in range(300):
        data = generate(rng)
        with contextlib.suppress(ValueError):
            seen.update(op.name for op, _, _ in pickletools.genops(data))
    wanted = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD",
              "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET", "FRAME",
              "INT", "LONG", "STRING", "UNICODE", "FLOAT", "PERSID", "BINPERSID", "DUP",
              "POP_MARK", "ADDITEMS", "SETITEMS", "APPENDS"}
    assert wanted <= seen, wanted - seen


def test_the_oracle_never_imports_or_runs(marker: Path) -> None:
    data = call("os", "system", f"touch {marker}") + call("builtins", "exec",
                                                         f"open({str(marker)!r}, 'w')")
    assert resolved(data) >= {("os", "system"), ("builtins", "exec")}
    assert not marker.exists()


def test_the_standin_absorbs_what_loading_does() -> None:
    s = Standin(1, k=2)
    s.__setstate__({"a": 1})
    s["k"] = "v"
    assert isinstance(s.append(1), Standin) and isinstance(s(), Standin)
    with pytest.raises(AttributeError):
        s.__getinitargs__  # dunders are not faked
