"""Python sources and Jupytext scripts: the scanner that recognises them.

The analysis (:mod:`mlward._internal.scanners.code`: an AST pass, shell magics, requirements)
loads on the first Python file, so that scans without one do not pay for it.
"""

from __future__ import annotations

from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.scanners.secrets.text import looks_like_text, read_text
from mlward._internal.sources import Source
from mlward.errors import MissingExtra


class PythonScanner(Scanner):
    """Python sources (``.py``, ``.pyw``, ``.ipy``, or a python shebang) and Jupytext scripts."""

    name = "python"
    priority = 850
    covers = frozenset({"text"})  # secrets are part of the Python scan

    def sniff(self, source: Source) -> bool:
        head = source.head()
        named = source.name.lower().endswith((".py", ".pyw", ".ipy"))
        shebang = head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]
        return (named or shebang) and looks_like_text(head)

    def scan(self, source: Source, ctx: ScanContext) -> None:
        from mlward._internal.scanners.code import (
            MAX_PYTHON_BYTES,
            CodeUnit,
            jupytext_cells,
            parse,
            report_code,
            report_requirements,
            split_magics,
        )
        from mlward._internal.scanners.secrets.report import baseline_for, report_secrets

        ctx.examined(source.location, self.name)
        if source.size is not None and source.size > MAX_PYTHON_BYTES:
            ctx.skip(source.location, f"Python file larger than {MAX_PYTHON_BYTES} bytes "
                     "not examined", inconclusive=True)
            return
        text = read_text(source, MAX_PYTHON_BYTES)
        cells = jupytext_cells(text)
        ipython = cells is not None or source.name.lower().endswith(".ipy")
        unit = CodeUnit(text)
        if ipython or parse(unit) is None:
            unit = split_magics(text, commented=cells is not None)
        cell_of_line = None
        if cells is not None:
            cell_of_line = {}
            for index, (start, body) in enumerate(cells, 1):
                for offset in range(body.count("\n") + 1):
                    cell_of_line[start + offset] = index
        result = report_code(ctx, [(source.location, unit)], cell_of_line)
        if result.unparsed:
            ctx.skip(source.location, "not valid Python: code rules not applied, secrets "
                     "pass only", inconclusive=False)
        report_requirements(ctx, source.location, result.requirements, "script")
        allowed = baseline_for(source.fs_path)
        try:
            if cells is None:
                report_secrets(ctx, text, source.location, where="Python source",
                               allowed=allowed)
            else:
                for index, (start, body) in enumerate(cells, 1):
                    report_secrets(ctx, body, source.location.at(cell=index),
                                   where=f"cell {index}", allowed=allowed,
                                   line_offset=start - 1)
        except MissingExtra as exc:
            ctx.skip(source.location, f"secrets pass not run: {exc}", inconclusive=True)
