"""Loading OSV data (folders, zips), the index cache, hostile records and dependency files."""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import pytest

from mlward._internal.pipeline import scan
from mlward._internal.scanners.deps.check import check_dependencies
from mlward._internal.scanners.deps.model import Dependency
from mlward._internal.vulndb import open_index
from mlward._internal.vulndb.index import index_path
from mlward.findings import Location

from .conftest import OSV, env_settings

SHARED_OSV = Path(__file__).resolve().parents[3] / "shared" / "osv"


def test_zip_export_gives_the_same_advisories_as_the_folder(tmp_path: Path) -> None:
    export = tmp_path / "all.zip"
    with zipfile.ZipFile(export, "w") as zf:
        for path in (OSV / "ghsa").glob("*.json"):
            zf.write(path, path.name)
    from_zip = open_index(export, settings=env_settings()).advisories_for(["mlflow", "ray"])
    from_dir = open_index(OSV / "ghsa", settings=env_settings()).advisories_for(["mlflow", "ray"])
    assert {k: sorted(a.id for a in v) for k, v in from_zip.items()} == \
        {k: sorted(a.id for a in v) for k, v in from_dir.items()}


def test_index_is_reused_until_the_data_changes(tmp_path: Path) -> None:
    data = tmp_path / "osv"
    data.mkdir()
    src = OSV / "ghsa" / "GHSA-6cxr-8q3m-jwrr.json"
    (data / src.name).write_bytes(src.read_bytes())
    first = open_index(data, settings=env_settings())
    assert first.stats is not None and first.stats.pypi == 1
    assert open_index(data, settings=env_settings()).stats is None  # reused
    other = OSV / "ghsa" / "GHSA-3pww-qvr8-6mhp.json"
    (data / other.name).write_bytes(other.read_bytes())
    again = open_index(data, settings=env_settings())
    assert again.stats is not None and again.stats.pypi == 2
    assert index_path(data, env_settings()).exists()


def test_damaged_index_is_rebuilt(tmp_path: Path) -> None:
    open_index(OSV / "ghsa", settings=env_settings())
    index_path(OSV / "ghsa", env_settings()).write_bytes(b"not sqlite at all")
    assert open_index(OSV / "ghsa", settings=env_settings()).advisories_for(["ray"])["ray"]


def test_malformed_records_are_counted_not_fatal(tmp_path: Path) -> None:
    data = tmp_path / "osv"
    data.mkdir()
    (data / "good.json").write_bytes((OSV / "ghsa" / "GHSA-6cxr-8q3m-jwrr.json").read_bytes())
    (data / "bad-json.json").write_text("{not json")
    (data / "no-id.json").write_text(json.dumps({"affected": []}))
    (data / "wrong-types.json").write_text(json.dumps({"id": "X-1", "affected": "nope"}))
    (data / "bad.yaml").write_text("id: [unclosed\n")
    (data / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (data / "npm.json").write_text(json.dumps(
        {"id": "GHSA-npm", "affected": [{"package": {"ecosystem": "npm", "name": "x"}}]}))
    index = open_index(data, settings=env_settings())
    assert index.stats is not None
    assert index.stats.records == 7 and index.stats.pypi == 1
    assert len(index.stats.bad) == 5


def test_yaml_tags_are_not_constructed(tmp_path: Path, marker: Path) -> None:
    data = tmp_path / "osv"
    data.mkdir()
    (data / "evil.yaml").write_text(
        f"id: !!python/object/apply:os.system ['touch {marker}']\naffected: []\n")
    open_index(data, settings=env_settings())
    assert not marker.exists()


def test_lookup_of_500_packages_is_fast(osv_index) -> None:  # type: ignore[no-untyped-def]
    deps = [Dependency(f"package-{n}", Location("req.txt"), "==1.0") for n in range(495)]
    deps += [Dependency(n, Location("req.txt"), f"=={v}") for n, v in [
        ("mlflow", "2.9.1"), ("ray", "2.6.3"), ("torch", "1.13.0"), ("gradio", "3.33.0"),
        ("transformers", "4.35.0")]]
    start = time.perf_counter()
    results = check_dependencies(deps, osv_index)
    assert time.perf_counter() - start < 1.0
    assert sum(1 for r in results if r.result.vulnerabilities) == 5


@pytest.mark.parametrize(("name", "text"), [
    ("requirements.txt", "mlflow==" + "9" * 200_000 + "\n"),
    ("requirements.txt", "a" * 3_000_000),
    ("pyproject.toml", "[project]\ndependencies = " + "[" * 50_000 + "]" * 50_000 + "\n"),
    ("Pipfile.lock", "{" + '"a":{' * 50_000 + "}" * 50_001),
    ("environment.yml", "dependencies:\n" + "  - &a [x]\n" * 5 + "  - [" * 1 + "]\n"),
    ("poetry.lock", "[[package]]\nname = \n"),
])
def test_hostile_dependency_files_end_in_bounded_time(tmp_path: Path, name: str,
                                                      text: str) -> None:
    (tmp_path / name).write_text(text)
    start = time.perf_counter()
    report = scan([tmp_path / name])
    assert time.perf_counter() - start < 20
    assert not any(f.rule_id == "MW001" for f in report.findings)  # no scanner crash


@pytest.mark.skipif(not SHARED_OSV.is_dir(), reason="../shared/osv is not present")
def test_whole_shared_osv_set(tmp_path: Path) -> None:
    index = open_index(SHARED_OSV, settings=env_settings())
    meta = index.meta()
    assert int(meta["records"]) == 2661 + 53 and meta["bad"] == "0"
    names = index.package_names()
    assert len(names) > 600
    deps = [Dependency(n, Location("all"), "") for n in names]
    results = check_dependencies(deps, index)
    assert sum(1 for r in results if r.result.vulnerabilities) > 0.9 * len(names)
    withdrawn = [a for advs in index.advisories_for(names).values() for a in advs if a.withdrawn]
    assert len({a.id for a in withdrawn}) == 10
    assert os.environ.get("MLWARD_CACHE")  # built in the test's own cache


def test_oversized_zip_member_is_counted_not_read(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from mlward._internal.vulndb import load

    monkeypatch.setattr(load, "MAX_RECORD_BYTES", 4096)
    export = tmp_path / "all.zip"
    with zipfile.ZipFile(export, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.json", "{" + " " * 1_000_000 + "}")  # a small bomb: 1 MB from ~1 KB
        zf.write(OSV / "ghsa" / "GHSA-6cxr-8q3m-jwrr.json", "GHSA-6cxr-8q3m-jwrr.json")
    index = open_index(export, settings=env_settings())
    assert index.stats is not None and index.stats.pypi == 1
    assert index.stats.bad and "larger than 4096" in index.stats.bad[0]
