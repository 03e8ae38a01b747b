"""Reading notebooks: bounded JSON parsing, v1-v3 upgraded through nbformat, and a defensive
walk over every piece of text a notebook holds (sources, outputs, attachments, metadata).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlward.errors import FormatError, MissingExtra

MAX_NOTEBOOK_BYTES = 64 << 20

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TEXT_MIME = re.compile(r"^(?:text/|application/(?:json|javascript|x-latex|xml)|.*\+json$)")
"""Attachment types read as text; everything else in an attachment is counted as an image."""
_IMAGE_MIME = re.compile(r"^(?:image/|application/pdf)")


def load_notebook(raw: bytes) -> dict[str, Any]:
    """The notebook as a v4 dict. Raises :class:`FormatError` for anything else.

    JSON is parsed here (bounded by the caller's size cap; deep nesting is an error, not a
    crash); notebooks before v4 are upgraded with nbformat's own converter.
    """
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                          offset=exc.pos) from None
    except (RecursionError, ValueError) as exc:
        raise FormatError(f"invalid JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict) or "nbformat" not in data \
            or not ("cells" in data or "worksheets" in data):
        raise FormatError("JSON without the nbformat and cells/worksheets keys of a notebook")
    major = data.get("nbformat")
    if not isinstance(major, int) or isinstance(major, bool) or not 1 <= major <= 4:
        raise FormatError(f"unsupported nbformat version {major!r}")
    if major < 4:
        try:
            import nbformat as _nbformat
        except ImportError:
            raise MissingExtra("nbformat", "notebook") from None
        nbformat: Any = _nbformat  # partially typed library
        try:
            data = dict(nbformat.convert(nbformat.from_dict(data), 4))
        except Exception as exc:  # nbformat's converters raise anything on broken input
            raise FormatError(f"nbformat v{major} notebook could not be read: "
                              f"{type(exc).__name__}: {exc}") from None
    if not isinstance(data.get("cells"), list):
        raise FormatError("notebook without a list of cells")
    return data


def text_of(value: Any) -> str:
    """Notebook multiline text: a string or a list of strings; JSON data as indented JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    if value is None:
        return ""
    try:
        return json.dumps(value, indent=1, sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError):
        return ""


@dataclass(frozen=True)
class Part:
    """One piece of text in a notebook and where it is (cell and output are 1-based)."""

    kind: str
    """``code``, ``markdown``, ``raw``, ``output``, ``attachment``, ``metadata``."""
    text: str
    where: str
    cell: int | None = None
    output: int | None = None


@dataclass
class Walk:
    parts: list[Part] = field(default_factory=list)
    images: int = 0
    cells: int = 0
    outputs: int = 0
    """Outputs saved in code cells (a notebook committed with outputs can leak data)."""


def walk(nb: dict[str, Any]) -> Walk:
    """Every text part of a v4 notebook; images are counted, not read."""
    result = Walk()
    cells = nb.get("cells")
    for index, cell in enumerate(cells if isinstance(cells, list) else [], 1):
        if isinstance(cell, dict):
            result.cells += 1
            _cell(cell, index, result)
    meta = nb.get("metadata")
    if isinstance(meta, dict) and meta:
        result.parts.append(Part("metadata", text_of(meta), "notebook metadata"))
    return result


def _cell(cell: dict[str, Any], index: int, result: Walk) -> None:
    ctype = cell.get("cell_type")
    kind = ctype if ctype in {"code", "markdown", "raw"} else "raw"
    result.parts.append(Part(kind, text_of(cell.get("source")), f"cell {index} ({kind} source)",
                             index))
    attachments = cell.get("attachments")
    if isinstance(attachments, dict):
        for name, bundle in attachments.items():
            for mime, data in (bundle.items() if isinstance(bundle, dict) else ()):
                if _TEXT_MIME.match(str(mime)):
                    result.parts.append(Part("attachment", text_of(data),
                                             f"cell {index} attachment {name} ({mime})", index))
                else:
                    result.images += 1
    meta = cell.get("metadata")
    if isinstance(meta, dict) and meta:
        result.parts.append(Part("metadata", text_of(meta), f"cell {index} metadata", index))
    outputs = cell.get("outputs")
    for number, out in enumerate(outputs if isinstance(outputs, list) else [], 1):
        if isinstance(out, dict):
            result.outputs += 1
            for label, text in output_texts(out, result):
                result.parts.append(Part("output", text,
                                         f"cell {index} output {number} ({label})",
                                         index, number))


def output_texts(out: dict[str, Any], result: Walk | None = None) -> Iterator[tuple[str, str]]:
    """(label, text) of each text an output holds; images are counted in ``result``."""
    otype = out.get("output_type")
    if otype == "stream":
        yield f"stream {out.get('name', 'stdout')}", text_of(out.get("text"))
    elif otype == "error":
        trace = out.get("traceback")
        lines = [v for v in trace if isinstance(v, str)] if isinstance(trace, list) else []
        body = f"{text_of(out.get('ename'))}: {text_of(out.get('evalue'))}\n" + "\n".join(lines)
        yield "error traceback", _ANSI.sub("", body)
    else:
        data = out.get("data")
        for mime, value in (data.items() if isinstance(data, dict) else ()):
            if _IMAGE_MIME.match(str(mime)):
                if result is not None:
                    result.images += 1
            else:
                yield str(mime), text_of(value)
