"""``mlward audit``: run the steps, take the snapshot, commit it to the ledger.

Order matters for the guarantees:

1. every step runs (a step that breaks is a finding and an incomplete snapshot, never a stop);
2. every tracked file is hashed (after the steps, so digests are as close as possible to the
   moment recorded; an unreadable file makes the snapshot incomplete, naming it);
3. the document is written atomically to ``.mlward/snapshots/<id>.json``;
4. one ledger entry (``audit.snapshot``, digest = the snapshot id) and the index rows of the
   files that changed are appended in one transaction, then a checkpoint is signed.

An audit killed before step 4 leaves at most a document that no ledger entry names: snapshots
are listed from the ledger, so it is never taken for a snapshot.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlward._internal.audit.diff import (
    SnapshotDiff,
    attribute,
    changed_refs,
    diff_snapshots,
    first_snapshot_refs,
)
from mlward._internal.audit.errors import AuditError
from mlward._internal.audit.snapshot import (
    FindingRecord,
    Snapshot,
    StepRecord,
    TrackedFile,
    classify,
    git_state,
    tools,
)
from mlward._internal.audit.steps import STEPS, AuditContext, StepOutcome, chosen_steps
from mlward._internal.ledger.store import SNAPSHOT_ACTION
from mlward._version import __version__
from mlward.findings import Location, Report, ReportBuilder, TargetKind
from mlward.settings import Settings

if TYPE_CHECKING:
    from mlward._internal.ledger import Entry, Ledger

SNAPSHOTS = "snapshots"
MAX_REASONS = 100


@dataclass(frozen=True)
class Recorded:
    """A snapshot as the ledger holds it: the entry that committed it and its document."""

    id: str
    entry: Entry

    @property
    def index(self) -> int:
        return self.entry.index


@dataclass(frozen=True)
class AuditResult:
    report: Report
    snapshot: Snapshot
    id: str
    entry: int
    checkpoint: str | None
    changes: SnapshotDiff | None
    exit_code: int


def snapshot_folder(project: Path) -> Path:
    """Where a project's snapshot documents live (``project`` is its ``.mlward`` folder)."""
    return project / SNAPSHOTS


def recorded(ledger: Ledger) -> list[Recorded]:
    """Every snapshot committed to the ledger, oldest first."""
    from mlward._internal.ledger import Entry

    out = []
    for body in ledger.store.snapshots():
        entry = Entry.from_bytes(body)
        sid = entry.event.digests.get("sha256")
        if isinstance(sid, str):
            out.append(Recorded(sid, entry))
    return out


def run_audit(root: Path, settings: Settings, ledger: Ledger, project: Path,
              steps: Sequence[str] | None = None) -> AuditResult:
    """Audit the project at ``root`` and record the snapshot (see the module docstring)."""
    from mlward._internal.walk import Walk

    started = datetime.now(timezone.utc)
    names, by_name = (list(steps), True) if steps is not None else chosen_steps(settings)
    walk = Walk(root, exclude=settings.exclude, ignore_files=settings.ignore_files,
                follow_symlinks=settings.follow_symlinks)
    items = list(walk.files([root]))
    ctx = AuditContext(root, settings, [i.uri for i in items])
    builder = ReportBuilder(TargetKind.REPOSITORY, started=started, version=__version__,
                            root=str(root), inputs=[str(root)])
    records, outcomes = _run_steps(ctx, names, by_name, builder)
    files, unreadable = track_files([i.path for i in items], ctx.files, ctx.scan, ctx.datasets)
    for path, reason in unreadable:
        builder.skip(Location(path), f"not recorded in the snapshot: {reason}",
                     inconclusive=True)
    history = recorded(ledger)
    previous = history[-1] if history else None
    prev_doc = _previous(project, previous, builder)
    report = builder.build(finished=datetime.now(timezone.utc))
    snapshot = make_snapshot(root, report, records, files, outcomes,
                             previous.id if previous else None)
    changes = None
    if prev_doc is not None and previous is not None:
        changes = attribute(diff_snapshots(prev_doc, snapshot, previous.id, snapshot.id),
                            ledger, str(root), ledger.size(), previous.index)
        extra = _unrecorded(changes)
        if extra:
            builder.merge(extra)
            report = builder.build(finished=datetime.now(timezone.utc))
            snapshot = make_snapshot(root, report, records, files, outcomes, previous.id)
            changes = replace(changes, after=snapshot.id)
    code = exit_code(report, snapshot, settings)
    sid = snapshot.id
    snapshot.write(snapshot_folder(project))
    refs = changed_refs(changes, str(root)) if changes is not None else \
        first_snapshot_refs(snapshot)
    entry = _commit(ledger, snapshot, sid, code, changes, refs)
    checkpoint = ledger.checkpoint() if ledger.signer is not None else None
    report = report._replace(stats={**report.stats, "audit": {
        "snapshot": sid, "entry": entry.index, "complete": snapshot.complete,
        "previous": snapshot.previous, "files": len(files),
        "steps": {r.name: r.status for r in records}}})
    return AuditResult(report, snapshot, sid, entry.index, checkpoint, changes, code)


AUDIT_RULES = frozenset({"MW780", "MW781", "MW782", "MW783"})
"""The audit's own findings: no gate policy sees them, so ``--fail-on`` judges them."""


def exit_code(report: Report, snapshot: Snapshot, settings: Settings) -> int:
    """With the gate step run: the gate's verdict on the checks it judges, together with
    ``--fail-on`` over the audit's own findings and the snapshot's completeness (1 before 2
    before 0). Without it: the report's exit code at ``--fail-on``."""
    gate = snapshot.gate
    if gate is None or "exitCode" not in gate:
        return report.exit_code(settings.fail_on)
    own = report._replace(findings=tuple(f for f in report.findings
                                         if f.rule_id in AUDIT_RULES))
    codes = {int(gate["exitCode"]), own.exit_code(settings.fail_on)}
    return 1 if 1 in codes else 2 if 2 in codes else 0


def _run_steps(ctx: AuditContext, names: Sequence[str], by_name: bool,
               builder: ReportBuilder) -> tuple[list[StepRecord], list[StepOutcome]]:
    from mlward.rules import AUDIT_STEP_FAILED

    records: list[StepRecord] = []
    outcomes: list[StepOutcome] = []
    for name in names:
        step = STEPS[name]()
        why = step.unavailable(ctx)
        if why is not None:
            records.append(StepRecord(name, "unavailable", why))
            if by_name:
                builder.skip(Location("."), f"audit step {name} was asked for but is "
                             f"unavailable: {why}", inconclusive=True)
            continue
        try:
            outcome = step.run(ctx)
        except Exception as exc:  # one broken check must not stop the audit
            message = f"audit step {name} failed: {type(exc).__name__}: {exc}"
            builder.add(AUDIT_STEP_FAILED.finding(Location("."), message))
            builder.skip(Location("."), message, inconclusive=True)
            records.append(StepRecord(name, "failed", f"{type(exc).__name__}: {exc}"))
            continue
        outcomes.append(outcome)
        report = outcome.report
        status, detail = "ok", ""
        if report is not None:
            builder.merge(report.findings, report.facts, report.skipped, report.examined)
            if report.inconclusive:
                status = "incomplete"
                detail = f"{len(report.inconclusive)} item(s) not examined"
            elif report.counted:
                status = "findings"
                detail = f"{len(report.counted)} finding(s)"
        records.append(StepRecord(name, status, detail, outcome.summary))
    return records, outcomes


def track_files(paths: Sequence[str], uris: Sequence[str], scan: Report | None = None,
                datasets: Sequence[str] = ()) -> tuple[list[TrackedFile], list[tuple[str, str]]]:
    """A :class:`TrackedFile` for every walked file (``paths`` on disk, ``uris`` relative to
    the root), hashed in parallel, with its kind (from the formats ``scan`` recognised, and
    the ``datasets`` folders manifests cover); and the files not recorded, with why."""
    import stat

    from mlward._internal.provenance.hashing import FileJob, HashSpec, hash_files

    formats: dict[str, str] = {}
    if scan is not None:
        for e in scan.examined:
            if not e.location.members:
                formats.setdefault(e.location.uri, e.format)
    spec = HashSpec()
    files: list[TrackedFile] = []
    jobs: list[tuple[str, FileJob]] = []
    unreadable: list[tuple[str, str]] = []
    for path, uri in zip(paths, uris, strict=True):
        if uri.startswith("file:"):
            continue  # outside the root (a link followed out of it)
        try:
            st = os.lstat(path)
        except OSError as exc:
            unreadable.append((uri, exc.strerror or str(exc)))
            continue
        kind = classify(uri, formats.get(uri), dataset=_under(uri, datasets))
        if stat.S_ISLNK(st.st_mode):
            files.append(TrackedFile(uri, "symlink", target=str(Path(path).readlink()),
                                     kind=kind))
        elif stat.S_ISREG(st.st_mode):
            jobs.append((uri, FileJob.of(path, st, spec.label_for(st.st_size))))
    failed: dict[int, Any] = {}
    digests = hash_files([j for _, j in jobs], failed=failed)
    for n, ((uri, job), digest) in enumerate(zip(jobs, digests, strict=True)):
        if n in failed:
            unreadable.append((uri, failed[n].diagnostics()))
            continue
        files.append(TrackedFile(uri, "file", job.size, {job.label: digest},
                                 kind=classify(uri, formats.get(uri),
                                               dataset=_under(uri, datasets))))
    return sorted(files), unreadable


def _under(uri: str, folders: Sequence[str]) -> bool:
    return any(f in (".", "") or uri == f or uri.startswith(f.rstrip("/") + "/")
               for f in folders)


def _previous(project: Path, previous: Recorded | None,
              builder: ReportBuilder) -> Snapshot | None:
    if previous is None:
        return None
    try:
        return Snapshot.load(snapshot_folder(project), previous.id)
    except AuditError as exc:
        builder.skip(Location("."), f"no comparison with the previous snapshot (entry "
                     f"{previous.index}): {exc.diagnostics()}", inconclusive=False)
        return None


def _unrecorded(changes: SnapshotDiff) -> list[Any]:
    from mlward.rules import AUDIT_UNRECORDED_CHANGE

    out = []
    for c in changes.files:
        if c.kind in ("model", "data") and not c.who:
            out.append(AUDIT_UNRECORDED_CHANGE.finding(
                Location(c.path), f"{c.kind} file {c.status} since the previous audit "
                f"({changes.before_time[:19]}Z) and no ledger entry says who changed it",
                evidence=f"{c.status} {c.old or '-'} -> {c.new or '-'}",
                details=c.to_dict()))
    return out


def make_snapshot(root: Path, report: Report, records: Sequence[StepRecord],
                  files: Sequence[TrackedFile], outcomes: Sequence[StepOutcome],
                  previous: str | None) -> Snapshot:
    from mlward._internal.ledger.entry import current_actor, utc_now

    reasons = [f"{s.location.container_path}: {s.reason}" for s in report.inconclusive]
    if len(reasons) > MAX_REASONS:
        reasons = [*reasons[:MAX_REASONS], f"... and {len(reasons) - MAX_REASONS} more"]
    bom = next((o.bom for o in outcomes if o.bom is not None), None)
    gate = next((o.gate for o in outcomes if o.gate is not None), None)
    return Snapshot(
        created={"time": utc_now(), "user": current_actor(), "host": socket.gethostname(),
                 "cwd": str(Path.cwd()), "tool": f"mlward {__version__}"},
        root=str(root), git=git_state(root), tools=tools(), steps=tuple(records),
        files=tuple(files),
        findings=tuple(sorted(FindingRecord(f.fingerprint, f.rule_id, f.severity.label,
                                            f.location.container_path,
                                            f.suppression is not None)
                              for f in report.findings)),
        previous=previous, bom=bom, gate=gate, incomplete=tuple(reasons))


def _commit(ledger: Ledger, snapshot: Snapshot, sid: str, code: int,
            changes: SnapshotDiff | None,
            refs: Sequence[tuple[str | None, str | None, str]]) -> Entry:
    from mlward._internal.ledger import Event
    from mlward._internal.ledger.refs import Ref, here

    counts: dict[str, int] = {}
    for f in snapshot.findings:
        if not f.suppressed:
            counts[f.severity] = counts.get(f.severity, 0) + 1
    outcome = "incomplete" if not snapshot.complete else {0: "pass", 1: "fail"}.get(
        code, "inconclusive")
    event = Event(action=SNAPSHOT_ACTION, resource=Path(snapshot.root).as_uri(),
                  outcome=outcome, digests={"sha256": sid}, details={
                      "where": here(), "snapshot": sid, "previous": snapshot.previous,
                      "complete": snapshot.complete, "files": len(snapshot.files),
                      "findings": dict(sorted(counts.items())), "exit_code": code,
                      "gate": (snapshot.gate or {}).get("verdict"),
                      "bom": (snapshot.bom or {}).get("digest"),
                      "changes": changes.counts() if changes is not None else None,
                      "git": dict(snapshot.git) if snapshot.git else None})
    (entry,) = ledger.append([event], [[Ref(*r) for r in refs]])
    return entry
