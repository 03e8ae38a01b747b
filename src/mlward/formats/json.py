"""The report as JSON: the data model as it is, one stable shape."""

from __future__ import annotations

import json

from mlward.findings import Report


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=False) + "\n"
