"""``mlward gate``: run the configured checks, build the input document, judge it.

The checks are the commands users already run (``scan``, ``deps``, ``bom verify``) and the
provenance verification of every model the scan found (signature and lineage, the same chain
as ``mlward verify``). The gate adds no scanning of its own: it reads their reports.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from mlward._internal.policy.document import (
    CheckRun,
    Lineage,
    Provenance,
    Signature,
    build_document,
    model_family,
)
from mlward._internal.policy.engine import ENGINES, make_engine
from mlward._internal.policy.evaluate import GateResult, judge
from mlward._internal.policy.model import load_policy
from mlward._version import __version__
from mlward.errors import UsageError
from mlward.findings import Report
from mlward.settings import Settings

CHECKS = ("scan", "deps", "provenance", "bom")
BOM_FILES = ("bom.cdx.json", "bom.spdx.json")
"""Where the ``bom`` check looks for the project's BOM when none is configured."""
_KEY_ID = re.compile(r"key ([0-9a-f]+)")


@dataclass(frozen=True)
class GateConfig:
    """The ``[gate]`` table (and ``[policy]``: parameters over the policy's own)."""

    policy: tuple[str, ...]
    checks: tuple[str, ...] = CHECKS
    engine: str = "cel"
    params: Mapping[str, Any] = field(default_factory=dict)
    bom: Path | None = None
    """The BOM the ``bom`` check verifies (None: the first of :data:`BOM_FILES` at the root)."""
    bom_required: bool = False
    """True when the user asked for the ``bom`` check by name or named a BOM: then a missing
    BOM is an error, where by default the check is left out of a project without one."""


def gate_config(settings: Settings, *, policy: Sequence[str] = (),
                checks: Sequence[str] = (), engine: str | None = None,
                bom: Path | None = None) -> GateConfig:
    """The gate's configuration: flags over ``[gate]``; errors name the table and key.
    A ``bom`` named in ``[gate]`` is relative to the settings file's project."""
    table = dict(settings.section("gate"))
    where = settings.origins.get("[gate]", "settings")
    unknown = set(table) - {"policy", "checks", "engine", "bom"}
    if unknown:
        raise UsageError(f"{where}: unknown key(s) in [gate]: {', '.join(sorted(unknown))} "
                         "(known: policy, checks, engine, bom)")
    if "bom" in table and not isinstance(table["bom"], str):
        raise UsageError(f"{where}: [gate] bom must be a path (a string)")
    if bom is None and "bom" in table:
        bom = Path(table["bom"])

    def strings(key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{where}: [gate] {key} must be a string or a list of strings")
        return tuple(value)

    chosen_checks = tuple(checks) or strings("checks") or CHECKS
    bad = [c for c in chosen_checks if c not in CHECKS]
    if bad:
        raise UsageError(f"unknown check(s) {', '.join(bad)} (choose from {', '.join(CHECKS)})")
    chosen_engine = engine or table.get("engine", "cel")
    if chosen_engine not in ENGINES:
        raise UsageError(f"{where}: [gate] engine must be one of {', '.join(ENGINES)} "
                         f"(got {chosen_engine!r})")
    params = settings.section("policy")
    explicit = bool(checks) or "checks" in table
    return GateConfig(tuple(policy) or strings("policy"), chosen_checks, chosen_engine,
                      dict(params), bom, bom is not None or (explicit and "bom" in chosen_checks))


def run_gate(paths: Sequence[Path], settings: Settings, config: GateConfig, *,
             base: Path, scan_observer: Any = None, today: date | None = None) -> GateResult:
    """Run the checks over ``paths`` and judge them with the configured policy.

    The policy is loaded and compiled first: an invalid policy stops the gate before any
    check runs (:class:`~mlward._internal.policy.model.PolicyError`).
    """
    from mlward._internal.pipeline import scan, scan_root

    policy = load_policy(config.policy, base=base, params=config.params)
    engine = make_engine(config.engine, policy)
    started = datetime.now(timezone.utc)
    for p in paths:
        if not p.exists():
            raise UsageError(f"no such file or directory: {p}")
    root = scan_root(settings, paths)
    runs: list[CheckRun] = []
    if "scan" in config.checks:
        runs.append(CheckRun("scan", scan([str(p) for p in paths], settings=settings,
                                          observer=scan_observer)))
    if "deps" in config.checks:
        from mlward._internal.scanners.deps.audit import audit
        from mlward._internal.vulndb import source_for

        runs.append(CheckRun("deps", audit(list(paths), environment=False,
                                           source=source_for(settings),
                                           settings=settings).report))
    drift: list[dict[str, Any]] = []
    if "bom" in config.checks:
        bom_run = _verify_bom(root, settings, config)
        if bom_run is not None:
            runs.append(bom_run)
            drift = bom_drift(bom_run.report)
    provenance = None
    if "provenance" in config.checks:
        provenance = model_provenance(root, _local_models(runs), _trusted(settings))
    doc = build_document(runs, root=root, time=started, params=policy.params,
                         git=git_facts(root), provenance=provenance, bom=drift)
    violations, errors, expired = judge(policy, engine, doc, waivers=settings.waivers,
                                        today=today)
    return GateResult(
        policy=policy, engine=engine.name, violations=tuple(violations),
        errors=tuple(errors), blind=tuple(doc.blind), expired_waivers=tuple(expired),
        checks=tuple(doc.data["project"]["checks"]), root=str(root),
        inputs=tuple(str(p) for p in paths), started=started,
        finished=datetime.now(timezone.utc), version=__version__, document=doc.data)


def _verify_bom(root: Path, settings: Settings, config: GateConfig) -> CheckRun | None:
    """``mlward bom verify`` of the project's BOM against ``root``, or None when there is no
    BOM and none was asked for."""
    from mlward._internal.bom.read import load
    from mlward._internal.bom.verify import verify

    if config.bom is not None:
        bom_file = config.bom if config.bom.is_absolute() else root / config.bom
    else:
        bom_file = next((root / n for n in BOM_FILES if (root / n).is_file()), root / BOM_FILES[0])
    if not bom_file.is_file():
        if config.bom_required:
            raise UsageError(f"the bom check has no BOM to verify: {bom_file} does not exist "
                             "(make one with `mlward bom -o bom.cdx.json`, or set [gate] bom)")
        return None
    report = verify(load(bom_file), root, bom_file=bom_file, settings=settings,
                    trusted=_trusted(settings))
    return CheckRun("bom", report)


def bom_drift(report: Report) -> list[dict[str, Any]]:
    """The ``bom`` collection: one item per difference ``bom verify`` found between the BOM and
    the project (a changed, missing or added file, a broken signature, a checkpoint the ledger
    does not hold), with the component it concerns."""
    from mlward import rules

    kinds = {rules.BOM_FILE_CHANGED.id: "changed", rules.BOM_FILE_MISSING.id: "missing",
             rules.BOM_FILE_ADDED.id: "added", rules.BOM_SIGNATURE_INVALID.id: "signature",
             rules.BOM_LEDGER_MISSING.id: "ledger"}
    return [{"kind": kinds.get(f.rule_id, f.rule_id),
             "component": str((f.details or {}).get("ref") or f.location.uri),
             "detail": f.message, "path": f.location.uri, "rule": f.rule_id,
             "severity": f.severity.label}
            for f in report.findings if f.counts]


def _local_models(runs: Iterable[CheckRun]) -> list[str]:
    return sorted({e.location.uri for r in runs for e in r.report.examined
                   if e.location.is_local and not e.location.members
                   and model_family(e.format) is not None})


def _trusted(settings: Settings) -> Mapping[str, Any] | None:
    from mlward._internal.provenance import default_trust_file, keys

    trust_file = default_trust_file(settings.trust)
    return keys.load_trusted(trust_file) if trust_file.exists() else None


# --- provenance of each model -----------------------------------------------------------------


def _anchor(path: Path, root: Path) -> Path | None:
    """The nearest of ``path`` and the folders above it (up to ``root``) that carries a
    lineage statement or a signature: what was signed or recorded for this model."""
    from mlward._internal.provenance import chain, lineage

    for candidate in (path, *path.parents):
        if any(p.exists() for p in (lineage.statement_path(candidate),
                                    chain.oms_signature_path(candidate),
                                    chain.signature_path(candidate))):
            return candidate
        if candidate == root or root not in candidate.parents:
            return None
    return None


def model_provenance(root: Path, uris: Iterable[str],
                     trusted: Mapping[str, Any] | None) -> dict[str, Provenance]:
    """Signature and lineage status of each model file (``uris`` relative to ``root``);
    ``trusted`` None: there is no trust file, signatures are ``unchecked``."""
    out: dict[str, Provenance] = {}
    verified: dict[Path, Provenance] = {}
    for uri in uris:
        anchor = _anchor(root / uri, root)
        if anchor is None:
            out[uri] = Provenance(Signature("unsigned", None, "no signature found"),
                                  Lineage("missing", None, (), "no lineage statement"))
            continue
        if anchor not in verified:
            verified[anchor] = _verify(anchor, trusted)
        out[uri] = verified[anchor]
    return out


def _verify(anchor: Path, trusted: Mapping[str, Any] | None) -> Provenance:
    from mlward._internal.provenance import chain, lineage
    from mlward._internal.provenance.errors import ProvenanceError

    statement = lineage.statement_path(anchor)
    bundle = chain.oms_signature_path(anchor)
    direct = chain.signature_path(anchor)
    links: list[chain.Link] = []
    lin = Lineage("missing", None, (), "no lineage statement")
    if statement.exists():
        try:
            result = chain.verify_chain(anchor, trusted=trusted, require_signature=False)
            links = list(result.links)
        except ProvenanceError as exc:
            lin = Lineage("broken", str(statement), (), exc.diagnostics())
        else:
            body = [link for link in links if not link.name.endswith("signature")]
            broken = next((link for link in body if not link.ok), None)
            lin = Lineage("verified" if broken is None else "broken", str(statement),
                          tuple((link.name.removeprefix("input "), link.ok, link.detail)
                                for link in body if link.name.startswith("input ")),
                          "all inputs unchanged" if broken is None
                          else f"{broken.name}: {broken.detail}")
    elif trusted is not None and bundle.exists():
        links = [chain.verify_oms(anchor, bundle, trusted)]
    elif trusted is not None and direct.exists():
        try:
            keyid = chain.verify_file(anchor, direct, trusted)
            links = [chain.Link("signature", True, f"valid, key {keyid}")]
        except ProvenanceError as exc:
            links = [chain.Link("signature", False, exc.diagnostics())]
    return Provenance(_signature(anchor, links, trusted), lin)


def _signature(anchor: Path, links: Sequence[Any],
               trusted: Mapping[str, Any] | None) -> Signature:
    from mlward._internal.provenance import chain, lineage

    signed = [link for link in links if link.name.endswith("signature")]
    if not signed:
        present = any(p.exists() for p in (chain.oms_signature_path(anchor),
                                           chain.signature_path(anchor),
                                           chain.signature_path(lineage.statement_path(anchor))))
        if present and trusted is None:
            return Signature("unchecked", None, "signed, but there is no trust file to check "
                             "the signature against")
        return Signature("unsigned", None, "no signature found")
    model_ok = all(link.ok for link in links if link.name == "model")
    # An OMS bundle covers the model's files itself; a signed lineage statement vouches for
    # the model only while the model still matches it.
    good = [link for link in signed if link.ok and (link.name == "OMS signature" or model_ok)]
    if good:
        m = _KEY_ID.search(good[0].detail)
        return Signature("valid", m.group(1) if m else None, good[0].detail)
    bad = next((link for link in signed if not link.ok), None)
    return Signature("invalid", None, bad.detail if bad else "the model changed since its "
                     "lineage statement was signed")


def git_facts(root: Path) -> dict[str, Any]:
    """Commit, branch and whether the work tree has changes (all None outside git)."""
    from mlward._internal.provenance.lineage import git_commit

    found = git_commit(root)
    if found is None:
        return {"commit": None, "branch": None, "dirty": None}
    branch = None
    git = shutil.which("git")
    if git is not None:
        try:
            out = subprocess.run([git, "-C", str(root), "rev-parse", "--abbrev-ref", "HEAD"],
                                 capture_output=True, text=True, timeout=30, check=False)
            name = out.stdout.strip()
            branch = name if out.returncode == 0 and name and name != "HEAD" else None
        except (OSError, subprocess.TimeoutExpired):
            branch = None
    return {"commit": found[0], "branch": branch, "dirty": found[1]}

