"""The rule catalogue: every finding mlward reports names one of these rules.

IDs are stable and grouped by area: MW1xx pickle-family models, MW2xx other model formats,
MW3xx notebooks and code, MW4xx secrets and PII, MW5xx dependencies, MW6xx ML tooling
exposure, MW7xx provenance and integrity, MW8xx cloud storage, MW9xx policy. Each area adds
its rules in its own section below; ``mlward rules`` lists them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlward.findings import Finding, Location, Severity


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: Severity
    remediation: str
    cwe: str | None = None
    doc: str = ""

    def finding(self, location: Location, message: str, *, evidence: str | None = None,
                severity: Severity | None = None,
                details: Mapping[str, Any] | None = None) -> Finding:
        """A finding of this rule; ``severity`` overrides the default where the case warrants."""
        return Finding(
            rule_id=self.id,
            severity=self.severity if severity is None else severity,
            location=location,
            message=message,
            evidence=evidence,
            remediation=self.remediation,
            cwe=self.cwe,
            details=dict(details or {}),
        )


RULES: dict[str, Rule] = {}


def rule(id: str, title: str, severity: Severity, remediation: str, cwe: str | None = None,
         doc: str = "") -> Rule:
    """Register a rule in the catalogue; IDs must be unique."""
    if id in RULES:
        raise ValueError(f"duplicate rule id {id}")
    r = Rule(id, title, severity, remediation, cwe, doc)
    RULES[id] = r
    return r


# --- MW0xx: the scan itself ---------------------------------------------------------------

SCANNER_CRASH = rule(
    "MW001", "Scanner failed on this input", Severity.MEDIUM,
    "Report this file to the mlward developers; treat it as unverified until then.",
    doc="A scanner raised an unexpected error. The file is inconclusive, never clean.",
)

# --- MW1xx: pickle-family models ----------------------------------------------------------

# --- MW2xx: other model formats and containers --------------------------------------------

# --- MW3xx: notebooks and code ------------------------------------------------------------

# --- MW4xx: secrets and PII ---------------------------------------------------------------

# --- MW5xx: dependencies ------------------------------------------------------------------

# --- MW6xx: ML tooling exposure -----------------------------------------------------------

# --- MW7xx: provenance and integrity ------------------------------------------------------
