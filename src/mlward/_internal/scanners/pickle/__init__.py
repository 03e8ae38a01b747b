"""Pickle-family models: raw pickles (protocols 0 to 5, back to back) and joblib streams.

A symbolic opcode machine (:mod:`.machine`) reads the stream without loading it and collects
every name the pickle can call; the policy (:mod:`.policy`) judges each one. Other scanners
(torch, numpy, compressed joblib) hand their pickle streams to :func:`scan_pickle_stream`.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from mlward._internal.scanners.interface import Limits, ScanContext, Scanner
from mlward._internal.scanners.pickle.machine import (
    NAME,
    NESTED_LOADERS,
    Blob,
    LimitReached,
    Machine,
    Malformed,
    Reference,
    plain_findings,
)
from mlward._internal.scanners.pickle.policy import Kind, classify, is_known_module
from mlward._internal.scanners.pickle.reader import Reader, Truncated, is_seekable
from mlward._internal.sources import Source
from mlward.findings import Location
from mlward.rules import (
    PICKLE_DANGEROUS,
    PICKLE_DYNAMIC_IMPORT,
    PICKLE_FRAME,
    PICKLE_INDIRECT_CALL,
    PICKLE_MALFORMED,
    PICKLE_TRAILING_DATA,
    PICKLE_UNKNOWN,
)

if TYPE_CHECKING:
    from mlward._internal.sources.archives import Spool

SNIFF_CHUNK = 64 << 10
"""Bytes read at a time while sniffing (16 opcodes at most are decoded)."""
NESTED_TEXT = 64 << 20
"""Bytes of a long string re-encoded in memory when a pickle hands it to a loader."""
SNIFF_HEAD = 512
"""Bytes of a file's head that tell text from binary data when sniffing."""
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


class Analysis(NamedTuple):
    """What the machine saw in one stream."""

    pickles: int
    end_offset: int
    """Offset (in the stream) just after the last STOP read, or where the analysis stopped."""
    references: dict[str, Reference]
    """Every name the stream imports, by qualified name, as CPython's unpickler resolves it."""
    dynamic_imports: list[int]
    extensions: list[tuple[int, int]]
    indirect_calls: list[tuple[int, str]]
    joblib: bool
    arrays: int
    frames: list[tuple[int, str]]
    """(offset, what) of frames whose length disagrees with the opcodes inside."""
    deserialized: list[tuple[str, int, bytes | Blob]]
    """(loader, offset, data): bytes the pickle hands a deserializer (``pickle.loads``...)."""
    stop: Malformed | LimitReached | None
    """Why the analysis ended before the stream did (None: every pickle was read)."""
    trailing: tuple[int, int | None] | None
    """Offset and size (None: unknown) of bytes after the last pickle that are not one."""


def analyse(stream: BinaryIO, limits: Limits, *, max_pickles: int | None = None,
            joblib: bool = False) -> Analysis:
    """Run the machine over the pickle(s) at the stream's current position.

    Reads back-to-back pickles until EOF, or until ``max_pickles`` have been read. Offsets
    are stream positions (as ``stream.tell()`` counts them); a seekable stream is left at
    ``end_offset`` when every pickle was read. Bytes after the last pickle that do not start
    another one are trailing data unless ``max_pickles`` is given (the caller knows what
    follows). Never raises for malformed data or limits: ``stop`` says why it ended early.

    The first reading follows ``pickle.load`` over a buffered file, one Unpickler per
    pickle; where another loader reads the stream differently (a memo reused across
    pickles, frames read as a file without ``peek`` reads them) the machine leaves a twin,
    run here afterwards from its own position. What every reading finds is reported; a
    limit in any of them makes the stream inconclusive, damage only the first.
    """
    reader = Reader(stream)
    machine = Machine(reader, limits, joblib=joblib)
    pickles, end, stop, trailing = _follow(machine, max_pickles, first=True)
    for twin in machine.forks:  # twins may add twins; the list grows while it is read
        if stop is not None and not isinstance(stop, Malformed):
            break
        offset, frame, droptail, phase = twin.entry
        if not reader.seekable:
            stop = LimitReached("the stream is read in two ways by CPython's loaders and "
                                "cannot be read again", offset)
            break
        if reader.size is not None and offset > reader.size:
            continue  # after a FRAME longer than the stream: no C loader gets that far
        stream.seek(offset)
        twin.reader = Reader(stream)
        twin.reader.frame_end, twin.reader.droptail = frame, droptail
        if phase == "memo":
            twin.start_next()
        twin_stop = _follow(twin, max_pickles, first=False, resume=phase == "op")[2]
        if twin.plain:
            for qual, ref in plain_findings(twin).items():
                machine.references.setdefault(qual, ref)
        if isinstance(twin_stop, LimitReached):
            stop = twin_stop
    if stop is None:
        reader.finish(end - reader.base)
    return Analysis(pickles, end, machine.references, machine.dynamic_imports,
                    machine.extensions, machine.indirect_calls, machine.joblib, machine.arrays,
                    machine.frames, machine.deserialized, stop, trailing)


def _follow(machine: Machine, max_pickles: int | None, *, first: bool, resume: bool = False,
            ) -> tuple[int, int, Malformed | LimitReached | None, tuple[int, int | None] | None]:
    """One reading to the end: (pickles, end offset, why it stopped early, trailing data)."""
    reader = machine.reader
    reader.crossed = machine._crossed
    end = reader.base + machine.pos
    trailing = None
    settled = not resume  # a twin made at a pickle boundary starts with it settled
    try:
        if resume:
            machine.resume()
            end = machine.offset
        while max_pickles is None or machine.pickles < max_pickles:
            if machine.pickles:
                if not reader.fill(machine.pos, 1):
                    break  # EOF right after a STOP
                machine.pos = 0
                if not settled:
                    machine.start_next()
                    if not reader.fill(machine.pos, 1):
                        break  # what followed was the rest of a frame
                    machine.pos = 0
            settled = False
            ops, found = machine.ops, machine.found
            try:
                machine.run()
            except Malformed:
                if (not first or not machine.pickles or machine.found != found
                        or machine.ops - ops > SNIFF_OPS):
                    raise
                trailing = (end, None if reader.size is None else reader.size - end)
                break
            end = machine.offset
    except Truncated as exc:  # between pickles: a frame's end past the stream's
        return machine.pickles, exc.offset, Malformed(f"truncated: {exc}", exc.offset,
                                                      truncated=True), trailing
    except (Malformed, LimitReached) as exc:
        return machine.pickles, exc.offset, exc, trailing
    return machine.pickles, end, None, trailing


def scan_pickle_stream(stream: BinaryIO, location: Location, ctx: ScanContext, *,
                       max_pickles: int | None = None, joblib: bool = False) -> PickleStreamResult:
    """Analyse the pickle(s) at the stream's current position (see :func:`analyse`) and
    report findings to ``ctx``. ``joblib`` skips the raw array bytes joblib writes after each
    NumpyArrayWrapper (switched on by itself when the stream imports that wrapper). Never
    raises for malformed data: it reports a finding and returns ``complete=False``.
    """
    analysis = analyse(stream, ctx.limits, max_pickles=max_pickles, joblib=joblib)
    if analysis.trailing is not None:
        offset, size = analysis.trailing
        ctx.add(PICKLE_TRAILING_DATA.finding(
            location.at(offset=offset),
            f"{'bytes' if size is None else f'{size} bytes'} after the end of the pickle are "
            "not a pickle"))
    stop = analysis.stop
    if isinstance(stop, Malformed):
        ctx.add(PICKLE_MALFORMED.finding(
            location.at(offset=stop.offset), f"malformed pickle stream: {stop}",
            details={"pickles_read": analysis.pickles}))
        ctx.skip(location, f"pickle analysis stopped at offset {stop.offset}: {stop}",
                 inconclusive=True)
    elif stop is not None:
        ctx.skip(location, f"pickle analysis stopped at offset {stop.offset}: {stop} "
                 "(a safety limit)", inconclusive=True)
    safe = _report(analysis, location, ctx)
    if analysis.deserialized:
        _scan_deserialized(analysis.deserialized, stream, location, ctx)
    return PickleStreamResult(analysis.pickles, analysis.end_offset, stop is None,
                              analysis.joblib, analysis.arrays, safe)


def _scan_deserialized(loads: list[tuple[str, int, bytes | Blob]], stream: BinaryIO,
                       location: Location, ctx: ScanContext) -> None:
    """Scan the bytes the pickle hands deserializers (``pickle.loads(b"...")``,
    ``torch.load(io.BytesIO(b"..."))``): a nested pickle as a pickle, other bytes by their
    content, each at a location naming the loader and the offset of its call. The loader is
    reported by name as well (dangerous); this says what it would load."""
    from mlward._internal.sources.archives import Spool  # only when a pickle nests data

    here = stream.tell() if is_seekable(stream) else None
    done: set[object] = set()
    try:
        for loader, offset, data in loads:
            key = data if isinstance(data, bytes) else (data.offset, data.length, data.codec)
            if key in done:
                continue
            done.add(key)
            loc = location.child(f"<{loader} argument, offset {offset}>")
            if sum(m.startswith("<") for m in location.members) >= ctx.limits.max_depth:
                ctx.skip(loc, f"data for {loader} nested deeper than {ctx.limits.max_depth} "
                         "levels: not examined", inconclusive=True)
                continue
            with Spool() as spool:
                reason = _copy(data, stream, here is not None, spool, loc, ctx)
                if reason:
                    ctx.skip(loc, f"data for {loader} not examined: {reason}", inconclusive=True)
                elif NESTED_LOADERS[loader] == "pickle":
                    ctx.examined(loc, "pickle")
                    with spool.open() as f:
                        scan_pickle_stream(f, loc, ctx)
                else:
                    ctx.scan_child(spool.source(loc))
    finally:
        if here is not None:
            stream.seek(here)


def _copy(data: bytes | Blob, stream: BinaryIO, seekable: bool, spool: Spool, loc: Location,
          ctx: ScanContext) -> str | None:
    """Write the bytes ``data`` stands for into ``spool``; the reason when it cannot."""
    if isinstance(data, bytes):
        spool.write(data)
        return None
    if not seekable:
        return "the stream cannot be read again"
    if not ctx.charge(loc, data.length):
        return "over the byte budget"
    if data.codec is not None and data.length > NESTED_TEXT:
        return f"{data.length} bytes of text to re-encode (limit {NESTED_TEXT})"
    stream.seek(data.offset)
    if data.codec is not None:  # text written as bytes: decode it back to what was encoded
        raw = stream.read(data.length)
        spool.write(raw.decode("utf-8", "surrogatepass").encode("latin-1", "replace"))
        return None
    left = data.length
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            return "the stream ends first"
        spool.write(chunk)
        left -= len(chunk)
    return None


def _report(analysis: Analysis, location: Location, ctx: ScanContext) -> int:
    """Turn what the machine saw into findings; returns the number of safe references."""
    safe = 0
    for qual, ref in analysis.references.items():
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
            origin = "" if is_known_module(ref.module) else (
                f" (module {ref.module} is neither the standard library's nor a library "
                "mlward knows: the program that wrote the file defines it)")
            ctx.add(PICKLE_UNKNOWN.finding(
                location.at(offset=ref.offset), f"pickle imports {qual}{called}, which is not "
                f"known to be safe{origin}", evidence=qual,
                details={**details, "module": ref.module}))
    for offset, code in analysis.extensions[:1]:
        ctx.add(PICKLE_UNKNOWN.finding(
            location.at(offset=offset), f"pickle imports copyreg extension code {code}: the "
            "name depends on what the loading program registered",
            evidence=f"copyreg extension {code}",
            details={"count": len(analysis.extensions)}))
    for offset in analysis.dynamic_imports[:1]:
        ctx.add(PICKLE_DYNAMIC_IMPORT.finding(
            location.at(offset=offset), "pickle imports a name that is not a string constant",
            details={"count": len(analysis.dynamic_imports)}))
    for offset, what in analysis.indirect_calls[:1]:
        ctx.add(PICKLE_INDIRECT_CALL.finding(
            location.at(offset=offset), what, details={"count": len(analysis.indirect_calls)}))
    for offset, what in analysis.frames[:1]:
        ctx.add(PICKLE_FRAME.finding(
            location.at(offset=offset), f"{what}: CPython's loaders read this frame "
            "differently; names found by either reading are reported",
            details={"count": len(analysis.frames)}))
    return safe


def looks_like_pickle(stream: BinaryIO, head: bytes, *, whole: bool = False) -> bool:
    """Whether the stream starts with a pickle (``head``: its first bytes), judged by running
    its first opcodes. A pickle has no magic number, so what a plausible one needs depends on
    what the bytes look like:

    - After ``PROTO 2`` to ``PROTO 5`` (every pickle of protocol 2 or later opens that way;
      text never starts with byte 0x80): 4 clean opcodes, or a clean run to the end of a
      shorter (truncated) stream.
    - Other binary data (protocol 1): 16 clean opcodes, STOP, or a clean run of 2 or more
      to the end of the stream.
    - Text (protocol 0 is printable; so are label lists, CSV and notes, which parse as a few
      opcodes by accident: ``cat``/``dog`` is a GLOBAL of ``at.dog``): STOP, 64 clean
      opcodes, or enough of what only pickles do: a call counts 2, building a container or
      using the memo 1 each, importing a dangerous name 1; 2 are needed.

    A stream that breaks (rather than ends) is a pickle when what ran before the break is:
    the unpickler runs it, so a payload followed by garbage is a pickle (for binary data, an
    import of a well-formed name is enough). Long strings are skipped, not read, so a payload
    behind a long first string is still recognised.

    ``whole``: the stream is a whole value (decoded from base64 or hex text, an HDF5
    attribute), not a file that may have been cut. Random bytes run a few opcodes to their
    end often enough (one 32-byte key id in 700 does), so for a whole value running to the
    end is not enough: it is a pickle when it imports a well-formed name, reaches a limit, or
    ends with its STOP (``].`` followed by more bytes is chance).
    """
    if has_protocol_header(head):
        kind, limits = "proto", _PROTO_SNIFF_LIMITS
    elif head.translate(None, _TEXT_BYTES):
        kind, limits = "binary", _SNIFF_LIMITS
    else:
        kind, limits = "text", _TEXT_SNIFF_LIMITS
    machine = Machine(Reader(stream, chunk=SNIFF_CHUNK), limits)
    machine.reader.crossed = machine._crossed  # frames that disagree are noted (crafted)
    evidence = _Evidence(machine) if kind == "text" else None
    machine.watch = evidence
    try:
        machine.run()
    except LimitReached:
        return True
    except Malformed as exc:
        if evidence is not None:  # the opcode that broke did nothing, unless none did
            return evidence.total(ran=exc.between) >= 2
        if (exc.truncated or machine.frames) and not whole:  # a FRAME past the end: the C
            return kind == "proto" or machine.ops >= 2  # unpickler's "data was truncated"
        return _imports(machine)
    if whole:  # STOP: a whole value that goes on past it is bytes that happened to hold one
        return machine.reader.base + machine.pos >= stream.seek(0, io.SEEK_END) or _imports(
            machine)
    return True


def _imports(machine: Machine) -> bool:
    """Whether the stream imported a well-formed name (what a payload needs)."""
    return any(NAME.fullmatch(ref.module) and NAME.fullmatch(ref.name)
               for ref in machine.references.values())


class _Evidence:
    """Scores what a text stream does that only pickles do (see :func:`looks_like_pickle`):
    called with each opcode before it runs, it counts the one before (which ran to its
    end), and ends the sniff as soon as the stream is a pickle."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.score = 0
        self.last = -1

    def __call__(self, op: int) -> None:
        self._count(self.last)
        self.last = op
        if self.score >= 2:
            raise LimitReached("enough to be a pickle", 0)

    def _count(self, op: int) -> None:
        if op in _STRUCTURE:
            self.score += 2 if op in _CALLS else 1

    def total(self, *, ran: bool) -> int:
        """The score once the stream broke (``ran``: between opcodes, the last one ran)."""
        if ran:
            self._count(self.last)
        return self.score + any(classify(ref.module, ref.name).kind is Kind.DANGEROUS
                                for ref in self.machine.references.values())


def has_protocol_header(head: bytes) -> bool:
    """Whether ``head`` starts with the ``PROTO`` opcode of protocol 2 to 5."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


_SNIFF_LIMITS = Limits(max_pickle_ops=16)
_PROTO_SNIFF_LIMITS = Limits(max_pickle_ops=SNIFF_OPS)
_TEXT_SNIFF_LIMITS = Limits(max_pickle_ops=64)
_TEXT_BYTES = bytes(b for b in range(256) if (b >= 0x20 and b != 0x7F) or b in b"\t\n\v\f\r")
"""Bytes text is made of (UTF-8 included); any other makes a head binary."""
_CALLS = frozenset(b"Roi\x81\x92")
"""REDUCE, OBJ, INST, NEWOBJ, NEWOBJ_EX."""
_STRUCTURE = _CALLS | frozenset(b"dltsaeu1bpg")
"""Calls, and DICT, LIST, TUPLE, SETITEM, APPEND, APPENDS, SETITEMS, POP_MARK, BUILD, PUT, GET."""


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
            return looks_like_pickle(f, source.head(SNIFF_HEAD))

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
