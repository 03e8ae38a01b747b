"""The gate in the ledger: a ``gate.run`` entry per run (verdict, policy digest, checks, the
fingerprints of its violations and what each alert channel still has to be told), a
``gate.violation`` entry per violation that counts, a ``gate.alert`` entry per delivery.

All entries of one run share its time and a ``run`` id, so an auditor can ask "was this
model deployed while the gate failed?" and the next run finds what the last one decided.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlward._internal.alerts.send import Delivery, Item
from mlward._internal.alerts.state import PreviousRun
from mlward._internal.policy.evaluate import GateResult, Violation

RUN = "gate.run"
VIOLATION = "gate.violation"
ALERT = "gate.alert"


def new_run_id() -> str:
    return uuid.uuid4().hex


def project_uri(result: GateResult) -> str:
    return Path(result.root).as_uri()


def item_of(v: Violation) -> Item:
    return Item(v.rule.id, v.rule.severity.label, v.rule.title, v.subject.display,
                v.fingerprint, v.rule.remediation, str(v.subject.location))


def previous_run(project: str, *, db: str | None, root: Path) -> PreviousRun | None:
    """The last gate run recorded for ``project`` (a file URI), or None (no ledger, or no run
    yet: every violation is then new)."""
    from mlward._internal.ledger.project import open_ledger, resolve
    from mlward._internal.ledger.store import Filters

    if resolve(db, project=root) is None:
        return None
    with open_ledger(db, project=root) as ledger:
        # The last run that sent alerts (runs with --no-alerts or no channels told nobody).
        runs = [e for e in ledger.log(Filters(action=RUN, resource=project))
                if e.event.resource == project and e.event.details.get("alerts") is not None]
        if not runs:
            return None
        last = runs[-1].event
        run = last.details.get("run")
        # Entries of one run share its time: "<time>~" sorts after it and before any later
        # time (fixed-width timestamps), so the window holds exactly that instant.
        window = Filters(action=VIOLATION, since=last.time, until=last.time + "~")
        items = {}
        for e in ledger.log(window):
            d = e.event.details
            if d.get("run") == run and isinstance(d.get("fingerprint"), str):
                items[d["fingerprint"]] = Item(
                    str(d.get("rule")), str(d.get("severity")), str(d.get("title")),
                    str(d.get("subject")), d["fingerprint"], str(d.get("remediation", "")),
                    str(d.get("location", "")))
    return PreviousRun.from_details(last.details, items)


def _resource(result: GateResult, v: Violation) -> str:
    loc = v.subject.location
    if loc.is_local:
        return (Path(result.root) / loc.uri).as_uri() + "".join(f"!/{m}" for m in loc.members)
    return loc.uri


def record_gate(result: GateResult, *, run: str, db: str | None, root: Path,
                alert_state: Mapping[str, Any] | None, deliveries: Sequence[Delivery]) -> None:
    """Append the run, its violations and its deliveries (one batch; nothing without a
    ledger). Raises :class:`~mlward._internal.ledger.LedgerError` when the ledger refuses."""
    from mlward._internal.ledger.entry import Event, utc_now
    from mlward._internal.ledger.project import open_ledger, resolve

    if resolve(db, project=root) is None:
        return
    time = utc_now()
    project = project_uri(result)
    policy = {"name": result.policy.name, "digest": result.policy.digest}
    counted = result.counted
    events = [Event(RUN, project, outcome=result.verdict,
                    digests={"policy": result.policy.digest.removeprefix("sha256:")},
                    time=time, details={
                        "run": run, "policy": policy, "engine": result.engine,
                        "exit_code": result.exit_code, "checks": list(result.checks),
                        "inputs": list(result.inputs),
                        "violations": sorted(v.fingerprint for v in counted),
                        "waived": len(result.violations) - len(counted),
                        "errors": len(result.errors), "blind": len(result.blind),
                        "alerts": None if alert_state is None else dict(alert_state)})]
    events += [Event(VIOLATION, _resource(result, v), outcome="fail", time=time, details={
        "run": run, "project": project, "policy": policy, "rule": v.rule.id,
        "severity": v.rule.severity.label, "title": v.rule.title,
        "subject": v.subject.display, "location": str(v.subject.location),
        "fingerprint": v.fingerprint, "remediation": v.rule.remediation,
        "findings": [f.fingerprint for f in v.subject.findings[:20]]}) for v in counted]
    events += [Event(ALERT, d.channel.target, outcome="delivered" if d.ok else "failed",
                     time=time, details={
                         "run": run, "project": project, "channel": d.channel.name,
                         "kind": d.channel.kind, "alert": d.alert.kind,
                         "items": len(d.alert.items), "attempts": d.attempts,
                         "error": d.error}) for d in deliveries]
    with open_ledger(db, project=root) as ledger:
        ledger.append(events)
