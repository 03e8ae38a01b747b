"""Pickle-family models. PLACEHOLDER: to be replaced by the symbolic opcode machine."""

from __future__ import annotations

import pickletools

from mlward.findings import Severity
from mlward.rules import RULES, rule
from mlward.scanners.interface import ScanContext, Scanner
from mlward.sources import Source

PICKLE_GLOBAL = RULES.get("MW101") or rule(
    "MW101", "Pickle imports a callable", Severity.HIGH, "Do not load this file.")


class PickleScanner(Scanner):
    name = "pickle"
    priority = 500

    def sniff(self, source: Source) -> bool:
        head = source.head(2)
        return len(head) == 2 and head[0] == 0x80 and 0 < head[1] <= 5

    def scan(self, source: Source, ctx: ScanContext) -> None:
        ctx.examined(source.location, self.name)
        with source.open() as f:
            for op, arg, pos in pickletools.genops(f):
                if op.name == "GLOBAL":
                    ctx.add(PICKLE_GLOBAL.finding(source.location.at(offset=pos),
                                                  "imports", evidence=str(arg).replace(" ", ".")))
