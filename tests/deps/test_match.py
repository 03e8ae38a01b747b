"""PEP 440 matching against real OSV records, at hand-checked version boundaries."""

from __future__ import annotations

import pytest

from mlward._internal.vulndb import LocalIndex
from mlward._internal.vulndb.cvss import base_score_v3
from mlward._internal.vulndb.match import check_range, check_version
from mlward.findings import Severity


def ids_for(index: LocalIndex, name: str, version: str) -> set[str]:
    advs = index.advisories_for([name]).get(name, [])
    return {i for v in check_version(name, version, advs).vulnerabilities for i in v.ids}


# GHSA-76cg-cfhx-373f (CVE-2024-37052): mlflow introduced 1.1.0, last_affected 2.13.1.
@pytest.mark.parametrize(("version", "affected"), [
    ("1.0.0", False),        # just below introduced
    ("1.1.0", True),         # at introduced
    ("2.13.1", True),        # at last_affected: still affected
    ("2.13.2", False),       # just above last_affected
    ("2.13.1.post1", False), # a post-release is above last_affected
])
def test_mlflow_last_affected_range(osv_index: LocalIndex, version: str, affected: bool) -> None:
    assert ("GHSA-76cg-cfhx-373f" in ids_for(osv_index, "mlflow", version)) is affected


# GHSA-554w-xh4j-8w64 / PYSEC-2023-253 (CVE-2023-6831): mlflow fixed in 2.9.2.
@pytest.mark.parametrize(("version", "affected"), [
    ("2.9.1", True),
    ("2.9.2rc0", True),      # a pre-release of the fix sorts below it
    ("2.9.2", False),        # at fixed
    ("2.10.0", False),
])
def test_mlflow_fixed_boundary(osv_index: LocalIndex, version: str, affected: bool) -> None:
    assert ("GHSA-554w-xh4j-8w64" in ids_for(osv_index, "mlflow", version)) is affected


# GHSA-q874-g24w-4q9g (CVE-2022-29241): jupyter_server <1.17.1, and the 2.0.0a0 pre-release.
@pytest.mark.parametrize(("name", "version", "affected"), [
    ("jupyter_server", "1.17.0", True),
    ("jupyter-server", "1.17.1", False),
    ("Jupyter.Server", "2.0.0a0", True),   # PEP 503: all three names are one package
    ("jupyter_server", "2.0.0a1", False),  # at the second range's fix
    ("jupyter_server", "2.0.0", False),
])
def test_jupyter_server_two_ranges_and_names(osv_index: LocalIndex, name: str, version: str,
                                             affected: bool) -> None:
    advs = osv_index.advisories_for([name]).get("jupyter-server", [])
    found = {i for v in check_version(name, version, advs).vulnerabilities for i in v.ids}
    assert ("GHSA-q874-g24w-4q9g" in found) is affected


# GHSA-6cxr-8q3m-jwrr (CVE-2023-6020): ray last_affected 2.6.3, no fix in this record.
@pytest.mark.parametrize(("version", "affected"), [
    ("2.6.3rc1", True), ("2.6.3", True), ("2.6.4", False), ("2.7.0rc0", False),
])
def test_ray_last_affected_without_fix(osv_index: LocalIndex, version: str,
                                       affected: bool) -> None:
    assert ("GHSA-6cxr-8q3m-jwrr" in ids_for(osv_index, "ray", version)) is affected


def test_aliases_merge_into_one_vulnerability(osv_index: LocalIndex) -> None:
    # PYSEC-2023-253 and GHSA-554w-xh4j-8w64 are both CVE-2023-6831.
    advs = osv_index.advisories_for(["mlflow"])["mlflow"]
    vulns = check_version("mlflow", "2.9.1", advs).vulnerabilities
    merged = [v for v in vulns if "CVE-2023-6831" in v.ids]
    assert len(merged) == 1
    assert set(merged[0].ids) == {"GHSA-554w-xh4j-8w64", "PYSEC-2023-253", "CVE-2023-6831"}
    assert merged[0].id == "GHSA-554w-xh4j-8w64"
    assert "2.9.2" in merged[0].fixed


def test_torch_pysec_and_ghsa_merge(osv_index: LocalIndex) -> None:
    # PYSEC-2022-43015 and GHSA-47fc-vmwq-366v: CVE-2022-45907, fixed in 1.13.1.
    advs = osv_index.advisories_for(["torch"])["torch"]
    vulns = check_version("torch", "1.13.0", advs).vulnerabilities
    merged = [v for v in vulns if "CVE-2022-45907" in v.ids]
    assert len(merged) == 1 and {"PYSEC-2022-43015", "GHSA-47fc-vmwq-366v"} <= set(merged[0].ids)
    assert not [v for v in check_version("torch", "1.13.1", advs).vulnerabilities
                if "CVE-2022-45907" in v.ids]


def test_withdrawn_record_is_skipped(osv_index: LocalIndex) -> None:
    # PYSEC-2023-73 (redis, every version) was withdrawn on 2023-06-06.
    advs = osv_index.advisories_for(["redis"])["redis"]
    assert [a.id for a in advs] == ["PYSEC-2023-73"] and advs[0].withdrawn
    assert check_version("redis", "4.5.5", advs).vulnerabilities == ()
    assert check_range("redis", "", advs).vulnerabilities == ()


def test_smallest_upgrade_clears_every_advisory(osv_index: LocalIndex) -> None:
    advs = osv_index.advisories_for(["transformers"])["transformers"]
    # <4.36.0 (two advisories) and <4.38.0: the smallest version clearing all three is 4.38.0.
    result = check_version("transformers", "4.35.0", advs)
    assert len(result.vulnerabilities) == 3
    assert result.upgrade == "4.38.0"


def test_no_upgrade_when_an_advisory_has_no_fix(osv_index: LocalIndex) -> None:
    # GHSA-ghv6-9r9j-wh4j affects mlflow >= 0.9.0 with no fixed version.
    result = check_version("mlflow", "2.0.0", osv_index.advisories_for(["mlflow"])["mlflow"])
    assert result.upgrade is None


def test_unpinned_range_matches_affected_versions_inside(osv_index: LocalIndex) -> None:
    advs = osv_index.advisories_for(["ray"])["ray"]
    inside = check_range("ray", ">=2.0,<3", advs)
    assert {v.id for v in inside.vulnerabilities} >= {"GHSA-6cxr-8q3m-jwrr"}
    assert all("2.6.3" in v.affected_versions for v in inside.vulnerabilities)
    assert check_range("ray", ">=2.7", advs).vulnerabilities == ()


def test_unbounded_requirement_is_matched(osv_index: LocalIndex) -> None:
    advs = osv_index.advisories_for(["transformers"])["transformers"]
    assert len(check_range("transformers", "", advs).vulnerabilities) == 3


@pytest.mark.parametrize(("vector", "score"), [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:L/A:N", 9.3),   # GHSA-6cxr-8q3m-jwrr
    ("CVSS:3.1/AV:N/AC:H/PR:L/UI:R/S:U/C:H/I:H/A:H", 7.1),   # GHSA-q874-g24w-4q9g
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:N", 0.0),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N", 5.4),
])
def test_cvss_v3_base_score(vector: str, score: float) -> None:
    assert base_score_v3(vector) == score


def test_cvss_rejects_garbage() -> None:
    assert base_score_v3("CVSS:3.1/AV:X") is None
    assert base_score_v3("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N") \
        is None


def test_severity_comes_from_the_vector(osv_index: LocalIndex) -> None:
    advs = osv_index.advisories_for(["ray"])["ray"]
    v = next(v for v in check_version("ray", "2.6.0", advs).vulnerabilities
             if v.id == "GHSA-6cxr-8q3m-jwrr")
    assert v.score == 9.3 and v.severity is Severity.CRITICAL
