"""The checks an audit runs, one :class:`Step` each, in a table.

A step runs one check the project already has as a command (``scan``, ``deps``, ``manifest
verify``, ``lineage verify``, ``bom``, ``gate``) over the project and returns its report and a
summary for the snapshot. A step whose machinery is not part of this installation says why in
:meth:`Step.unavailable`: the audit records that note in the snapshot and goes on (a step the
``[audit]`` table asks for by name that is unavailable makes the snapshot incomplete instead).

Steps are registered in :data:`STEPS` by subclassing; a plugin adds one the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from mlward._version import __version__
from mlward.findings import Location, Report, ReportBuilder, TargetKind, local_uri
from mlward.settings import Settings

STEPS: dict[str, type[Step]] = {}
"""Every step by name, in the order an audit runs them."""


@dataclass
class AuditContext:
    """What every step sees: the project root, the settings and the files the audit tracks
    (the same walk as ``scan``: ignore files, excludes, virtual environments left out)."""

    root: Path
    settings: Settings
    files: Sequence[str]
    """Paths of the tracked files, relative to the root (POSIX)."""
    scan: Report | None = None
    """The scan step's report, once it has run (later steps read formats from it)."""
    datasets: list[str] = field(default_factory=list)
    """Folders and files the project's manifests cover, relative to the root: data."""


@dataclass
class StepOutcome:
    """A step's report (findings, skips) and the summary the snapshot keeps."""

    report: Report | None
    summary: dict[str, Any] = field(default_factory=dict)
    bom: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None


class Step(ABC):
    name: ClassVar[str]
    description: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        STEPS[cls.name] = cls

    def unavailable(self, ctx: AuditContext) -> str | None:
        """Why this step cannot run here (its machinery is missing, nothing configures it),
        or None when it can."""
        return None

    @abstractmethod
    def run(self, ctx: AuditContext) -> StepOutcome: ...


def _builder(ctx: AuditContext) -> ReportBuilder:
    return ReportBuilder(TargetKind.REPOSITORY, started=datetime.now(timezone.utc),
                         version=__version__, root=str(ctx.root), inputs=[str(ctx.root)])


def _build(ctx: AuditContext, builder: ReportBuilder) -> Report:
    from mlward._internal.triage import make_triage

    return builder.build(finished=datetime.now(timezone.utc),
                         triage=make_triage(ctx.settings, ctx.root))


class ScanStep(Step):
    name = "scan"
    description = ("model files, archives, notebooks, code, secrets and ML tool configs "
                   "(`mlward scan`)")

    def run(self, ctx: AuditContext) -> StepOutcome:
        from mlward._internal.pipeline import scan

        report = scan([ctx.root], settings=ctx.settings)
        ctx.scan = report
        verdicts: dict[str, int] = {}
        for v in report.verdicts().values():
            verdicts[str(v)] = verdicts.get(str(v), 0) + 1
        return StepOutcome(report, {"examined": len(report.examined),
                                    "verdicts": dict(sorted(verdicts.items()))})


class DepsStep(Step):
    name = "deps"
    description = "declared and locked Python dependencies against OSV advisories (`mlward deps`)"

    def run(self, ctx: AuditContext) -> StepOutcome:
        from mlward._internal.scanners.deps.audit import audit
        from mlward._internal.vulndb import source_for

        # The scan already recognised the dependency files and notebooks (by content): name
        # them, rather than read the head of every file in the project a second time.
        paths = [ctx.root] if ctx.scan is None else sorted({
            ctx.root / e.location.uri for e in ctx.scan.examined
            if not e.location.members and e.location.is_local
            and (e.format.startswith("dependencies") or e.format == "notebook")})
        if not paths:
            return StepOutcome(None, {"dependencies": 0, "vulnerable": 0})
        result = audit(paths, environment=False, source=source_for(ctx.settings),
                       settings=ctx.settings)
        vulnerable = sum(1 for r in result.results if r.result.vulnerabilities)
        return StepOutcome(result.report, {"dependencies": len(result.results),
                                           "vulnerable": vulnerable})


class ManifestStep(Step):
    name = "manifests"
    description = "every data manifest in the project still matches its files (`mlward " \
                  "manifest verify`)"

    def run(self, ctx: AuditContext) -> StepOutcome:
        from mlward._internal.provenance import manifest
        from mlward._internal.provenance.errors import ProvenanceError
        from mlward._internal.provenance.lineage import is_manifest_file
        from mlward.rules import AUDIT_MANIFEST_CHANGED

        builder = _builder(ctx)
        checked = changed = 0
        for rel in manifests(ctx):
            path = ctx.root / rel
            if not is_manifest_file(path):
                continue
            checked += 1
            try:
                m = manifest.Manifest.load(path)
                result = manifest.verify(m, manifest_file=path)
            except ProvenanceError as exc:
                builder.skip(Location(rel), f"manifest not verified: {exc.diagnostics()}",
                             inconclusive=True)
                continue
            builder.examine(Location(rel), "mlward-manifest")
            ctx.datasets += [local_uri(where, ctx.root) for _, where in result.roots]
            changed += bool(result.changes)
            for c in result.changes:
                builder.add(AUDIT_MANIFEST_CHANGED.finding(
                    Location(rel), f"{c.path} {c.status} since the manifest was recorded"
                    + (f" (was {c.previous})" if c.previous else ""),
                    evidence=f"{c.status} {c.path}", details=c.to_dict()))
        return StepOutcome(_build(ctx, builder), {"manifests": checked, "changed": changed})


def manifests(ctx: AuditContext) -> list[str]:
    """Tracked files that may be manifests (JSON files; the content decides)."""
    return [f for f in ctx.files if f.endswith(".json") and not f.endswith(".lineage.json")
            and not f.endswith(".dsse.json")]


class LineageStep(Step):
    name = "lineage"
    description = "every model with a lineage statement verifies, signature to data " \
                  "(`mlward lineage verify`)"

    def run(self, ctx: AuditContext) -> StepOutcome:
        from mlward._internal.provenance import chain, default_trust_file, keys
        from mlward._internal.provenance.errors import ProvenanceError
        from mlward.rules import AUDIT_LINEAGE_BROKEN

        builder = _builder(ctx)
        trust = default_trust_file(ctx.settings.trust)
        trusted = keys.load_trusted(trust) if trust.exists() else None
        checked = broken = 0
        for rel in ctx.files:
            if not rel.endswith(".lineage.json"):
                continue
            model_rel = rel[:-len(".lineage.json")]
            checked += 1
            try:
                result = chain.verify_chain(ctx.root / model_rel, trusted=trusted,
                                            require_signature=False)
            except ProvenanceError as exc:
                builder.skip(Location(model_rel), f"lineage not verified: {exc.diagnostics()}",
                             inconclusive=True)
                continue
            builder.examine(Location(model_rel), "mlward-lineage")
            link = result.first_broken
            if link is not None:
                broken += 1
                builder.add(AUDIT_LINEAGE_BROKEN.finding(
                    Location(model_rel), f"the {link.name} link is broken: {link.detail}",
                    evidence=f"{link.name}: {link.detail}",
                    details={"links": [[x.name, x.ok] for x in result.links]}))
        return StepOutcome(_build(ctx, builder), {"models": checked, "broken": broken,
                                                  "signatures": "checked" if trusted
                                                  else "not checked (no trust file)"})


class BomStep(Step):
    name = "bom"
    description = "the ML bill of materials (`mlward bom`): its digest, and drift between audits"

    def unavailable(self, ctx: AuditContext) -> str | None:
        if not _present("mlward._internal.bom.collect"):
            return "the BOM (`mlward bom`) is not part of this mlward version"
        return None

    def run(self, ctx: AuditContext) -> StepOutcome:
        import hashlib

        from mlward._internal.ledger.entry import canonical_json

        collect = importlib.import_module("mlward._internal.bom.collect")
        inventory, _, _ = collect.build_inventory([ctx.root], ctx.settings)
        components = []
        for c in inventory.components:
            d = c.to_dict() if hasattr(c, "to_dict") else {"name": str(c)}
            components.append({k: d[k] for k in ("type", "name", "version", "hashes")
                               if k in d})
        digest = hashlib.sha256(canonical_json(sorted(
            components, key=lambda c: (str(c.get("type")), str(c.get("name")))))).hexdigest()
        builder = _builder(ctx)
        for reason in getattr(inventory, "incomplete", ()):
            builder.skip(Location("."), f"BOM incomplete: {reason}", inconclusive=True)
        return StepOutcome(_build(ctx, builder), {"components": len(components)},
                           bom={"digest": f"sha256:{digest}", "components": components})


class GateStep(Step):
    name = "gate"
    description = "the release gate's policy over the checks (`mlward gate`): its verdict " \
                  "sets the audit's exit code"

    def unavailable(self, ctx: AuditContext) -> str | None:
        if not _present("mlward._internal.policy.gate"):
            return "the gate (`mlward gate`) is not part of this mlward version"
        if not ctx.settings.section("gate").get("policy"):
            return "no gate policy configured ([gate] policy = ... in the settings)"
        return None

    def run(self, ctx: AuditContext) -> StepOutcome:
        gate = importlib.import_module("mlward._internal.policy.gate")
        result = gate.run_gate([ctx.root], ctx.settings, gate.gate_config(ctx.settings),
                               base=ctx.root)
        builder = _builder(ctx)
        for check, skipped in result.blind:
            builder.skip(skipped.location, f"gate ({check}): {skipped.reason}",
                         inconclusive=True)
        verdict = {0: "pass", 1: "fail"}.get(result.exit_code, "inconclusive")
        return StepOutcome(_build(ctx, builder), {"violations": len(result.counted)},
                           gate={"verdict": verdict, "exitCode": result.exit_code,
                                 "violations": len(result.counted)})


class CloudStep(Step):
    name = "cloud"
    description = "cloud storage and accounts, when a [cloud] table configures them"

    def unavailable(self, ctx: AuditContext) -> str | None:
        if not ctx.settings.section("cloud"):
            return "no [cloud] table in the settings"
        if not _present("mlward._internal.cloud"):
            return "cloud checks are not part of this mlward version"
        return "cloud checks are not yet wired into audits"

    def run(self, ctx: AuditContext) -> StepOutcome:  # pragma: no cover (unavailable)
        raise NotImplementedError


def _present(module: str) -> bool:
    """Whether ``module`` is part of this installation (steps over capabilities that land
    separately: the BOM, the gate, cloud checks)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its package is missing
        return False


def chosen_steps(settings: Settings) -> tuple[list[str], bool]:
    """The step names to run (the ``[audit]`` table's ``steps``, else every step) and whether
    they were asked for by name (then an unavailable one makes the snapshot incomplete)."""
    from mlward.errors import UsageError

    table: Mapping[str, Any] = settings.section("audit")
    where = settings.origins.get("[audit]", "settings")
    unknown = set(table) - {"steps"}
    if unknown:
        raise UsageError(f"{where}: unknown key(s) in [audit]: {', '.join(sorted(unknown))} "
                         "(known: steps)")
    steps = table.get("steps")
    if steps is None:
        return list(STEPS), False
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps) or not steps:
        raise UsageError(f"{where}: [audit] steps must be a non-empty list of step names")
    bad = [s for s in steps if s not in STEPS]
    if bad:
        raise UsageError(f"{where}: [audit] steps: unknown {', '.join(bad)} (known: "
                         f"{', '.join(STEPS)})")
    return [s for s in STEPS if s in steps], True
