"""``mlward query`` and the dashboard's query box: one CEL expression over the inventory, in
the same language and over the same input document the gate's policies read.

The document is the gate's (:func:`~mlward._internal.policy.document.build_document`) for
each project's newest scan report, with the collections of every project put together (each
item gains ``project``: the name it is filed under) and ``projects`` listing the projects.
The expression sees each collection by name (``models``, ``findings``, ``notebooks``,
``dependencies``, ``bom``, ``projects``) and the whole document as ``input``; a list of
objects becomes rows, anything else one row holding ``value``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from mlward._internal.policy.cel import cel_error_reason, load_celpy
from mlward._internal.policy.document import COLLECTIONS, CheckRun, build_document
from mlward.errors import UsageError
from mlward.findings import Report

MAX_EXPRESSION = 4096
MAX_ROWS = 10_000


class QueryError(UsageError):
    """The expression does not compile or cannot be evaluated."""


class QueryResult(NamedTuple):
    columns: list[str]
    rows: list[dict[str, Any]]
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "truncated": self.truncated}


def inventory_document(reports: Iterable[tuple[str, str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The query document of ``(project, root, report JSON)`` triples."""
    data: dict[str, Any] = {"version": 1, "projects": []}
    names = [c for c in COLLECTIONS if c != "project"]
    for c in names:
        data[c] = []
    for name, root, body in reports:
        report = Report.from_dict(body)
        finished = report.finished or datetime.now(timezone.utc)
        doc = build_document([CheckRun("scan", report)], root=Path(root or name),
                             time=finished, params={}, git={})
        data["projects"].append({**doc.data["project"], "name": name})
        for c in names:
            data[c] += [{**item, "project": name} if isinstance(item, dict) else item
                        for item in doc.data.get(c) or ()]
    return data


def run_query(expression: str, document: Mapping[str, Any]) -> QueryResult:
    """Evaluate ``expression`` over ``document``; :class:`QueryError` says why it cannot."""
    celpy = load_celpy()
    expression = expression.strip()
    if not expression:
        raise QueryError("give a CEL expression, e.g. models.filter(m, m.pickle)")
    if len(expression) > MAX_EXPRESSION:
        raise QueryError(f"the expression is longer than {MAX_EXPRESSION} characters")
    env = celpy.Environment(runner_class=celpy.CompiledRunner)
    try:
        program = env.program(env.compile(expression))
    except celpy.CELParseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        raise QueryError(f"CEL does not compile: {first}") from None
    except Exception as exc:
        raise QueryError(f"CEL does not compile: {exc}") from None
    whole = celpy.json_to_cel(dict(document))
    activation = {k: whole[k] for k in whole}
    activation["input"] = whole
    try:
        value = program.evaluate(activation)
    except celpy.CELEvalError as exc:
        raise QueryError(f"CEL error: {cel_error_reason(exc)}") from None
    except (TypeError, ValueError, KeyError, ArithmeticError, RecursionError) as exc:
        raise QueryError(f"CEL error: {type(exc).__name__}: {exc}") from None
    if isinstance(value, celpy.CELEvalError):
        raise QueryError(f"CEL error: {cel_error_reason(value)}")
    return _rows(json.loads(celpy.CELJSONEncoder().encode(value)))


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def _rows(value: Any) -> QueryResult:
    items = value if isinstance(value, list) else [value]
    truncated = len(items) > MAX_ROWS
    items = items[:MAX_ROWS]
    if items and all(isinstance(i, dict) for i in items):
        columns = list(dict.fromkeys(k for i in items for k in i))
        return QueryResult(columns, [{k: _cell(i.get(k)) for k in columns} for i in items],
                           truncated)
    return QueryResult(["value"], [{"value": _cell(i)} for i in items], truncated)
