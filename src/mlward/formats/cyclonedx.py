"""Dependency results as a CycloneDX 1.6 JSON BOM with its ``vulnerabilities`` section.

One component per distinct package and version (unpinned requirements keep their range in a
property), one vulnerability per flaw and component, with its aliases as references, its CVSS
rating, the fixed versions as a recommendation and the affected version or range. The
components are built with cyclonedx-python-lib (the ``sbom`` extra); the vulnerabilities are
written as it writes them (see :func:`cyclonedx_vulnerability`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from mlward._internal.vulndb.match import parse_version
from mlward._version import __version__
from mlward.errors import MissingExtra
from mlward.findings import Severity

if TYPE_CHECKING:
    from mlward._internal.scanners.deps.check import DependencyResult

_SEVERITY = {Severity.CRITICAL: "critical", Severity.HIGH: "high", Severity.MEDIUM: "medium",
             Severity.LOW: "low", Severity.INFO: "info"}


def _source(vid: str) -> dict[str, str]:
    if vid.startswith("GHSA-"):
        return {"name": "GitHub Advisory Database", "url": f"https://github.com/advisories/{vid}"}
    if vid.startswith("CVE-"):
        return {"name": "NVD", "url": f"https://nvd.nist.gov/vuln/detail/{vid}"}
    return {"name": "OSV", "url": f"https://osv.dev/vulnerability/{vid}"}


def vers_range(specifier: str) -> str:
    """A PEP 440 specifier as a ``vers:pypi`` range; ``*`` when it uses operators vers lacks
    (``~=``, wildcards, ``===``): the BOM then claims no more precision than it has."""
    specs = list(SpecifierSet(specifier))
    if any(s.operator not in ("==", "!=", "<", "<=", ">", ">=") or "*" in s.version
           or parse_version(s.version) is None for s in specs):
        return "vers:pypi/*"
    specs.sort(key=lambda s: parse_version(s.version) or Version("0"))  # vers: by version
    parts = [s.version if s.operator == "==" else f"{s.operator}{s.version}" for s in specs]
    return "vers:pypi/" + ("|".join(parts) if parts else "*")


def cyclonedx_vulnerability(*, id: str, aliases: Sequence[str], severity: str | None,
                            score: float | None, vector: str | None, cwes: Sequence[str],
                            summary: str, fixed: Sequence[str], upgrade: str | None,
                            ref: str, version: str | None, specifier: str) -> dict[str, Any]:
    """One CycloneDX vulnerability of the component ``ref`` as its JSON object (shared by
    ``mlward deps --cyclonedx`` and ``mlward bom``): its source, aliases as references, CVSS
    rating, the fixed versions as a recommendation, and the affected version or range.

    Written directly, as cyclonedx-python-lib writes the same values (its one-decimal score,
    sorted references and CWEs; tests/bom/test_cyclonedx_objects.py compares the two): building
    a few hundred through its model, whose sorted sets compare every item field by field, and
    serialising them took longer than the rest of a BOM. Documents are validated by the
    library's schemas."""
    rating: dict[str, Any] = {"source": _source(id)}
    if score is not None:
        rating["score"] = float(f"{Decimal(str(score)):.1f}")
    rating["severity"] = severity if severity is not None else "unknown"
    if score is not None:
        rating["method"] = "CVSSv31" if (vector or "").startswith("CVSS:3.1") else "CVSSv3"
        if vector:  # the scheme prefix left out: the method names the scheme
            rating["vector"] = re.sub(r"^CVSS:3\.\d/?", "", vector)
    target = {"version": version} if version else {"range": vers_range(specifier)}
    recommendation = f"Upgrade to {upgrade}" if upgrade else "No fixed version known"
    if fixed:
        recommendation += f" (fixed in: {', '.join(fixed)})"
    out: dict[str, Any] = {"bom-ref": f"{id}@{ref}", "id": id, "source": _source(id)}
    if aliases:
        out["references"] = [{"id": a, "source": _source(a)} for a in sorted(set(aliases))]
    out["ratings"] = [rating]
    cwe_ids = sorted({int(m.group(1)) for c in cwes if (m := re.fullmatch(r"CWE-(\d+)", c))})
    if cwe_ids:
        out["cwes"] = cwe_ids
    out.update(description=summary, recommendation=recommendation,
               affects=[{"ref": ref, "versions": [target]}])
    return out


def render_cyclonedx(results: Iterable[DependencyResult]) -> str:
    """The BOM as CycloneDX 1.6 JSON text."""
    try:
        from cyclonedx.model import Property
        from cyclonedx.model.bom import Bom
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.output.json import JsonV1Dot6
        from packageurl import PackageURL
    except ImportError as exc:
        raise MissingExtra("cyclonedx-python-lib", "sbom") from exc

    bom = Bom()
    root = Component(name="mlward dependency audit", version=__version__,
                     type=ComponentType.APPLICATION, bom_ref="mlward-audit")
    bom.metadata.component = root
    components: dict[str, Component] = {}
    vulns: dict[str, dict[str, Any]] = {}
    for r in results:
        d = r.dependency
        if d.unresolvable:
            continue
        version = d.version
        ref = f"pkg:pypi/{d.key}" + (f"@{version}" if version else f"#{d.specifier or 'any'}")
        if ref not in components:
            props = [Property(name="mlward:declared-in", value=str(d.location))]
            if not version:
                props.append(Property(name="mlward:requirement", value=d.specifier or "any"))
            components[ref] = Component(
                name=d.key, version=version, bom_ref=ref, properties=props,
                purl=PackageURL(type="pypi", name=d.key, version=version))
            bom.components.add(components[ref])
        for v in r.result.vulnerabilities:
            vuln = cyclonedx_vulnerability(
                id=v.id, aliases=v.ids[1:], score=v.score, vector=v.vector, cwes=v.cwes,
                severity=_SEVERITY[v.severity] if v.severity is not None else None,
                summary=v.summary, fixed=v.fixed, upgrade=r.result.upgrade, ref=ref,
                version=version, specifier=d.specifier)
            vulns[vuln["bom-ref"]] = vuln  # one per flaw and component, however declared
    bom.register_dependency(root, components.values())
    doc = json.loads(JsonV1Dot6(bom).output_as_string())
    if vulns:
        doc["vulnerabilities"] = sorted(vulns.values(), key=lambda v: (v["id"], v["bom-ref"]))
    return json.dumps(doc, indent=2) + "\n"
