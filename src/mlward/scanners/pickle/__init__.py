"""Pickle-family models. PLACEHOLDER: to be replaced by the symbolic opcode machine.

The contract other scanners rely on (torch, numpy, archives): :func:`scan_pickle_stream`.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass
from typing import BinaryIO

from mlward.findings import Location, Severity
from mlward.rules import RULES, rule
from mlward.scanners.interface import ScanContext, Scanner
from mlward.sources import Source

PICKLE_GLOBAL = RULES.get("MW101") or rule(
    "MW101", "Pickle imports a callable", Severity.HIGH, "Do not load this file.")


@dataclass(frozen=True)
class PickleStreamResult:
    pickles: int
    """How many complete pickles (each ending in STOP) were read."""
    end_offset: int
    """Offset (in the stream) just after the last STOP read, or where parsing stopped."""
    complete: bool
    """False when parsing stopped on malformed data or a limit (the item is inconclusive)."""


def scan_pickle_stream(stream: BinaryIO, location: Location, ctx: ScanContext, *,
                       max_pickles: int | None = None, joblib: bool = False) -> PickleStreamResult:
    """Analyse the pickle(s) at the stream's current position; report findings to ``ctx``.

    Reads back-to-back pickles until EOF, or until ``max_pickles`` have been read (legacy
    torch files: a fixed number of pickles followed by raw storage). Offsets in findings are
    relative to the start of ``stream``. ``joblib`` skips the raw array bytes joblib writes
    after each NumpyArrayWrapper. Never raises for malformed data: it reports a finding and
    returns ``complete=False``.
    """
    count = 0
    pos = 0
    for op, arg, at in pickletools.genops(stream):
        pos = at or 0
        if op.name == "GLOBAL":
            ctx.add(PICKLE_GLOBAL.finding(location.at(offset=pos), "imports",
                                          evidence=str(arg).replace(" ", ".")))
        if op.name == "STOP":
            count += 1
    return PickleStreamResult(count, pos + 1, True)


class PickleScanner(Scanner):
    name = "pickle"
    priority = 500

    def sniff(self, source: Source) -> bool:
        head = source.head(2)
        return len(head) == 2 and head[0] == 0x80 and 0 < head[1] <= 5

    def scan(self, source: Source, ctx: ScanContext) -> None:
        ctx.examined(source.location, self.name)
        with source.open() as f:
            scan_pickle_stream(f, source.location, ctx)
