"""Provenance across clones and moves (issue 13, item 2): manifests and lineage record paths
relative to the manifest, verification reads the files where it runs and says where, and a
path outside the project is recorded only when asked, flagged as absolute."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import Run, run_json


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    (root / "data" / "train").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "data" / "train" / "a.csv").write_text("x,y\n1,2\n")
    (root / "data" / "labels.txt").write_text("cat\ndog\n")
    (root / "model").mkdir()
    (root / "model" / "weights.bin").write_bytes(bytes(range(256)))
    (root / "manifests").mkdir()
    monkeypatch.chdir(root)
    return root


def _clone(project: Path) -> Path:
    clone = project.parent / "clone"
    shutil.copytree(project, clone, symlinks=True)
    return clone


def test_manifest_roots_are_relative_to_the_manifest(run: Run, project: Path) -> None:
    assert run("manifest", "create", "data", "-o", "manifests/data.json")[0] == 0
    text = Path("manifests/data.json").read_text()
    assert json.loads(text)["roots"] == [{"name": "data", "path": "../data",
                                          "type": "directory"}]
    assert str(project) not in text


def test_a_clone_is_verified_against_its_own_files(run: Run, project: Path) -> None:
    run("manifest", "create", "data", "-o", "manifests/data.json")
    clone = _clone(project)
    code, out, _ = run("manifest", "verify", clone / "manifests" / "data.json")
    assert code == 0 and f"root data: {clone / 'data'} (recorded as ../data" in out
    (clone / "data" / "labels.txt").write_text("cat\ndog\nbird\n")  # the clone's data differs
    code, result = run_json(run, "manifest", "verify", clone / "manifests" / "data.json")
    assert code == 1
    assert result["changes"] == [{"path": "labels.txt", "status": "modified"}]
    (root,) = result["roots"]
    assert root["checked"] == str(clone / "data") and root["recorded"] == "../data"
    assert not root["absolute"]


def test_a_moved_project_still_verifies(run: Run, project: Path) -> None:
    run("manifest", "create", "data", "model/weights.bin", "-o", "manifests/m.json")
    moved = project.parent / "moved"
    project.rename(moved)
    assert run("manifest", "verify", moved / "manifests" / "m.json")[0] == 0


def test_a_root_outside_the_project_is_refused_unless_asked(run: Run, project: Path) -> None:
    outside = project.parent / "shared-data"
    outside.mkdir()
    (outside / "x.csv").write_text("1\n")
    code, _, err = run("manifest", "create", outside, "-o", "manifests/ext.json")
    assert code == 2 and "is outside" in err and "--absolute-paths" in err
    assert not Path("manifests/ext.json").exists()
    code, out, _ = run("manifest", "create", outside, "data", "-o", "manifests/ext.json",
                       "--absolute-paths")
    assert code == 0 and "recorded by absolute path" in out
    roots = json.loads(Path("manifests/ext.json").read_text())["roots"]
    assert roots == [{"name": "shared-data", "path": str(outside.resolve()),
                      "type": "directory", "absolute": True},
                     {"name": "data", "path": "../data", "type": "directory"}]
    code, out, _ = run("manifest", "verify", "manifests/ext.json")
    assert code == 0 and "recorded by absolute path" in out


def test_a_schema_1_manifest_is_read_but_needs_its_roots_given(run: Run,
                                                               project: Path) -> None:
    run("manifest", "create", "data", "-o", "manifests/data.json")
    doc = json.loads(Path("manifests/data.json").read_text())
    doc["schemaVersion"] = 1
    doc["roots"] = [{"name": "data", "uri": (project / "data").as_uri(), "type": "directory"}]
    Path("manifests/old.json").write_text(json.dumps(doc))
    code, _, err = run("manifest", "verify", "manifests/old.json")
    assert code == 2 and "schema 1" in err and "give the roots' paths" in err
    assert run("manifest", "verify", "manifests/old.json", "data")[0] == 0


def test_lineage_in_a_clone_checks_the_clone(run: Run, project: Path) -> None:
    code, _, err = run("lineage", "record", "--model", "model", "--data", "data")
    assert code == 0, err
    recorded = [Path("model.lineage.json").read_bytes(),
                *(p.read_bytes() for p in Path("model.lineage-inputs").rglob("*") if p.is_file())]
    assert not [t for t in recorded if str(project).encode() in t]  # no absolute path anywhere
    clone = _clone(project)
    code, result = run_json(run, "lineage", "verify", clone / "model")
    assert code == 0, result
    (link,) = [x for x in result["links"] if x["name"] == "input data:data"]
    assert str(clone) in link["detail"]
    (clone / "data" / "train" / "a.csv").write_text("x,y\n9,9\n")
    code, result = run_json(run, "lineage", "verify", clone / "model")
    assert code == 1
    assert [x["name"] for x in result["links"] if not x["ok"]] == ["input data:data"]
    assert run("lineage", "verify", project / "model")[0] == 0  # the original is unchanged


def test_lineage_of_data_outside_the_project_needs_absolute_paths(run: Run,
                                                                  project: Path) -> None:
    outside = project.parent / "corpus"
    outside.mkdir()
    (outside / "t.txt").write_text("text\n")
    code, _, err = run("lineage", "record", "--model", "model", "--data", outside)
    assert code == 2 and "--absolute-paths" in err
    code, _, err = run("lineage", "record", "--model", "model", "--data", outside,
                       "--absolute-paths")
    assert code == 0, err
    code, out, _ = run("lineage", "verify", "model")
    assert code == 0 and "(absolute path)" in out
