"""Geometry for the server-side SVG drawings (findings over time, the lineage graph). Only
numbers and the given values leave here: the templates draw them, autoescaped, so no SVG is
built by string concatenation of scanned text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlward._internal.inventory.documents import SEVERITIES

CHART_W, CHART_H, PAD = 320, 90, 6
NODE_W, NODE_H, COL_GAP, ROW_GAP = 180, 34, 70, 14


def chart(history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One polyline per severity over the reports in ``history`` (oldest first)."""
    peak = max((h["counts"][s] for h in history for s in SEVERITIES), default=0) or 1
    n = len(history)
    step = (CHART_W - 2 * PAD) / max(1, n - 1)

    def y(v: int) -> float:
        return round(CHART_H - PAD - (CHART_H - 2 * PAD) * v / peak, 1)

    lines = [{"severity": s, "points": " ".join(
        f"{round(PAD + i * step, 1)},{y(h['counts'][s])}" for i, h in enumerate(history))}
        for s in SEVERITIES if any(h["counts"][s] for h in history)]
    return {"width": CHART_W, "height": CHART_H, "peak": peak, "lines": lines, "reports": n}


def lineage(flows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Nodes and edges of data -> run -> model, in three columns, one band per run."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, float]] = []
    top = 0.0
    for flow in flows:
        ins, outs = list(flow["inputs"]), list(flow["outputs"])
        rows = max(len(ins), len(outs), 1)
        band = rows * (NODE_H + ROW_GAP)

        def column(items: list[Mapping[str, Any]], col: int, kind: str | None = None,
                   band: float = band, top: float = top) -> list[dict[str, Any]]:
            out = []
            first = top + (band - len(items) * (NODE_H + ROW_GAP)) / 2
            for i, item in enumerate(items):
                out.append({"x": col * (NODE_W + COL_GAP), "y": first + i * (NODE_H + ROW_GAP),
                            "label": item.get("name", ""), "kind": kind or item.get("kind"),
                            "location": item.get("location", "")})
            return out

        left = column(ins, 0)
        [run] = column([{"name": flow["run"], "location": flow.get("run_id") or ""}], 1, "run")
        right = column(outs, 2)
        for a in left:
            edges.append({"x1": a["x"] + NODE_W, "y1": a["y"] + NODE_H / 2,
                          "x2": run["x"], "y2": run["y"] + NODE_H / 2})
        for b in right:
            edges.append({"x1": run["x"] + NODE_W, "y1": run["y"] + NODE_H / 2,
                          "x2": b["x"], "y2": b["y"] + NODE_H / 2})
        nodes += [*left, run, *right]
        top += band + ROW_GAP
    return {"width": 3 * NODE_W + 2 * COL_GAP, "height": max(top, NODE_H), "nodes": nodes,
            "edges": edges, "node_w": NODE_W, "node_h": NODE_H}
