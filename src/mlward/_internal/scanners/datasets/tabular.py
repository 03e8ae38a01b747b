"""CSV/TSV and XLSX content: formula injection, DDE, and secrets or personal data in columns.

Cells are what matters here, not code: a cell starting with ``=``, ``+``, ``-`` or ``@``
followed by a function call becomes a live formula in the spreadsheet that opens the data (or
a report exported from it); a DDE formula starts a program. Every cell of the examined rows is
checked; secrets and personal data are looked for in a bounded sample of each column's values
(:data:`SAMPLE_ROWS`), with the column named in the finding. Files larger than
:data:`MAX_TABLE_BYTES` are checked on their first part and reported as not fully examined.

XLSX workbooks are read as what they are, a zip of XML parts (the archive helpers check the
zip; every other member is handed back to the engine): shared strings, inline strings and
formulas of each sheet, DDE external links and VBA projects.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mlward._internal.lazy import lazy_pattern
from mlward._internal.scanners.archive import is_zip
from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.sources import Source
from mlward._internal.sources.archives import Spool, too_deep, zip_names
from mlward.errors import MissingExtra
from mlward.findings import Location, Severity
from mlward.rules import (
    DATASET_MALFORMED,
    FORMULA_DDE,
    FORMULA_INJECTION,
    PII_IN_DATASET,
    WORKBOOK_MACROS,
)

if TYPE_CHECKING:  # the parsers load on the first table or workbook, not on every run
    import xml.etree.ElementTree as ET

    from mlward._internal.sources.zips import ZipArchive

MAX_TABLE_BYTES = 64 << 20
SAMPLE_ROWS = 1000
"""Non-empty values per column searched for secrets and personal data."""
MAX_CELL = 64 << 10
MAX_XML_BYTES = 256 << 20
MAX_EVIDENCE = 80
MAX_SAMPLED_COLUMNS = 1000
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".psv")

_FORMULA = lazy_pattern(r"^[\t\r ]*[=+\-@][\s(]*[A-Za-z_][\w.]*\s*\(")
_DDE = lazy_pattern(r"^[\t\r ]*[=+\-@].*\w+\|[^!]*!|^[\t\r ]*[=+\-@]?\s*DDE(AUTO)?\s*\(",
                    re.I | re.S)
_XLSX_DANGEROUS = lazy_pattern(r"\b(WEBSERVICE|CALL|REGISTER(\.ID)?|EXEC|DDE|DDEAUTO)\s*\(|"
                               r"\w+\|[^!]*!", re.I)
"""Formulas (written as formulas in a workbook) that reach outside the sheet."""


def _evidence(value: str) -> str:
    value = value.strip()
    return value if len(value) <= MAX_EVIDENCE else value[:MAX_EVIDENCE] + "…"


class _Column:
    """What one column's cells showed: formula and DDE counts, the first of each, a sample."""

    __slots__ = ("dde", "first_dde", "first_formula", "formulas", "sample")

    def __init__(self) -> None:
        self.formulas = 0
        self.dde = 0
        self.first_formula: tuple[int, str] | None = None
        self.first_dde: tuple[int, str] | None = None
        self.sample: list[tuple[int, str]] = []


class ColumnChecks:
    """Collects cells (column name, line, value) and reports per column."""

    def __init__(self) -> None:
        self.columns: dict[str, _Column] = {}

    def cell(self, column: str, line: int, value: str, *, formula: bool = False,
             header: bool = False) -> None:
        """A cell's text; ``formula`` when the workbook stores it as a formula; a ``header``
        cell is checked for formulas but is not a sampled value."""
        if not value:
            return
        col = self.columns.setdefault(column, _Column())
        if formula:
            dde = bool(_XLSX_DANGEROUS.search(value))
            injected = False
        else:
            dde = bool(_DDE.match(value))
            injected = not dde and bool(_FORMULA.match(value))
        if dde:
            col.dde += 1
            col.first_dde = col.first_dde or (line, value)
        elif injected:
            col.formulas += 1
            col.first_formula = col.first_formula or (line, value)
        if not formula and not header and len(col.sample) < SAMPLE_ROWS:
            col.sample.append((line, value[:MAX_CELL]))

    def report(self, loc: Location, ctx: ScanContext, where: str) -> None:
        for name, col in self.columns.items():
            for rule, first, count, what in (
                    (FORMULA_DDE, col.first_dde, col.dde, "hold a DDE or external-call formula"),
                    (FORMULA_INJECTION, col.first_formula, col.formulas,
                     "start with a formula")):
                if first is not None:
                    ctx.add(rule.finding(
                        loc.at(line=first[0]), f"{count} cell(s) of column {name!r} in {where} "
                        f"{what}", evidence=_evidence(first[1]),
                        details={"column": name, "cells": count}))
            if col.sample:
                _report_sample(name, col.sample, loc, ctx, where)


def _report_sample(name: str, sample: list[tuple[int, str]], loc: Location, ctx: ScanContext,
                   where: str) -> None:
    """Secrets (MW4xx) and personal data (MW962) in the column's sampled values."""
    from mlward._internal.scanners.secrets.detect import find_secrets
    from mlward._internal.scanners.secrets.pii import find_pii, severity_for

    lines = [line for line, _ in sample]
    text = "\n".join(v.replace("\n", " ").replace("\r", " ") for _, v in sample)
    try:
        secrets = find_secrets(text)
    except MissingExtra as exc:
        ctx.skip(loc, f"secrets pass not run on column {name!r}: {exc}", inconclusive=True)
        secrets = []
    for hit in secrets:
        ctx.add(hit.rule.finding(
            loc.at(line=lines[hit.line - 1]), f"{hit.kind} in column {name!r} of {where}",
            evidence=hit.evidence, details={"column": name, "kind": hit.kind,
                                            "fingerprint": hit.fingerprint}))
    pii = find_pii(text)
    if pii:
        counts = Counter(h.kind for h in pii)
        samples = sorted({h.sample for h in pii})[:3]
        summary = ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
        ctx.add(PII_IN_DATASET.finding(
            loc.at(line=lines[pii[0].line - 1]),
            f"column {name!r} of {where} holds personal data in {len(sample)} sampled "
            f"value(s): {summary}", evidence="; ".join(samples),
            severity=severity_for(counts),
            details={"column": name, "counts": dict(counts), "sampled": len(sample)}))


def sample_table(sql: str, loc: Location, ctx: ScanContext, where: str) -> None:
    """Check the first :data:`SAMPLE_ROWS` values of each text column of a table DuckDB reads
    (``sql`` is its table function). DuckDB parses the file itself and runs nothing in it."""
    try:
        import duckdb
    except ImportError:
        ctx.skip(loc, "column values not sampled for secrets and personal data: "
                 + MissingExtra("duckdb", "data").diagnostics(), inconclusive=False)
        return
    from mlward._internal.data.sql import ident

    con = duckdb.connect(":memory:")
    try:
        con.execute("SET memory_limit = '512MB'")
        con.execute("SET threads = 1")
        columns = [n for n, t, *_ in con.execute(f"DESCRIBE SELECT * FROM {sql}").fetchall()
                   if t == "VARCHAR"][:MAX_SAMPLED_COLUMNS]
        if not columns:
            return
        rows = con.execute(f"SELECT {', '.join(ident(c) for c in columns)} FROM {sql} "
                           f"LIMIT {SAMPLE_ROWS}").fetchall()
    except duckdb.Error as exc:
        ctx.skip(loc, f"column values could not be read: {str(exc).splitlines()[0]}",
                 inconclusive=True)
        return
    finally:
        con.close()
    checks = ColumnChecks()
    for number, row in enumerate(rows, 1):
        for column, value in zip(columns, row, strict=True):
            if value:
                checks.cell(column, number, str(value))
    checks.report(loc, ctx, where)


# -- CSV ---------------------------------------------------------------------------------


def _dialect(name: str, text: str) -> Any:
    import csv

    if name.lower().endswith((".tsv", ".tab")):
        return csv.excel_tab
    try:
        return csv.Sniffer().sniff(text[:64 << 10], delimiters=",;\t|")
    except csv.Error:
        return csv.excel


class CsvScanner(Scanner):
    """Delimited text tables (``.csv``, ``.tsv``; by name, then checked to be text)."""

    name = "csv"
    priority = 840  # after pickles (a pickle named .csv is a pickle), before Python and text
    covers = frozenset({"text"})  # secrets are looked for column by column

    def sniff(self, source: Source) -> bool:
        # Not valid UTF-8 is still a table (mixed encodings are reported); NUL bytes are not.
        return source.name.lower().endswith(TABLE_SUFFIXES) and b"\0" not in source.head()

    def scan(self, source: Source, ctx: ScanContext) -> None:
        loc = source.location
        ctx.examined(loc, self.name)
        with source.open() as f:
            raw = f.read(MAX_TABLE_BYTES + 1)
        if len(raw) > MAX_TABLE_BYTES:
            raw = raw[:raw.rfind(b"\n", 0, MAX_TABLE_BYTES) + 1]
            ctx.skip(loc, f"table larger than {MAX_TABLE_BYTES} bytes: only the first "
                     f"{len(raw)} bytes checked", inconclusive=True)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8", "replace")
            ctx.add(DATASET_MALFORMED.finding(
                loc.at(offset=exc.start), "table is not valid UTF-8 (mixed encodings?): "
                "checked with the bad bytes replaced", severity=Severity.LOW))
        import csv

        checks = ColumnChecks()
        try:
            ragged = self._read(text, _dialect(source.name, text), checks)
        except csv.Error as exc:
            ctx.add(DATASET_MALFORMED.finding(loc, f"table cannot be parsed: {exc}"))
            ctx.skip(loc, f"table cannot be parsed: {exc}", inconclusive=True)
            ragged = None
        if ragged:
            ctx.add(DATASET_MALFORMED.finding(
                loc.at(line=ragged[0]), f"{ragged[1]} row(s) do not have as many fields as "
                "the header (ragged rows): loaders drop, pad or shift them",
                severity=Severity.LOW, details={"rows": ragged[1]}))
        checks.report(loc, ctx, "the table")

    @staticmethod
    def _read(text: str, dialect: Any, checks: ColumnChecks) -> tuple[int, int] | None:
        """Feed every cell to ``checks``; returns (first line, count) of ragged rows."""
        import csv

        reader = csv.reader(io.StringIO(text, newline=""), dialect)
        header: list[str] = []
        ragged = 0
        first = 0
        for row in reader:
            line = reader.line_num
            if not header:
                header = [h.strip() or f"column {i + 1}" for i, h in enumerate(row)]
                for i, value in enumerate(row):
                    checks.cell(header[i], line, value, header=True)
                continue
            if len(row) != len(header):
                ragged += 1
                first = first or line
            for i, value in enumerate(row):
                checks.cell(header[i] if i < len(header) else f"column {i + 1}", line, value)
        return (first, ragged) if ragged else None


# -- XLSX --------------------------------------------------------------------------------

_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_CELL_REF = lazy_pattern(r"([A-Z]+)(\d+)")


def _iterparse(data: bytes) -> Iterator[ET.Element]:
    """Elements of an XML part as they end (expat refuses entity expansion bombs)."""
    import xml.etree.ElementTree as ET

    for _, elem in ET.iterparse(io.BytesIO(data), events=("end",)):
        yield elem


def _shared_strings(data: bytes) -> list[str]:
    out = []
    for elem in _iterparse(data):
        if elem.tag == f"{_NS}si":
            out.append("".join(t.text or "" for t in elem.iter(f"{_NS}t")))
            elem.clear()
    return out


def _sheet_cells(data: bytes, strings: list[str]) -> Iterable[tuple[str, int, str, bool]]:
    """(column letters, row, text, is formula) of every cell with content."""
    for elem in _iterparse(data):
        if elem.tag != f"{_NS}c":
            continue
        m = _CELL_REF.fullmatch(elem.get("r", ""))
        col, row = (m.group(1), int(m.group(2))) if m else ("?", 0)
        f = elem.find(f"{_NS}f")
        if f is not None and f.text:
            yield col, row, f.text, True
        kind = elem.get("t")
        v = elem.find(f"{_NS}v")
        if kind == "s" and v is not None and (v.text or "").isdigit():
            index = int(v.text or 0)
            if index < len(strings):
                yield col, row, strings[index], False
        elif kind == "inlineStr":
            yield col, row, "".join(t.text or "" for t in elem.iter(f"{_NS}t")), False
        elif kind == "str" and f is None and v is not None:
            yield col, row, v.text or "", False
        elem.clear()


class XlsxScanner(Scanner):
    """Excel workbooks (.xlsx, .xlsm): a zip holding ``xl/workbook.xml``."""

    name = "xlsx"
    priority = 35

    def sniff(self, source: Source) -> bool:
        names = zip_names(source) if is_zip(source) else None
        return names is not None and "xl/workbook.xml" in names

    def scan(self, source: Source, ctx: ScanContext) -> None:
        loc = source.location
        ctx.examined(loc, self.name)
        if too_deep(ctx, loc):
            return
        from mlward._internal.sources.zips import ZipArchive  # only a zip needs zipfile

        archive = ZipArchive.open(source, ctx)
        if archive is None:
            return
        import xml.etree.ElementTree as ET

        try:
            parts = {i.filename: i for i in archive.members}
            strings: list[str] = []
            if "xl/sharedStrings.xml" in parts:
                raw = self._part(archive, parts["xl/sharedStrings.xml"], loc, ctx)
                strings = _shared_strings(raw) if raw is not None else []
            for name, info in parts.items():
                if name == "xl/vbaProject.bin":
                    ctx.add(WORKBOOK_MACROS.finding(loc.child(name), "the workbook carries a "
                                                    "VBA project (macros)", evidence=name))
                if name.startswith("xl/worksheets/") and name.endswith(".xml"):
                    raw = self._part(archive, info, loc, ctx)
                    if raw is not None:
                        self._sheet(raw, strings, loc.child(name), ctx)
                elif name.startswith("xl/externalLinks/") and name.endswith(".xml"):
                    raw = self._part(archive, info, loc, ctx)
                    if raw is not None and b"ddeLink" in raw:
                        ctx.add(FORMULA_DDE.finding(loc.child(name), "the workbook declares a "
                                                    "DDE link to another program",
                                                    evidence=_dde_service(raw)))
                elif not name.endswith((".xml", ".rels")):
                    archive.dispatch_member(info)
        except (ET.ParseError, RecursionError) as exc:
            ctx.add(DATASET_MALFORMED.finding(loc, f"workbook XML is malformed: {exc}"))
            ctx.skip(loc, "workbook XML is malformed", inconclusive=True)
        finally:
            archive.close()

    @staticmethod
    def _part(archive: ZipArchive, info: Any, loc: Location, ctx: ScanContext) -> bytes | None:
        if info.file_size > MAX_XML_BYTES:
            if not archive.declared_problem(info):  # a bomb is reported as one
                ctx.skip(loc.child(info.filename), f"part larger than {MAX_XML_BYTES} bytes "
                         "not checked", inconclusive=True)
            return None
        with Spool() as spool:
            if not archive.extract(info, spool):
                return None
            with spool.open() as f:
                return f.read()

    @staticmethod
    def _sheet(raw: bytes, strings: list[str], loc: Location, ctx: ScanContext) -> None:
        header: dict[str, str] = {}
        checks = ColumnChecks()
        for col, row, text, formula in _sheet_cells(raw, strings):
            if row == 1 and not formula:
                header[col] = text.strip() or col
            checks.cell(header.get(col, col), row, text, formula=formula, header=row == 1)
        checks.report(loc, ctx, "the sheet")


def _dde_service(raw: bytes) -> str:
    m = re.search(rb'ddeService="([^"]{0,80})"[^>]*ddeTopic="([^"]{0,80})"', raw)
    return f"{m.group(1).decode(errors='replace')}|{m.group(2).decode(errors='replace')}" if m \
        else "ddeLink"
