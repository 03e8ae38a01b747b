"""Waivers, inline waivers and baselines: what a team has already decided about findings.

Applied by every command's :class:`~mlward.findings.ReportBuilder` after fingerprinting:

- a **waiver** (``[[waivers]]`` in the settings) names a fingerprint, or a rule and optionally
  a path glob; it carries a reason, an owner and an expiry date. A waived finding stays in the
  report with its :class:`~mlward.findings.Suppression` and does not fail the run; once the
  date has passed the waiver no longer applies and is itself reported (MW002);
- an **inline waiver** is a comment on the finding's line or the line above it:
  ``# mlward: ignore[MW301] reason`` (several ids separated by commas; without ``[...]`` it
  waives every rule on that line) in code, notebooks' code cells and any text file;
- a **baseline** (``mlward baseline create``) lists the fingerprints of accepted findings:
  later runs mark those ``unchanged`` (not counted, hidden from text output unless ``--all``)
  and everything else ``new``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from mlward.errors import UsageError
from mlward.findings import Finding, Location, Report, Suppression, Triage
from mlward.rules import WAIVER_EXPIRED
from mlward.settings import Settings, Waiver

BASELINE_FORMAT = "mlward-baseline/1"
DEFAULT_BASELINE = Path(".mlward") / "baseline.json"
_INLINE = re.compile(r"mlward:\s*ignore(?:\[(?P<rules>[A-Za-z0-9_, ]*)\])?(?P<reason>[^\n]*)")
MAX_INLINE_FILE = 8 << 20


def make_triage(settings: Settings, root: Path | None, *,
                today: date | None = None) -> Triage:
    """The triage step for a report rooted at ``root`` (None: no local files, so no inline
    waivers)."""
    baseline = read_baseline(Path(settings.baseline)) if settings.baseline else None
    return _Triage(settings.waivers, baseline, root, today or date.today())


class _Triage:
    def __init__(self, waivers: Sequence[Waiver], baseline: frozenset[str] | None,
                 root: Path | None, today: date) -> None:
        self.waivers = waivers
        self.baseline = baseline
        self.root = root
        self.today = today
        self._lines: dict[str, list[str] | None] = {}

    def __call__(self, findings: list[Finding]) -> list[Finding]:
        out = []
        expired: dict[Waiver, int] = {}
        for f in findings:
            suppression = self._inline(f)
            if suppression is None:
                suppression, lapsed = apply_waivers(self.waivers, f.rule_id, f.fingerprint,
                                                    f.location.uri, self.today)
                for w in lapsed:
                    expired[w] = expired.get(w, 0) + 1
            baseline = None
            if self.baseline is not None:
                baseline = "unchanged" if f.fingerprint in self.baseline else "new"
            out.append(f._replace(suppression=suppression, baseline=baseline))
        from mlward.findings import fingerprint

        notices = fingerprint([WAIVER_EXPIRED.finding(
            Location(w.source), f"waiver expired on {w.expires}: {n} finding(s) of "
            f"{w.fingerprint or w.rule} count again", evidence=w.fingerprint or w.rule,
            details={"reason": w.reason, "owner": w.owner, "expires": w.expires})
            for w, n in expired.items()])
        return notices + out

    def _inline(self, f: Finding) -> Suppression | None:
        loc = f.location
        if loc.line is None or loc.members or not loc.is_local or self.root is None:
            return None
        lines = self._source_lines(loc)
        if lines is None:
            return None
        for number in (loc.line, loc.line - 1):
            if not 1 <= number <= len(lines):
                continue
            m = _INLINE.search(lines[number - 1])
            if m is None:
                continue
            rules = {r.strip().upper() for r in (m.group("rules") or "").split(",") if r.strip()}
            if m.group("rules") is not None and f.rule_id.upper() not in rules:
                continue
            reason = m.group("reason").strip(" :-#\t") or "waived inline"
            return Suppression("inline", reason, source=f"{loc.uri}:{number}")
        return None

    def _source_lines(self, loc: Location) -> list[str] | None:
        """The lines a finding's line number counts in: the file's, or a notebook cell's."""
        assert self.root is not None
        key = f"{loc.uri}#{loc.cell}"
        if key not in self._lines:
            self._lines[key] = _read_lines(self.root / loc.uri, loc.cell)
        return self._lines[key]


def _read_lines(path: Path, cell: int | None) -> list[str] | None:
    try:
        if path.stat().st_size > MAX_INLINE_FILE:
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if cell is None:
        return text.splitlines()
    try:  # a notebook: lines count inside the cell's source (cells are 1-based)
        cells = json.loads(text).get("cells", [])
        source = cells[cell - 1].get("source", "")
    except (ValueError, AttributeError, IndexError, TypeError, RecursionError):
        return None
    return ("".join(source) if isinstance(source, list) else str(source)).splitlines()


def apply_waivers(waivers: Sequence[Waiver], rule_id: str, fingerprint: str, uri: str,
                  today: date) -> tuple[Suppression | None, list[Waiver]]:
    """The suppression the first live waiver naming this item gives (None if none), and the
    expired waivers that name it before that one. Findings and gate violations (whose rule is
    a policy rule id) are waived the same way."""
    expired = []
    for w in waivers:
        if not _matches(w, rule_id, fingerprint, uri):
            continue
        if w.expires and date.fromisoformat(w.expires) < today:
            expired.append(w)
            continue
        return Suppression("waiver", w.reason, w.owner, w.expires, w.source), expired
    return None, expired


def _matches(w: Waiver, rule_id: str, fingerprint: str, uri: str) -> bool:
    if w.fingerprint:
        return bool(fingerprint == w.fingerprint)
    if w.rule and w.rule.upper() != rule_id.upper():
        return False
    if w.path:
        return fnmatch.fnmatchcase(uri, w.path) or uri.startswith(w.path.rstrip("/") + "/")
    return True


# --- baselines -----------------------------------------------------------------------------


def read_baseline(path: Path) -> frozenset[str]:
    """The fingerprints in a baseline file (UsageError when it cannot be used)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"baseline {path} does not exist "
                         "(create it with `mlward baseline create`)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the baseline {path}: {exc}") from None
    if not isinstance(data, Mapping) or data.get("format") != BASELINE_FORMAT or \
            not isinstance(data.get("findings"), list):
        raise UsageError(f"{path} is not an mlward baseline ({BASELINE_FORMAT})")
    return frozenset(str(item.get("fingerprint")) for item in data["findings"]
                     if isinstance(item, Mapping))


def baseline_document(report: Report) -> dict[str, Any]:
    """The baseline of a report: every finding that is not waived, by fingerprint, with
    enough context (rule, location, message) for a person reviewing the file."""
    return {
        "format": BASELINE_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tool": {"name": "mlward", "version": report.version},
        "findings": [{"fingerprint": f.fingerprint, "rule_id": f.rule_id,
                      "severity": f.severity.label, "location": f.location.container_path,
                      "message": f.message}
                     for f in report.findings if f.suppression is None],
    }


def write_baseline(report: Report, path: Path) -> int:
    from mlward.formats import write_output

    doc = baseline_document(report)
    write_output(json.dumps(doc, indent=2) + "\n", path, what="baseline")
    return len(doc["findings"])
