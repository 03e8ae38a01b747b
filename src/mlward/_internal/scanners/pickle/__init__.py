"""Pickle-family models: raw pickles (protocols 0 to 5, back to back) and joblib streams.

A symbolic opcode machine (:mod:`.machine`) reads the stream without loading it and collects
every name the pickle can call; the policy (:mod:`.policy`) judges each one. Other scanners
(torch, numpy, compressed joblib) hand their pickle streams to :func:`scan_pickle_stream`.
"""

from __future__ import annotations

import io
import re
from typing import BinaryIO, NamedTuple

from mlward._internal.scanners.interface import Limits, ScanContext, Scanner
from mlward._internal.scanners.pickle.machine import LimitReached, Machine, Malformed
from mlward._internal.scanners.pickle.policy import Kind, classify
from mlward._internal.scanners.pickle.reader import Reader
from mlward._internal.sources import Source
from mlward.findings import Location
from mlward.rules import (
    PICKLE_DANGEROUS,
    PICKLE_DYNAMIC_IMPORT,
    PICKLE_INDIRECT_CALL,
    PICKLE_MALFORMED,
    PICKLE_TRAILING_DATA,
    PICKLE_UNKNOWN,
)

SNIFF_CHUNK = 64 << 10
"""Bytes read at a time while sniffing (16 opcodes at most are decoded)."""
SNIFF_OPS = 4
"""Opcodes that must decode cleanly for data to count as a pickle: a file that ends before
STOP, or bytes after a STOP (fewer, and no import among them, makes them trailing data)."""


class PickleStreamResult(NamedTuple):
    pickles: int
    """How many complete pickles (each ending in STOP) were read."""
    end_offset: int
    """Offset (in the stream) just after the last STOP read, or where parsing stopped."""
    complete: bool
    """False when parsing stopped on malformed data or a limit (the item is inconclusive)."""
    joblib: bool = False
    """True when the stream turned out to be joblib's (NumpyArrayWrapper arrays inside)."""
    arrays: int = 0
    """joblib arrays skipped (or, for object arrays, analysed as nested pickles)."""
    safe_references: int = 0
    """Distinct imported names on the allowlist (not reported as findings)."""


def scan_pickle_stream(stream: BinaryIO, location: Location, ctx: ScanContext, *,
                       max_pickles: int | None = None, joblib: bool = False) -> PickleStreamResult:
    """Analyse the pickle(s) at the stream's current position; report findings to ``ctx``.

    Reads back-to-back pickles until EOF, or until ``max_pickles`` have been read (legacy
    torch files: a fixed number of pickles followed by raw storage). Offsets in findings and
    ``end_offset`` are stream positions (as ``stream.tell()`` counts them); a seekable stream
    is left at ``end_offset``. ``joblib`` skips the raw array bytes joblib writes after each
    NumpyArrayWrapper (switched on by itself when the stream imports that wrapper). Bytes
    after the last pickle that do not start another one are reported as trailing data unless
    ``max_pickles`` is given (the caller knows what follows). Never raises for malformed
    data: it reports a finding and returns ``complete=False``.
    """
    reader = Reader(stream)
    machine = Machine(reader, ctx.limits, joblib=joblib)
    complete = True
    end = reader.start
    try:
        while max_pickles is None or machine.pickles < max_pickles:
            if machine.pickles:
                if not reader.fill(machine.pos, 1):
                    break  # EOF right after a STOP
                machine.pos = 0
            ops, found = machine.ops, machine.found
            try:
                machine.run()
            except Malformed:
                if not machine.pickles or machine.found != found or machine.ops - ops > SNIFF_OPS:
                    raise
                ctx.add(PICKLE_TRAILING_DATA.finding(
                    location.at(offset=end),
                    f"{_size(reader, end)} after the end of the pickle are not a pickle"))
                break
            end = machine.offset
    except Malformed as exc:
        complete = False
        end = exc.offset
        ctx.add(PICKLE_MALFORMED.finding(
            location.at(offset=exc.offset), f"malformed pickle stream: {exc}",
            details={"pickles_read": machine.pickles}))
        ctx.skip(location, f"pickle analysis stopped at offset {exc.offset}: {exc}",
                 inconclusive=True)
    except LimitReached as exc:
        complete = False
        end = exc.offset
        ctx.skip(location, f"pickle analysis stopped at offset {exc.offset}: {exc} "
                 "(a safety limit)", inconclusive=True)
    safe = _report(machine, location, ctx)
    if complete:
        reader.finish(end - reader.base)
    return PickleStreamResult(machine.pickles, end, complete, machine.joblib, machine.arrays,
                              safe)


def _report(machine: Machine, location: Location, ctx: ScanContext) -> int:
    """Turn what the machine saw into findings; returns the number of safe references."""
    safe = 0
    for qual, ref in machine.references.items():
        c = classify(ref.module, ref.name)
        if c.kind is Kind.SAFE:
            safe += 1
            continue
        called = " and calls it" if ref.called else ""
        details = {"opcode": ref.opcode, "called": ref.called, "class": c.kind.value}
        if c.kind is Kind.DANGEROUS:
            ctx.add(PICKLE_DANGEROUS.finding(
                location.at(offset=ref.offset), f"pickle imports {qual}{called}: it {c.reason}",
                evidence=qual, severity=c.severity, details=details))
        else:
            ctx.add(PICKLE_UNKNOWN.finding(
                location.at(offset=ref.offset), f"pickle imports {qual}{called}, which is not "
                "known to be safe", evidence=qual, details=details))
    for offset, code in machine.extensions[:1]:
        ctx.add(PICKLE_UNKNOWN.finding(
            location.at(offset=offset), f"pickle imports copyreg extension code {code}: the "
            "name depends on what the loading program registered",
            evidence=f"copyreg extension {code}",
            details={"count": len(machine.extensions)}))
    for offset in machine.dynamic_imports[:1]:
        ctx.add(PICKLE_DYNAMIC_IMPORT.finding(
            location.at(offset=offset), "pickle imports a name that is not a string constant",
            details={"count": len(machine.dynamic_imports)}))
    for offset, what in machine.indirect_calls[:1]:
        ctx.add(PICKLE_INDIRECT_CALL.finding(
            location.at(offset=offset), what, details={"count": len(machine.indirect_calls)}))
    return safe


def _size(reader: Reader, end: int) -> str:
    return "bytes" if reader.size is None else f"{reader.size - end} bytes"


def looks_like_pickle(stream: BinaryIO, *, protocol_header: bool = False) -> bool:
    """Whether the stream starts with a pickle: its first opcodes decode and run cleanly.

    True when a STOP is reached, or 16 opcodes run without error, or the stream
    ends (truncated) after :data:`SNIFF_OPS` clean opcodes, or it breaks after importing a
    well-formed name: the unpickler runs what comes before the break, so a payload followed
    by garbage is a pickle. Text that happens to start with an opcode byte (a README starting
    with ``(``) fails fast: stack underflows, missing memo entries, unknown opcodes, lines
    that are not module names. Long strings are skipped, not read, so a payload behind a long
    first string is still recognised.

    ``protocol_header``: the stream opens with ``PROTO 2`` to ``PROTO 5`` (see
    :func:`has_protocol_header`); then 4 clean opcodes are enough. Text never starts with byte
    0x80 (a UTF-8 continuation byte) and every pickle of protocol 2 or later starts that way,
    so this halves the cost of sniffing the usual model file.
    """
    machine = Machine(Reader(stream, chunk=SNIFF_CHUNK),
                      _PROTO_SNIFF_LIMITS if protocol_header else _SNIFF_LIMITS)
    try:
        machine.run()
    except LimitReached:
        return True
    except Malformed as exc:
        if exc.truncated and machine.ops > SNIFF_OPS:
            return True
        return bool(machine.references) and all(
            _NAME.fullmatch(ref.module) and _NAME.fullmatch(ref.name)
            for ref in machine.references.values())
    return True


def has_protocol_header(head: bytes) -> bool:
    """Whether ``head`` starts with the ``PROTO`` opcode of protocol 2 to 5."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*", re.ASCII)
_SNIFF_LIMITS = Limits(max_pickle_ops=16)
_PROTO_SNIFF_LIMITS = Limits(max_pickle_ops=SNIFF_OPS)


class PickleScanner(Scanner):
    """Any pickle stream, recognised by decoding its first opcodes.

    A pickle has no magic of its own, so this runs after the specific formats (a torch zip,
    a numpy file) but before the generic text and Python scanners: a protocol-0 pickle is
    ASCII text, and a file named ``.py`` that decodes as a pickle is one.
    """

    name = "pickle"
    priority = 800
    # A protocol-0 pickle is ASCII, but it is serialized data, not configuration: no secrets pass.
    covers = frozenset({"text"})

    def sniff(self, source: Source) -> bool:
        with _open(source) as f:
            return looks_like_pickle(f, protocol_header=has_protocol_header(source.head(2)))

    def scan(self, source: Source, ctx: ScanContext) -> None:
        with _open(source) as f:
            result = scan_pickle_stream(f, source.location, ctx)
        ctx.examined(source.location, "joblib" if result.joblib else self.name)


def _open(source: Source) -> BinaryIO:
    """The source's bytes; a small file is read from the head already in memory."""
    head = source.head()
    if source.size is not None and len(head) == source.size:
        return io.BytesIO(head)
    return source.open()
