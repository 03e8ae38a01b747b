"""Which alerts to send: only violations a channel was not told about before (by
fingerprint, against the last gate run the ledger recorded), a "resolved" notice for those it
was told about that are gone, and whatever failed to go out last time.

The state kept per run (in the ledger's ``gate.run`` entry) is small in the usual case: the
fingerprints of the run's violations and, per channel, what it could not be told.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlward._internal.alerts.config import Channel
from mlward._internal.alerts.send import Alert, Delivery, Item


@dataclass(frozen=True)
class PreviousRun:
    """What the last gate run of this project recorded."""

    violations: frozenset[str]
    channels: Mapping[str, Mapping[str, Any]]
    """Per channel name: ``undelivered`` and ``resolved_pending`` fingerprint lists."""
    items: Mapping[str, Item]
    """The previous run's violations as alerts tell them (for "resolved" notices)."""

    @classmethod
    def from_details(cls, details: Mapping[str, Any], items: Mapping[str, Item]) -> PreviousRun:
        alerts = details.get("alerts")
        return cls(frozenset(str(f) for f in details.get("violations") or ()),
                   alerts if isinstance(alerts, Mapping) else {}, items)


@dataclass
class Plan:
    sends: list[tuple[Channel, Alert]] = field(default_factory=list)
    told_before: dict[str, frozenset[str]] = field(default_factory=dict)


def _fps(state: Mapping[str, Any], key: str) -> frozenset[str]:
    value = state.get(key) or ()
    return frozenset(str(v) for v in value) if isinstance(value, (list, tuple)) else frozenset()


def plan(channels: Sequence[Channel], current: Mapping[str, Item], previous: PreviousRun | None,
         *, alert_all: bool, template: Alert) -> Plan:
    """The alerts each channel gets. ``template`` carries the run's project, verdict, policy
    and time; its items are replaced."""
    out = Plan()
    now = frozenset(current)
    for channel in channels:
        told: frozenset[str] = frozenset()
        pending: frozenset[str] = frozenset()
        if previous is not None and channel.name in previous.channels:
            state = previous.channels[channel.name]
            told = previous.violations - _fps(state, "undelivered")
            pending = _fps(state, "resolved_pending")
        out.told_before[channel.name] = told
        new = sorted(now if alert_all else now - told)
        if new:
            out.sends.append((channel, _with(template, "violations", [current[f] for f in new])))
        gone = sorted((told - now) | (pending - now))
        if gone:
            known = previous.items if previous is not None else {}
            items = [known.get(f) or Item("?", "?", "resolved violation", "(details not in the "
                                          "ledger)", f, "", "") for f in gone]
            out.sends.append((channel, _with(template, "resolved", items)))
    return out


def _with(template: Alert, kind: str, items: list[Item]) -> Alert:
    return Alert(kind, template.project, template.verdict, template.policy,
                 template.policy_digest, template.time, tuple(items))


def next_state(channels: Sequence[Channel], current: Mapping[str, Item], p: Plan,
               deliveries: Sequence[Delivery]) -> dict[str, dict[str, list[str]]]:
    """Per channel, what it still has to be told (retried on the next run)."""
    failed = {(d.channel.name, d.alert.kind): d.alert for d in deliveries if not d.ok}
    out = {}
    for channel in channels:
        told = p.told_before.get(channel.name, frozenset())
        undelivered: list[str] = []
        if (channel.name, "violations") in failed:
            undelivered = sorted(frozenset(current) - told)
        resolved = failed.get((channel.name, "resolved"))
        out[channel.name] = {
            "undelivered": undelivered,
            "resolved_pending": sorted(i.fingerprint for i in resolved.items) if resolved else [],
        }
    return out
