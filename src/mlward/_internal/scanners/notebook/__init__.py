"""Jupyter notebooks: secrets and personal data in every cell, output, attachment and
metadata field; unsafe ML code and shell magics in code cells; declared dependencies.

Locations are 1-based: ``cell 3, output 1, line 2`` is the third cell's first output's
second line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.sources import Source
from mlward.errors import FormatError, MissingExtra
from mlward.findings import Location
from mlward.rules import NOTEBOOK_MALFORMED

if TYPE_CHECKING:
    from mlward._internal.scanners.code import CodeUnit
    from mlward._internal.scanners.notebook.read import Walk

# The reader and the code analysis load when a notebook is found: every scan imports this
# module to sniff, few scans meet a notebook.

_HEAD = re.compile(rb'\A(?:\xef\xbb\xbf)?\s*\{\s*"(?:cells|worksheets|metadata|nbformat'
                   rb'|nbformat_minor)"\s*:')

__all__ = ["NotebookScanner", "notebook_requirements"]


def notebook_requirements(path: str | Path) -> list[str]:
    """Packages a notebook (or Python/Jupytext script) installs with ``%pip``/``!pip``/
    ``!conda install`` lines, in order, without duplicates. Raises :class:`FormatError` for
    a file that is not a readable notebook.
    """
    from mlward._internal.scanners.code import check_shell, python_requirements, split_magics
    from mlward._internal.scanners.notebook.read import MAX_NOTEBOOK_BYTES, load_notebook, walk

    p = Path(path)
    raw = p.read_bytes()[:MAX_NOTEBOOK_BYTES + 1]
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise FormatError(f"larger than {MAX_NOTEBOOK_BYTES} bytes")
    if not _HEAD.match(raw[:4096]):
        return list(dict.fromkeys(python_requirements(raw.decode("utf-8", "replace"))))
    parts = walk(load_notebook(raw)).parts
    reqs = [r for part in parts if part.kind == "code"
            for _, cmd in split_magics(part.text).shell for r in check_shell(cmd).requirements]
    return list(dict.fromkeys(reqs))


class NotebookScanner(Scanner):
    name = "notebook"
    priority = 300
    covers = frozenset({"text"})  # secrets are part of the notebook scan

    def sniff(self, source: Source) -> bool:
        head = source.head()
        return source.name.lower().endswith(".ipynb") or (
            bool(_HEAD.match(head))
            and any(k in head for k in (b'"cells"', b'"worksheets"', b'"nbformat"')))

    def scan(self, source: Source, ctx: ScanContext) -> None:
        from mlward._internal.scanners.notebook.read import MAX_NOTEBOOK_BYTES, load_notebook, walk

        loc = source.location
        if source.size is not None and source.size > MAX_NOTEBOOK_BYTES:
            ctx.examined(loc, self.name)
            ctx.skip(loc, f"notebook larger than {MAX_NOTEBOOK_BYTES} bytes not examined",
                     inconclusive=True)
            return
        from mlward._internal.scanners.secrets.detect import require_engine
        from mlward._internal.scanners.secrets.report import baseline_for, report_secrets

        with source.open() as f:
            raw = f.read(MAX_NOTEBOOK_BYTES + 1)
        ctx.examined(loc, self.name)
        allowed = baseline_for(source.fs_path)
        try:
            require_engine()
            nb = load_notebook(raw)
        except MissingExtra as exc:
            ctx.skip(loc, f"notebook not examined: {exc}", inconclusive=True)
            return
        except FormatError as exc:
            ctx.add(NOTEBOOK_MALFORMED.finding(
                loc.at(offset=exc.offset), f"not a readable notebook: {exc}"))
            ctx.skip(loc, "unreadable notebook: plain-text secrets pass only",
                     inconclusive=True)
            report_secrets(ctx, raw.decode("utf-8", "replace"), loc, where="unreadable notebook",
                           allowed=allowed, syntax="text")
            return
        _scan_parts(walk(nb), loc, ctx, allowed)


_SYNTAX = {"code": "code", "metadata": "config"}
"""How each part's text is read for secrets; outputs, markdown, raw cells: ``text``."""


def _scan_parts(found: Walk, loc: Location, ctx: ScanContext, allowed: frozenset[str]) -> None:
    from mlward._internal.scanners.code import report_code, report_requirements, split_magics
    from mlward._internal.scanners.secrets.report import report_pii, report_secrets

    ctx.fact(loc, "notebook", cells=found.cells, outputs=found.outputs)
    units: list[tuple[Location, CodeUnit]] = []
    for part in found.parts:
        where = loc.at(cell=part.cell, output=part.output)
        report_secrets(ctx, part.text, where, where=part.where, allowed=allowed,
                       syntax=_SYNTAX.get(part.kind, "text"))
        if part.kind == "code":
            units.append((where, split_magics(part.text)))
        elif part.kind in {"output", "markdown", "raw", "attachment"}:
            report_pii(ctx, part.text, where, where=part.where)
    result = report_code(ctx, units)
    if result.unparsed:
        cells = ", ".join(str(u.cell) for u in result.unparsed[:10])
        ctx.skip(loc, f"code rules not applied to {len(result.unparsed)} cell(s) that are not "
                 f"valid Python (cell {cells})", inconclusive=False)
    report_requirements(ctx, loc, result.requirements, "notebook")
    if found.images:
        ctx.skip(loc, f"{found.images} image output(s)/attachment(s) not examined (images)",
                 inconclusive=False)
