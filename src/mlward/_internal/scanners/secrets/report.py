"""Reporting helpers: turn detector hits into findings, with allowlists and baselines."""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

from mlward._internal.scanners.interface import ScanContext
from mlward._internal.scanners.secrets.detect import SecretHit, find_secrets, fingerprint, mask
from mlward._internal.scanners.secrets.pii import PiiHit, find_pii, redact, severity_for
from mlward.findings import Location
from mlward.rules import PII_FOUND

BASELINE = Path(".mlward") / "secrets-baseline.json"
MAX_SAMPLES = 3

__all__ = [
    "BASELINE", "PiiHit", "SecretHit", "baseline_for", "find_pii", "find_secrets",
    "fingerprint", "mask", "redact", "report_pii", "report_secrets",
]


@lru_cache(maxsize=256)
def _baseline_in(directory: Path) -> frozenset[str]:
    for folder in (directory, *directory.parents):
        candidate = folder / BASELINE
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
                entries = data.get("allow", []) if isinstance(data, dict) else []
                return frozenset(str(e.get("fingerprint", "")) if isinstance(e, dict) else str(e)
                                 for e in entries)
            except (OSError, ValueError):
                return frozenset()
    return frozenset()


def baseline_for(path: Path | None) -> frozenset[str]:
    """Fingerprints allowed by the nearest ``.mlward/secrets-baseline.json`` above ``path``.

    The file holds ``{"allow": [{"fingerprint": "1a2b3c4d5e6f", "note": "..."}]}`` (plain
    strings are accepted too); fingerprints are the ``details.fingerprint`` of findings.
    """
    if path is None:
        return frozenset()
    # absolute, not resolve: no symbolic-link lookups per file (the cache keys on the folder)
    return _baseline_in(path.absolute().parent)


def report_secrets(ctx: ScanContext, text: str, location: Location, *, where: str,
                   allowed: frozenset[str] = frozenset(), syntax: str = "code",
                   line_offset: int = 0) -> list[SecretHit]:
    """Find secrets in ``text`` and report one finding each; returns the hits reported.

    ``location`` carries the cell/output; lines are relative to ``text`` plus ``line_offset``.
    """
    reported = []
    for hit in find_secrets(text, syntax=syntax):
        fp = hit.fingerprint
        if fp in allowed:
            continue
        reported.append(hit)
        details = {"kind": hit.kind, "fingerprint": fp}
        if hit.checked:
            details["checked"] = hit.checked
        ctx.add(hit.rule.finding(
            location.at(line=hit.line + line_offset, column=hit.column, cell=location.cell,
                        output=location.output),
            f"{hit.kind} in {where}", evidence=hit.evidence, severity=hit.severity,
            details=details))
    return reported


def report_pii(ctx: ScanContext, text: str, location: Location, *, where: str) -> list[PiiHit]:
    """Report personal data in ``text`` as one finding, counted by kind with redacted samples."""
    hits = find_pii(text)
    if not hits:
        return hits
    counts = Counter(h.kind for h in hits)
    samples: dict[str, list[str]] = {}
    for h in hits:
        bucket = samples.setdefault(h.kind, [])
        if len(bucket) < MAX_SAMPLES:
            bucket.append(h.sample)
    summary = ", ".join(f"{n} {kind}" + ("s" if n > 1 else "")
                        for kind, n in counts.most_common())
    ctx.add(PII_FOUND.finding(
        location.at(line=hits[0].line, cell=location.cell, output=location.output),
        f"personal data in {where}: {summary}", severity=severity_for(counts),
        evidence="; ".join(s for kind in counts for s in samples[kind]),
        details={"counts": dict(counts), "samples": samples}))
    return hits

