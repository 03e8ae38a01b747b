"""``mlward bom diff``: what changed between two inventories, as findings.

Components are matched by ``ref``; a library whose version changed has a new ref, so it is
matched by name (``pkg:pypi/<name>``) before being called added or removed. Each difference is
a finding of the MW76x rules on the component's location, so the report's formats, exit codes
and ledger recording are those of every other command.
"""

from __future__ import annotations

from collections.abc import Iterator

from mlward._internal.bom.inventory import Component, Inventory
from mlward.findings import Finding, Location, Severity
from mlward.rules import (
    BOM_COMPONENT_ADDED,
    BOM_COMPONENT_REMOVED,
    BOM_DIGEST_CHANGED,
    BOM_LICENSE_CHANGED,
    BOM_NEW_VULNERABILITY,
    BOM_VERDICT_CHANGED,
    BOM_VERSION_CHANGED,
)

_VERDICTS = ("clean", "suspicious", "inconclusive", "dangerous")


def _key(c: Component) -> str:
    """The identity that survives a version change (libraries, hub models, services)."""
    if c.kind == "library":
        return f"library:{c.name}"
    if c.kind == "model-source":
        return c.ref.rsplit("@", 1)[0]
    return c.ref


def _where(c: Component) -> Location:
    return Location(c.location or c.ref)


def diff(old: Inventory, new: Inventory) -> list[Finding]:
    """Findings for every difference from ``old`` to ``new``."""
    before = {_key(c): c for c in old.components}
    after = {_key(c): c for c in new.components}
    findings: list[Finding] = []
    for key in sorted(after.keys() - before.keys()):
        c = after[key]
        findings.append(BOM_COMPONENT_ADDED.finding(
            _where(c), f"{c.kind} {c.name}{_version(c)} added", evidence=c.ref,
            details={"ref": c.ref, "kind": c.kind}))
        findings += _vulnerabilities(None, c)
    for key in sorted(before.keys() - after.keys()):
        c = before[key]
        findings.append(BOM_COMPONENT_REMOVED.finding(
            _where(c), f"{c.kind} {c.name}{_version(c)} removed", evidence=c.ref,
            details={"ref": c.ref, "kind": c.kind}))
    for key in sorted(before.keys() & after.keys()):
        findings += list(_changes(before[key], after[key]))
    return findings


def _version(c: Component) -> str:
    return f" {c.version}" if c.version else ""


def _changes(a: Component, b: Component) -> Iterator[Finding]:
    where = _where(b)
    if a.version != b.version:
        yield BOM_VERSION_CHANGED.finding(
            where, f"{b.kind} {b.name}: version {a.version or '(none)'} -> "
            f"{b.version or '(none)'}", evidence=f"{b.name}@{b.version}",
            details={"ref": b.ref, "old": a.version, "new": b.version})
    old_files = {f.path: f.digests.get("sha256") for f in a.files}
    new_files = {f.path: f.digests.get("sha256") for f in b.files}
    for path in sorted(old_files.keys() | new_files.keys()):
        before, after = old_files.get(path), new_files.get(path)
        if before == after:
            continue
        what = ("added" if before is None else "removed" if after is None
                else "content changed")
        yield BOM_DIGEST_CHANGED.finding(
            Location(path), f"{b.kind} {b.name}: {path} {what}", evidence=f"{path}:{after}",
            details={"ref": b.ref, "old": before, "new": after})
    if (a.license or None) != (b.license or None):
        yield BOM_LICENSE_CHANGED.finding(
            where, f"{b.kind} {b.name}: license {a.license or '(none)'} -> "
            f"{b.license or '(none)'}", evidence=f"{b.ref}:{b.license}",
            details={"ref": b.ref, "old": a.license, "new": b.license})
    if a.verdict != b.verdict and b.verdict is not None:
        worse = _rank(b.verdict) > _rank(a.verdict)
        yield BOM_VERDICT_CHANGED.finding(
            where, f"{b.kind} {b.name}: scan verdict {a.verdict or '(none)'} -> {b.verdict}",
            evidence=f"{b.ref}:{b.verdict}", severity=Severity.HIGH if worse else Severity.LOW,
            details={"ref": b.ref, "old": a.verdict, "new": b.verdict})
    yield from _vulnerabilities(a, b)


def _rank(verdict: str | None) -> int:
    return _VERDICTS.index(verdict) if verdict in _VERDICTS else -1


def _vulnerabilities(a: Component | None, b: Component) -> list[Finding]:
    known = {v.id for v in a.vulnerabilities} if a else set()
    out = []
    for v in b.vulnerabilities:
        if v.id in known:
            continue
        try:
            severity = Severity.parse(v.severity or "high")
        except ValueError:
            severity = Severity.HIGH
        out.append(BOM_NEW_VULNERABILITY.finding(
            _where(b), f"{b.name}{_version(b)}: {v.id} {v.summary}".strip(),
            evidence=f"{b.ref}:{v.id}", severity=severity,
            details={"ref": b.ref, "id": v.id, "aliases": list(v.aliases)}))
    return out
