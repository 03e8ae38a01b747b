"""From an engine's outcome to violations: which rule, which item, the findings behind it,
and whether a waiver or the baseline already covers it; and the gate's verdict."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from mlward._internal.policy.document import InputDocument, Subject
from mlward._internal.policy.engine import Engine
from mlward._internal.policy.model import Policy, PolicyRule
from mlward._internal.triage import apply_waivers
from mlward.findings import Skipped, Suppression
from mlward.settings import Waiver

EXIT_PASS = 0
EXIT_VIOLATION = 1
EXIT_BLIND = 2


@dataclass(frozen=True)
class Violation:
    rule: PolicyRule
    subject: Subject
    fingerprint: str
    """Identifies this rule's verdict on this item across runs (alerts send only new ones)."""
    suppression: Suppression | None = None
    baseline: str | None = None

    @property
    def counts(self) -> bool:
        """Whether it fails the gate: not waived, not unchanged since the baseline."""
        return self.suppression is None and self.baseline != "unchanged"

    @property
    def message(self) -> str:
        return f"{self.rule.title}: {self.subject.display}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule.id, "severity": self.rule.severity.label,
            "title": self.rule.title, "message": self.message,
            "fingerprint": self.fingerprint, "location": self.subject.location.to_dict(),
            "remediation": self.rule.remediation, "counts": self.counts,
            "findings": [f.fingerprint for f in self.subject.findings],
        }
        if self.suppression is not None:
            out["suppression"] = self.suppression.to_dict()
        if self.baseline is not None:
            out["baseline"] = self.baseline
        return out


@dataclass(frozen=True)
class RuleError:
    """A rule whose condition could not be evaluated on an item (or at all: subject None)."""

    rule: PolicyRule
    subject: Subject | None
    message: str


@dataclass(frozen=True)
class GateResult:
    policy: Policy
    engine: str
    violations: tuple[Violation, ...]
    errors: tuple[RuleError, ...]
    blind: tuple[tuple[str, Skipped], ...]
    """(check, what it could not examine)."""
    expired_waivers: tuple[Waiver, ...]
    checks: tuple[str, ...]
    root: str
    inputs: tuple[str, ...]
    started: datetime
    finished: datetime
    version: str
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The input document the policy read (``--write-input``)."""

    @property
    def counted(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.counts)

    @property
    def exit_code(self) -> int:
        """1 a violation counts; 2 nothing counts but the gate was blind somewhere (a check
        that could not examine something, a condition that could not be evaluated); 0 pass."""
        if self.counted:
            return EXIT_VIOLATION
        if self.errors or self.blind:
            return EXIT_BLIND
        return EXIT_PASS

    @property
    def verdict(self) -> str:
        return {EXIT_PASS: "pass", EXIT_VIOLATION: "fail"}.get(self.exit_code, "inconclusive")

    def by_rule(self) -> list[tuple[PolicyRule, list[Violation], list[RuleError]]]:
        """Every rule of the policy with its violations and errors, in policy order."""
        return [(r, [v for v in self.violations if v.rule.id == r.id],
                 [e for e in self.errors if e.rule.id == r.id]) for r in self.policy.rules]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "mlward-gate/1", "verdict": self.verdict, "exit_code": self.exit_code,
            "version": self.version, "engine": self.engine,
            "policy": {"name": self.policy.name, "digest": self.policy.digest,
                       "sources": list(self.policy.sources)},
            "root": self.root, "inputs": list(self.inputs), "checks": list(self.checks),
            "started": self.started.isoformat(), "finished": self.finished.isoformat(),
            "summary": {"rules": len(self.policy.rules), "violations": len(self.counted),
                        "suppressed": len(self.violations) - len(self.counted),
                        "errors": len(self.errors), "blind": len(self.blind)},
            "rules": [{**r.to_dict(), "violations": sum(v.counts for v in vs),
                       "errors": len(es)} for r, vs, es in self.by_rule()],
            "violations": [v.to_dict() for v in self.violations],
            "errors": [{"rule": e.rule.id, "subject": e.subject.display if e.subject else None,
                        "message": e.message} for e in self.errors],
            "blind": [{"check": c, "path": s.location.container_path, "reason": s.reason}
                      for c, s in self.blind],
            "expired_waivers": [{"rule": w.rule, "fingerprint": w.fingerprint,
                                 "expires": w.expires, "source": w.source}
                                for w in self.expired_waivers],
        }


def violation_fingerprint(rule_id: str, subject_key: str) -> str:
    return hashlib.sha256(f"{rule_id}\x1f{subject_key}".encode()).hexdigest()[:32]


def judge(policy: Policy, engine: Engine, doc: InputDocument, *,
          waivers: Sequence[Waiver] = (), today: date | None = None,
          ) -> tuple[list[Violation], list[RuleError], list[Waiver]]:
    """Evaluate ``policy`` over ``doc``: violations (waived ones included, marked), errors,
    and the expired waivers that named a violation."""
    outcome = engine.evaluate(doc)
    today = today or date.today()
    violations: list[Violation] = []
    errors: list[RuleError] = []
    expired: dict[Waiver, None] = {}
    for rule in policy.rules:
        subjects = doc.subjects.get(rule.collection, [])
        for n in outcome.hits.get(rule.id, []):
            subject = subjects[n]
            fp = violation_fingerprint(rule.id, subject.key)
            suppression, lapsed = apply_waivers(waivers, rule.id, fp, subject.location.uri,
                                                today)
            expired.update(dict.fromkeys(lapsed))
            behind = subject.findings
            if suppression is None and behind and all(f.suppression for f in behind):
                suppression = behind[0].suppression
            baseline = None
            if behind and all(f.baseline == "unchanged" for f in behind):
                baseline = "unchanged"
            violations.append(Violation(rule, subject, fp, suppression, baseline))
        for n, message in outcome.errors.get(rule.id, []):
            errors.append(RuleError(rule, subjects[n] if 0 <= n < len(subjects) else None,
                                    message))
    return violations, errors, list(expired)
