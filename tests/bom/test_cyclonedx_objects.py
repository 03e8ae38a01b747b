"""The CycloneDX objects mlward writes directly (library components, vulnerabilities) are what
cyclonedx-python-lib writes for the same values: the library built in the test is the oracle."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from cyclonedx.model import HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component as CdxComponent
from cyclonedx.model.component import ComponentType
from cyclonedx.model.contact import OrganizationalEntity
from cyclonedx.model.vulnerability import (
    BomTarget,
    BomTargetVersionRange,
    Vulnerability,
    VulnerabilityRating,
    VulnerabilityReference,
    VulnerabilityScoreSource,
    VulnerabilitySeverity,
    VulnerabilitySource,
)
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from mlward._internal.bom import cyclonedx, props
from mlward._internal.bom.inventory import Component
from mlward.formats.cyclonedx import cyclonedx_vulnerability, vers_range

REF = "pkg:pypi/mlflow@2.9.1"


def _written(bom: Bom) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    return doc


def _source(vid: str) -> VulnerabilitySource:
    name, url = {"GHSA": ("GitHub Advisory Database", "https://github.com/advisories/"),
                 "CVE-": ("NVD", "https://nvd.nist.gov/vuln/detail/")}.get(
        vid[:4], ("OSV", "https://osv.dev/vulnerability/"))
    return VulnerabilitySource(name=name, url=XsUri(url + vid))


def _as_the_library_writes(values: dict[str, Any]) -> dict[str, Any]:
    """The vulnerability as cyclonedx-python-lib writes it."""
    score, vector = values["score"], values["vector"]
    method = None if score is None else (
        VulnerabilityScoreSource.CVSS_V3_1 if (vector or "").startswith("CVSS:3.1")
        else VulnerabilityScoreSource.CVSS_V3)
    recommendation = (f"Upgrade to {values['upgrade']}" if values["upgrade"]
                      else "No fixed version known")
    if values["fixed"]:
        recommendation += f" (fixed in: {', '.join(values['fixed'])})"
    bom = Bom()
    bom.vulnerabilities.add(Vulnerability(
        bom_ref=f"{values['id']}@{REF}", id=values["id"], source=_source(values["id"]),
        references=[VulnerabilityReference(id=a, source=_source(a))
                    for a in values["aliases"]],
        ratings=[VulnerabilityRating(
            source=_source(values["id"]),
            severity=VulnerabilitySeverity(values["severity"] or "unknown"),
            score=Decimal(str(score)) if score is not None else None, method=method,
            vector=vector if score is not None else None)],
        cwes=[int(c[4:]) for c in values["cwes"] if c[4:].isdigit() and c[:4] == "CWE-"],
        description=values["summary"],
        recommendation=recommendation,
        affects=[BomTarget(ref=REF, versions=[
            BomTargetVersionRange(version=values["version"]) if values["version"]
            else BomTargetVersionRange(range=vers_range(values["specifier"]))])]))
    written: dict[str, Any] = _written(bom)["vulnerabilities"][0]
    return written


VULNERABILITIES = [
    {"id": "GHSA-554w-xh4j-8w64", "aliases": ["PYSEC-2023-253", "CVE-2023-6831",
                                              "CVE-2023-6831"],
     "severity": "critical", "score": 10.0, "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H",
     "cwes": ["CWE-29", "CWE-22"], "summary": "Path traversal", "fixed": ["2.9.2"],
     "upgrade": "2.9.2", "version": "2.9.1", "specifier": "==2.9.1"},
    {"id": "PYSEC-2020-1", "aliases": [], "severity": None, "score": None, "vector": None,
     "cwes": [], "summary": "", "fixed": [], "upgrade": None, "version": None,
     "specifier": ">=1.0,<2"},
    {"id": "CVE-2021-1", "aliases": ["GHSA-aaaa-bbbb-cccc"], "severity": "medium",
     "score": 5.25, "vector": "CVSS:3.0/AV:L/AC:H", "cwes": ["CWE-79", "NVD-CWE-Other"],
     "summary": "XSS \u2013 stored", "fixed": ["1.2", "2.0"], "upgrade": None,
     "version": None, "specifier": "~=1.0"},
    {"id": "OSV-2024-9", "aliases": [], "severity": "low", "score": 3.1, "vector": None,
     "cwes": [], "summary": "x", "fixed": [], "upgrade": "3", "version": "1",
     "specifier": ""},
]


@pytest.mark.parametrize("values", VULNERABILITIES, ids=[v["id"] for v in VULNERABILITIES])
def test_a_vulnerability_is_what_the_library_writes(values: dict[str, Any]) -> None:
    assert cyclonedx_vulnerability(ref=REF, **values) == _as_the_library_writes(values)


@pytest.mark.parametrize("version", ["2.9.1", None])
def test_a_library_component_is_what_the_library_writes(version: str | None) -> None:
    c = Component(
        ref=f"pkg:pypi/mlflow@{version}" if version else "pkg:pypi/mlflow", kind="library",
        name="mlflow", location="requirements.txt", version=version,
        purl=f"pkg:pypi/mlflow@{version}" if version else "pkg:pypi/mlflow",
        supplier="Databricks", description="ML lifecycle",
        properties={"declared_in": ["setup.cfg", "requirements.txt (line 3)"],
                    "origin": "requirements", "requirement": None if version else ">=2",
                    "distribution_hashes": ["sha512:" + "b" * 128, "sha256:" + "a" * 64,
                                            "md5:" + "c" * 32]},
        findings=(("MW501", "high", "mlflow is affected"), ("MW501", "high", "again")))
    bom = Bom()
    bom.components.add(CdxComponent(
        type=ComponentType.LIBRARY, name=c.name, version=c.version, bom_ref=c.ref,
        purl=PackageURL.from_string(str(c.purl)), description=c.description,
        supplier=OrganizationalEntity(name=c.supplier),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content="a" * 64),
                HashType(alg=HashAlgorithm.SHA_512, content="b" * 128)],
        properties=[Property(name=n, value=v) for n, v in props.encode(
            cyclonedx._common(c))]))
    assert cyclonedx._library(c) == _written(bom)["components"][0]
