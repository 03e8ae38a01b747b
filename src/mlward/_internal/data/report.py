"""A data diff as findings, facts and plain-text lines (for ``data diff``, ``lineage verify``
and the audit)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from mlward._internal.data.diff import DataDiff, DiffOptions, Thresholds, diff
from mlward._internal.data.tables import DataError, resolve
from mlward._version import __version__
from mlward.errors import MissingExtra
from mlward.findings import (
    Fact,
    Finding,
    Location,
    Report,
    ReportBuilder,
    Severity,
    TargetKind,
    Triage,
)
from mlward.rules import (
    COLUMN_SHIFT,
    CONFLICTING_DUPLICATES,
    DATA_CHANGED,
    LABEL_FLIP,
    LABEL_SHIFT,
    SCHEMA_CHANGED,
    TRIGGER_TOKEN,
)


def diff_findings(d: DataDiff, loc: Location, t: Thresholds) -> list[Finding]:
    """The findings a comparison warrants; ``loc`` is the new version."""
    out = [DATA_CHANGED.finding(loc, d.headline(), details={
        "added": d.added, "removed": d.removed, "changed": d.changed,
        "old_rows": d.old_rows, "new_rows": d.new_rows})]
    if d.flipped:
        pairs = ", ".join(f"{k}: {n}" for k, n in d.flips.items())
        out.append(LABEL_FLIP.finding(
            loc, f"{d.flipped} row(s) with identical features changed label ({pairs})",
            evidence=pairs, details={"rows": d.flipped, "flips": d.flips,
                                     "sample_keys": d.flip_keys}))
    if d.conflicts:
        out.append(CONFLICTING_DUPLICATES.finding(
            loc, f"{d.conflicts} group(s) of near-duplicate rows ({d.conflict_rows} rows) carry "
            "conflicting labels, new rows among them",
            details={"groups": d.conflicts, "rows": d.conflict_rows}))
    for trig in d.triggers:
        phrase = " ".join(trig.tokens)
        out.append(TRIGGER_TOKEN.finding(
            loc, f"{phrase!r} in column {trig.column!r} appears in {trig.rows} new row(s), "
            f"{trig.label_share:.0%} labelled {trig.label!r}; {trig.old_rows} old row(s) had it",
            evidence=phrase, details={"tokens": list(trig.tokens), "column": trig.column,
                                      "rows": trig.rows, "label": trig.label,
                                      "label_share": trig.label_share,
                                      "old_rows": trig.old_rows}))
    if d.label is not None and d.label_tvd > t.label_shift:
        out.append(LABEL_SHIFT.finding(
            loc, f"label distribution of {d.label!r} moved by {d.label_tvd:.1%} (total "
            f"variation)", details={"old": d.label_old, "new": d.label_new,
                                    "distance": d.label_tvd}))
    if d.dropped_columns:
        out.append(SCHEMA_CHANGED.finding(
            loc, f"column(s) dropped: {', '.join(d.dropped_columns)}",
            evidence=", ".join(d.dropped_columns), details={"dropped": d.dropped_columns}))
    if d.retyped_columns:
        text = ", ".join(f"{c} ({a} -> {b})" for c, a, b in d.retyped_columns)
        out.append(SCHEMA_CHANGED.finding(loc, f"column(s) retyped: {text}", evidence=text,
                                          details={"retyped": [list(x) for x in
                                                               d.retyped_columns]}))
    if d.added_columns:
        out.append(SCHEMA_CHANGED.finding(
            loc, f"column(s) added: {', '.join(d.added_columns)}", severity=Severity.LOW,
            evidence=", ".join(d.added_columns), details={"added": d.added_columns}))
    for s in d.shifts:
        out.append(COLUMN_SHIFT.finding(
            loc, f"{s.what} of column {s.column!r} moved from {s.old:g} to {s.new:g}",
            evidence=f"{s.column}: {s.what}",
            details={"column": s.column, "statistic": s.what, "old": s.old, "new": s.new}))
    return out


def summary_lines(d: DataDiff, t: Thresholds | None = None) -> list[str]:
    """The comparison in a few lines for people (lineage verify prints them)."""
    t = t or Thresholds()
    lines = [d.headline(), *d.notes]
    for f in diff_findings(d, Location(d.new), t)[1:]:
        lines.append(f"{f.severity.label.upper()} {f.rule_id} {f.message}")
    return lines


def snapshot_summary(snapshot: Path, current: Path, *, digest: str | None = None,
                     options: DiffOptions | None = None) -> list[str]:
    """The data diff between a recorded snapshot and the data ``current`` names (a file,
    folder, manifest or lineage statement) in lines for people. ``lineage verify`` prints it
    for each changed input, and the audit can call it the same way. Never raises: a diff that
    cannot be made is one line saying why."""
    import hashlib

    from mlward._internal.data.snapshot import Snapshot

    try:
        if digest is not None and hashlib.sha256(snapshot.read_bytes()).hexdigest() != digest:
            raise DataError(f"{snapshot} was changed after the lineage was recorded")
        result = diff(Snapshot.load(snapshot), resolve(current), options)
    except OSError as exc:
        return [f"data diff not available: cannot read {snapshot}: {exc.strerror or exc}"]
    except (DataError, MissingExtra) as exc:
        return [f"data diff not available: {exc.diagnostics()}"]
    return summary_lines(result, (options or DiffOptions()).thresholds)


def diff_report(old: Path, new: Path, options: DiffOptions, *, root: Path,
                triage: Triage | None = None) -> Report:
    """``data diff`` as a report: findings, a ``data-diff`` fact, or an inconclusive skip;
    ``triage`` applies waivers and baselines (:func:`mlward._internal.triage.make_triage`)."""
    from mlward.findings import local_uri

    started = datetime.now(timezone.utc)
    builder = ReportBuilder(TargetKind.DATASET, started=started, version=__version__,
                            root=str(root), inputs=[str(old), str(new)])
    old_loc, new_loc = Location(local_uri(old, root)), Location(local_uri(new, root))
    try:
        a, b = resolve(old), resolve(new)
        result = diff(a, b, options)
    except (DataError, MissingExtra) as exc:
        builder.skip(new_loc, f"datasets not compared: {exc.diagnostics()}", inconclusive=True)
    else:
        builder.examine(old_loc, f"dataset ({a.kind}, {len(a.files)} file(s))")
        builder.examine(new_loc, f"dataset ({b.kind}, {len(b.files)} file(s))")
        for f in diff_findings(result, new_loc, options.thresholds):
            builder.add(f)
        builder.fact(Fact(new_loc, "data-diff", {**result.to_dict(), "old_uri": old_loc.uri}))
        builder.stats.update({"old_rows": result.old_rows, "new_rows": result.new_rows})
    return builder.build(finished=datetime.now(timezone.utc), triage=triage)
