"""What changed between two snapshots, and who the ledger says changed it.

Files are compared as manifests are (:func:`mlward._internal.provenance.manifest.diff`: added,
removed, modified, and renamed when the same content appears at a new path), each with its kind;
findings by fingerprint (new, fixed); the BOM by component; the gate by verdict; the steps by
status. :func:`attribute` then asks the ledger's forensic index, for each changed file, which
entries between the two snapshots name its path or either digest: who, where and when.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mlward._internal.audit.snapshot import FindingRecord, Snapshot
from mlward._internal.ledger.store import SNAPSHOT_ACTION
from mlward._internal.provenance.manifest import diff as diff_entries

if TYPE_CHECKING:
    from mlward._internal.ledger import Ledger



@dataclass(frozen=True)
class Attribution:
    """A ledger entry that names a changed file: who, where and when."""

    index: int
    time: str
    actor: str
    host: str
    action: str
    cwd: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "time": self.time, "actor": self.actor,
                "host": self.host, "action": self.action, "cwd": self.cwd}

    def __str__(self) -> str:
        return f"{self.action} by {self.actor}@{self.host} at {self.time[:19]}Z (entry " \
               f"{self.index})"


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # added, removed, modified, renamed
    kind: str
    previous: str | None = None  # the old path of a renamed file
    old: str | None = None  # digest before (label:hex)
    new: str | None = None  # digest after
    who: tuple[Attribution, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "kind": self.kind,
                "from": self.previous, "old": self.old, "new": self.new,
                "who": [w.to_dict() for w in self.who]}

    def __str__(self) -> str:
        what = f"{self.previous} -> {self.path}" if self.previous else self.path
        return f"{self.status:<9} {self.kind:<6} {what}"


@dataclass(frozen=True)
class SnapshotDiff:
    before: str
    after: str
    before_time: str
    after_time: str
    files: tuple[FileChange, ...]
    new_findings: tuple[FindingRecord, ...]
    fixed_findings: tuple[FindingRecord, ...]
    bom: Mapping[str, Any] | None = None
    gate: tuple[str | None, str | None] = (None, None)
    steps: tuple[tuple[str, str, str], ...] = ()
    attributed: bool = field(default=False, compare=False)

    @property
    def empty(self) -> bool:
        return not (self.files or self.new_findings or self.fixed_findings or self.bom
                    or self.gate[0] != self.gate[1] or self.steps)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.files:
            out[c.status] = out.get(c.status, 0) + 1
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"before": {"snapshot": self.before, "time": self.before_time},
                "after": {"snapshot": self.after, "time": self.after_time},
                "files": [c.to_dict() for c in self.files],
                "findings": {"new": [f.to_dict() for f in self.new_findings],
                             "fixed": [f.to_dict() for f in self.fixed_findings]},
                "bom": None if self.bom is None else dict(self.bom),
                "gate": {"before": self.gate[0], "after": self.gate[1]},
                "steps": [{"name": n, "before": a, "after": b} for n, a, b in self.steps]}


def diff_snapshots(a: Snapshot, b: Snapshot, a_id: str, b_id: str) -> SnapshotDiff:
    old = {f.path: f for f in a.files}
    new = {f.path: f for f in b.files}
    files = []
    for c in diff_entries(a.files, b.files):
        before = old.get(c.previous or c.path)
        after = new.get(c.path)
        known = after or before
        kind = known.kind if known is not None else "other"
        files.append(FileChange(c.path, c.status, kind, c.previous,
                                before.digest_ref if before else None,
                                after.digest_ref if after else None))
    seen_a = {f.fingerprint: f for f in a.findings if not f.suppressed}
    seen_b = {f.fingerprint: f for f in b.findings if not f.suppressed}
    steps_a = {s.name: s.status for s in a.steps}
    steps = tuple((s.name, steps_a.get(s.name, "absent"), s.status) for s in b.steps
                  if steps_a.get(s.name, "absent") != s.status)
    return SnapshotDiff(
        a_id, b_id, a.time, b.time, tuple(files),
        tuple(sorted(f for k, f in seen_b.items() if k not in seen_a)),
        tuple(sorted(f for k, f in seen_a.items() if k not in seen_b)),
        bom_drift(a.bom, b.bom),
        ((a.gate or {}).get("verdict"), (b.gate or {}).get("verdict")), steps)


def bom_drift(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) \
        -> dict[str, Any] | None:
    """Components added, removed or changed between two BOM summaries (None: no drift, or
    no BOM on one side)."""
    if a is None or b is None or a.get("digest") == b.get("digest"):
        return None

    def by_key(bom: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
        return {(str(c.get("type")), str(c.get("name"))): c
                for c in bom.get("components", []) if isinstance(c, dict)}

    old, new = by_key(a), by_key(b)
    return {"before": a.get("digest"), "after": b.get("digest"),
            "added": [f"{t} {n}" for t, n in sorted(new.keys() - old.keys())],
            "removed": [f"{t} {n}" for t, n in sorted(old.keys() - new.keys())],
            "changed": [f"{t} {n}" for t, n in sorted(old.keys() & new.keys())
                        if old[(t, n)] != new[(t, n)]]}


def attribute(d: SnapshotDiff, ledger: Ledger, root: str, after_index: int,
              before_index: int | None) -> SnapshotDiff:
    """``d`` with, for each changed file, the entries after ``before_index`` and before
    ``after_index`` that name its path (old or new) or either digest."""
    import json
    import posixpath

    from mlward._internal.ledger.refs import EMPTY_SHA256

    changes = []
    for c in d.files:
        paths = [posixpath.join(root, p) for p in (c.path, c.previous) if p]
        digests = [x for x in (c.old, c.new) if x and x != EMPTY_SHA256]
        hits = sorted({i for i, _ in ledger.store.find_refs(paths, digests)
                       if (before_index is None or i > before_index) and i < after_index})
        who = []
        for i, body in sorted(ledger.store.bodies(hits).items()):
            e = json.loads(body)
            if e.get("action") == SNAPSHOT_ACTION:
                continue
            where = e.get("details", {}).get("where")
            who.append(Attribution(i, e["time"], e["actor"], e["host"], e["action"],
                                   where.get("cwd") if isinstance(where, dict) else None))
        changes.append(replace(c, who=tuple(who)))
    return replace(d, files=tuple(changes), attributed=True)


def summary_lines(d: SnapshotDiff, limit: int = 20) -> list[str]:
    """A short text account of ``d`` (the audit's "since the last snapshot" part)."""
    lines: list[str] = []
    by_kind: dict[str, int] = {}
    for c in d.files:
        by_kind[c.kind] = by_kind.get(c.kind, 0) + 1
    if d.files:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(by_kind.items()))
        lines.append(f"{len(d.files)} file(s) changed ({kinds})")
        for c in d.files[:limit]:
            who = "; ".join(str(w) for w in c.who) if c.who else (
                "no ledger entry says who" if d.attributed else "")
            lines.append(f"  {c}" + (f"  [{who}]" if who else ""))
        if len(d.files) > limit:
            lines.append(f"  ... and {len(d.files) - limit} more (mlward audit diff)")
    if d.new_findings or d.fixed_findings:
        lines.append(f"findings: {len(d.new_findings)} new, {len(d.fixed_findings)} fixed")
        lines += [f"  new   {f.rule} {f.severity} {f.location}" for f in d.new_findings[:limit]]
        lines += [f"  fixed {f.rule} {f.severity} {f.location}"
                  for f in d.fixed_findings[:limit]]
    if d.bom:
        lines.append(f"BOM drift: {len(d.bom['added'])} added, {len(d.bom['removed'])} "
                     f"removed, {len(d.bom['changed'])} changed")
        lines += [f"  {what:<7} {c}" for what in ("added", "removed", "changed")
                  for c in d.bom[what][:limit]]
    if d.gate[0] != d.gate[1]:
        lines.append(f"gate: {d.gate[0] or 'not run'} -> {d.gate[1] or 'not run'}")
    lines += [f"step {name}: {a} -> {b}" for name, a, b in d.steps]
    return lines or ["no changes"]


def changed_refs(d: SnapshotDiff, root: str) -> list[tuple[str | None, str | None, str]]:
    """The forensic index rows a snapshot adds for the files that changed since the previous
    one: ``(absolute path, digest, role)``; a rename also names its old path."""
    import posixpath

    rows: list[tuple[str | None, str | None, str]] = []
    for c in d.files:
        path = posixpath.join(root, c.path)
        rows.append((path, c.new if c.status != "removed" else c.old, c.status))
        if c.previous:
            rows.append((posixpath.join(root, c.previous), c.old, "renamed-from"))
    return rows


def first_snapshot_refs(s: Snapshot) -> list[tuple[str | None, str | None, str]]:
    """For the first snapshot every file is new."""
    import posixpath

    return [(posixpath.join(s.root, f.path), f.digest_ref, "added") for f in s.files]
