"""Lineage statements and the one-command chain verification."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Run, run_json


def _record(run: Run, model: Path, *data: str | Path) -> None:
    code, _, err = run("lineage", "record", "--model", model, "--data", *data,
                       "--param", "lr=0.01", "--param", "optimizer=adam", "--run-id", "run-7")
    assert code == 0, err


def test_statement_shape(run: Run, model: Path, dataset: Path) -> None:
    run("manifest", "create", dataset, "-o", "data.manifest.json")
    _record(run, model, "data.manifest.json")
    doc = json.loads(Path(f"{model}.lineage.json").read_text())
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == "https://slsa.dev/provenance/v1"
    assert {s["name"] for s in doc["subject"]} == {"weights.bin", "config.json"}
    build = doc["predicate"]["buildDefinition"]
    assert build["externalParameters"]["parameters"] == {"lr": 0.01, "optimizer": "adam"}
    assert "python" in build["internalParameters"]["environment"]
    (dep,) = build["resolvedDependencies"]
    assert dep["annotations"]["mlward.manifest"] == "data.manifest.json"
    assert len(dep["digest"]["sha256"]) == 64
    assert doc["predicate"]["runDetails"]["metadata"]["invocationId"] == "run-7"


def test_verify_before_retraining_names_the_changed_input(run: Run, model: Path,
                                                          dataset: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.csv").write_text("1\n")
    run("manifest", "create", dataset, "-o", "data.manifest.json")
    _record(run, model, "data.manifest.json", other)  # a plain path gets its own manifest
    code, result = run_json(run, "lineage", "verify", model)
    assert code == 0 and result["ok"]
    (other / "x.csv").write_text("2\n")
    code, result = run_json(run, "lineage", "verify", model)
    assert code == 1
    broken = [link for link in result["links"] if not link["ok"]]
    assert [link["name"] for link in broken] == ["input data:other"]
    assert broken[0]["changes"] == [{"path": "x.csv", "status": "modified"}]


def test_changed_model_is_named(run: Run, model: Path, dataset: Path) -> None:
    _record(run, model, dataset)
    (model / "weights.bin").write_bytes(b"retrained")
    code, out, _ = run("lineage", "verify", model)
    assert code == 1 and "first broken link is the model" in out and "weights.bin" in out


def test_edited_input_manifest_is_named(run: Run, model: Path, dataset: Path) -> None:
    run("manifest", "create", dataset, "-o", "data.manifest.json")
    _record(run, model, "data.manifest.json")
    text = Path("data.manifest.json").read_text()
    Path("data.manifest.json").write_text(text.replace('"tool"', '"tool" ', 1))
    code, out, _ = run("lineage", "verify", model)
    assert code == 1 and "was changed after the lineage was recorded" in out


def test_code_and_its_git_commit(run: Run, model: Path, dataset: Path, tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "train.py").write_text("print('train')\n")
    for cmd in (["init", "-q"], ["add", "."],
                ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]):
        subprocess.run([git, "-C", str(code_dir), *cmd], check=True)
    run("lineage", "record", "--model", model, "--data", dataset, "--code", code_dir)
    doc = json.loads(Path(f"{model}.lineage.json").read_text())
    env = doc["predicate"]["buildDefinition"]["internalParameters"]["environment"]
    assert len(env["gitCommit"]) == 40 and env["gitDirty"] is False
    deps = doc["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert [d["annotations"]["mlward.kind"] for d in deps] == ["data", "code"]
    (code_dir / "train.py").write_text("print('changed')\n")
    code, result = run_json(run, "lineage", "verify", model)
    assert code == 1 and [link["name"] for link in result["links"] if not link["ok"]] == [
        "input code:code"]


def test_missing_statement_or_input(run: Run, model: Path, dataset: Path) -> None:
    code, _, err = run("lineage", "verify", model)
    assert code == 2 and "no lineage statement" in err
    code, _, err = run("lineage", "record", "--model", model, "--data", "nowhere")
    assert code == 2 and "nowhere does not exist" in err
    _record(run, model, dataset)
    shutil.rmtree(dataset)
    code, out, _ = run("lineage", "verify", model)
    assert code == 1 and "does not exist" in out


def _signed_chain(run: Run, model: Path, dataset: Path) -> None:
    run("manifest", "create", dataset, "-o", "data.manifest.json")
    _record(run, model, "data.manifest.json")
    run("keygen", "-o", "k", "--trust", "trust.pem")
    assert run("sign", f"{model}.lineage.json", "-k", "k.key")[0] == 0


def test_one_command_verifies_the_whole_chain(run: Run, model: Path, dataset: Path) -> None:
    _signed_chain(run, model, dataset)
    run("sign", "--oms", model, "-k", "k.key")
    code, result = run_json(run, "verify", model, "--trust", "trust.pem")
    assert code == 0
    assert [link["name"] for link in result["links"]] == [
        "signature", "OMS signature", "model", "lineage statement", "input data:data"]
    code, out, _ = run("verify", model, "--trust", "trust.pem")
    assert code == 0 and "verified" in out


def test_chain_reports_the_first_broken_link(run: Run, model: Path, dataset: Path) -> None:
    _signed_chain(run, model, dataset)
    (dataset / "labels.txt").write_text("changed")
    code, out, _ = run("verify", model, "--trust", "trust.pem")
    assert code == 1 and "first broken link is the input data:data" in out
    assert "modified  labels.txt" in out


def test_unsigned_chain_fails_at_the_signature(run: Run, model: Path, dataset: Path) -> None:
    _record(run, model, dataset)
    run("keygen", "-o", "k", "--trust", "trust.pem")
    code, out, _ = run("verify", model, "--trust", "trust.pem")
    assert code == 1 and "first broken link is the signature: no signature" in out


def test_edited_statement_fails_at_the_signature(run: Run, model: Path, dataset: Path) -> None:
    _signed_chain(run, model, dataset)
    statement = Path(f"{model}.lineage.json")
    statement.write_text(statement.read_text().replace('"lr": 0.01', '"lr": 0.1'))
    code, out, _ = run("verify", model, "--trust", "trust.pem")
    assert code == 1 and "first broken link is the signature" in out


def test_forged_statement_signed_by_an_untrusted_key(run: Run, model: Path,
                                                     dataset: Path) -> None:
    _signed_chain(run, model, dataset)
    run("keygen", "-o", "mallory")
    run("sign", f"{model}.lineage.json", "-k", "mallory.key")
    code, out, _ = run("verify", model, "--trust", "trust.pem")
    assert code == 1 and "not trusted" in out


def test_statement_with_an_escaping_subject_is_refused(run: Run, model: Path,
                                                       dataset: Path) -> None:
    _record(run, model, dataset)
    statement = Path(f"{model}.lineage.json")
    doc = json.loads(statement.read_text())
    doc["subject"][0]["name"] = "../../etc/passwd"
    statement.write_text(json.dumps(doc))
    code, out, _ = run("lineage", "verify", model)
    assert code == 1 and "escapes its root" in out


def test_envelope_payload_is_the_statement(run: Run, model: Path, dataset: Path) -> None:
    _signed_chain(run, model, dataset)
    envelope = json.loads(Path(f"{model}.lineage.json.dsse.json").read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(envelope["payload"]) == Path(f"{model}.lineage.json").read_bytes()
