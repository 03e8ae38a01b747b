"""``mlward bom``, ``bom verify`` and ``bom diff`` as users run them: files written, signed,
recorded in the ledger, checked again after an edit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import OSV, Run

BOM = ("bom", "--executor", "inline", "--vuln-db", OSV)


def _edit_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("fmt", ["cyclonedx", "spdx"])
def test_editing_one_byte_of_the_dataset_is_named_by_verify_and_diff(
        project: Path, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fmt: str) -> None:
    monkeypatch.chdir(project)
    old, new = tmp_path / f"old.{fmt}.json", tmp_path / f"new.{fmt}.json"
    code, out, err = run(*BOM, "-f", fmt, "-o", old)
    assert code == 0, err
    assert out == ""  # the document went to the file; the summary to stderr
    assert "found: 2 models, 1 datasets, 2 libraries" in err
    assert run("bom", "verify", old)[0] == 0

    _edit_one_byte(project / "data" / "train" / "train.csv")
    code, out, _ = run("bom", "verify", old, "-f", "json")
    assert code == 1
    report = json.loads(out)
    (finding,) = report["findings"]
    assert finding["rule_id"] == "MW750"
    assert finding["location"]["uri"] == "data/train/train.csv"

    assert run(*BOM, "-f", fmt, "-o", new, "-q")[0] == 0
    code, out, _ = run("bom", "diff", old, new, "-f", "json")
    assert code == 0  # a diff informs; --fail-on-drift makes it fail
    changed = [f for f in json.loads(out)["findings"] if f["rule_id"] == "MW762"]
    assert [f["location"]["uri"] for f in changed] == ["data/train/train.csv"]
    assert run("bom", "diff", old, new, "--fail-on-drift")[0] == 1
    code, out, _ = run("bom", "diff", old, new, "-f", "markdown")
    assert "| medium | MW762 | data/train/train.csv |" in out


def test_verify_reports_missing_and_appeared_files(project: Path, run: Run,
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    bom = tmp_path / "bom.json"
    assert run(*BOM, "-o", bom, "-q")[0] == 0
    (project / "models" / "bert" / "config.json").unlink()
    (project / "data" / "train" / "new.csv").write_text("a,b\n")
    code, out, _ = run("bom", "verify", bom, "-f", "json")
    assert code == 1
    found = {(f["rule_id"], f["location"]["uri"]) for f in json.loads(out)["findings"]}
    assert found == {("MW752", "models/bert/config.json"), ("MW753", "data/train/new.csv")}
    # --fail-on raises the bar: an added file (medium) alone no longer fails
    (project / "models" / "bert" / "config.json").write_text("{}")
    assert run("bom", "verify", bom, "--fail-on", "high")[0] == 1  # config.json changed
    assert run("bom", "verify", bom, project, "--fail-on", "critical")[0] == 0


def test_signed_bom_verifies_and_tampering_breaks_it(project: Path, run: Run, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    assert run("keygen", "-o", tmp_path / "k")[0] == 0
    bom = tmp_path / "bom.cdx.json"
    code, _, err = run(*BOM, "-o", bom, "--sign", tmp_path / "k.key")
    assert code == 0 and "signed:" in err
    envelope = json.loads((tmp_path / "bom.cdx.json.dsse.json").read_text())
    assert envelope["payloadType"] == "application/vnd.cyclonedx+json"
    code, out, _ = run("verify", bom, "--key", tmp_path / "k.pub")
    assert code == 0 and "signature: valid" in out
    # bom verify checks the BOM's own envelope too (here: without keys, it says so)
    code, out, _ = run("bom", "verify", bom)
    assert code == 2 and "not checked: no trusted keys" in out
    assert run("bom", "verify", bom, "--key", tmp_path / "k.pub")[0] == 0
    bom.write_text(bom.read_text().replace('"clean"', '"CLEAN"', 1))
    assert run("verify", bom, "--key", tmp_path / "k.pub")[0] == 1
    code, out, _ = run("bom", "verify", bom, "--key", tmp_path / "k.pub", "-f", "json")
    assert code == 1
    assert [f["rule_id"] for f in json.loads(out)["findings"]] == ["MW754"]


def test_sign_needs_an_output_file(project: Path, run: Run, tmp_path: Path) -> None:
    code, _, err = run(*BOM, project, "--sign", tmp_path / "k.key")
    assert code == 2 and "--sign needs -o" in err


def test_runs_are_recorded_and_diffable_from_the_ledger(project: Path, run: Run,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.chdir(project)
    assert run("init")[0] == 0
    first = tmp_path / "first.json"
    code, _, err = run(*BOM, "-o", first)
    assert code == 0 and "recorded in the ledger" in err
    doc = json.loads(first.read_text())
    props = {p["name"]: p["value"] for p in doc["metadata"]["properties"]}
    assert props["mlward:ledger:size"].isdigit()
    assert props["mlward:ledger:checkpoint"].startswith(props["mlward:ledger:origin"])
    assert run("bom", "verify", first)[0] == 0  # the ledger holds the checkpoint

    code, out, _ = run("ledger", "log", "--format", "json")
    entries = [json.loads(line) for line in out.splitlines() if line.strip()] \
        if not out.lstrip().startswith("[") else json.loads(out)
    bom_entry = next(e for e in entries if e["action"] == "bom")
    assert set(bom_entry["digests"]) == {"sha256"}
    kept = project / ".mlward" / "boms" / f"{bom_entry['details']['inventory']}.json"
    assert kept.is_file()

    _edit_one_byte(project / "models" / "clf.pt")
    assert run(*BOM, "-o", tmp_path / "second.json", "-q")[0] == 0
    code, out, _ = run("bom", "diff", f"ledger:{bom_entry['index']}", "ledger:latest",
                       "-f", "json")
    assert code == 0
    uris = {(f["rule_id"], f["location"]["uri"]) for f in json.loads(out)["findings"]}
    assert ("MW762", "models/clf.pt") in uris
    # a kept inventory edited afterwards no longer has the digest the ledger recorded
    kept.write_text(kept.read_text().replace('"clean"', '"dangerous"', 1))
    code, _, err = run("bom", "diff", f"ledger:{bom_entry['index']}", "ledger:latest")
    assert code == 2 and "changed after the ledger recorded it" in err
    assert run("keygen", "-o", tmp_path / "k")[0] == 0
    keygen = next(e for e in _log(run) if e["action"] == "keygen")
    code, _, err = run("bom", "diff", f"ledger:{keygen['index']}", "ledger:latest")
    assert code == 2 and "not a recorded BOM" in err


def _log(run: Run) -> list[dict[str, object]]:
    code, out, _ = run("ledger", "log", "--format", "json")
    assert code == 0
    data = json.loads(out) if out.lstrip().startswith("[") else [
        json.loads(line) for line in out.splitlines() if line.strip()]
    return list(data)


def test_a_checkpoint_from_another_ledger_is_reported(project: Path, run: Run, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    assert run("init")[0] == 0
    bom = tmp_path / "bom.json"
    assert run(*BOM, "-o", bom, "-q")[0] == 0
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    assert run("init")[0] == 0
    code, out, _ = run("bom", "verify", bom, project, "-f", "json")
    assert code == 1
    assert "MW755" in {f["rule_id"] for f in json.loads(out)["findings"]}


def test_no_vulnerability_data_is_incomplete_unless_allowed(project: Path, run: Run) -> None:
    code, out, err = run("bom", "--executor", "inline", project)
    assert code == 2
    assert "vulnerability data not available" in err
    assert json.loads(out)["bomFormat"] == "CycloneDX"  # the BOM is still written
    assert run("bom", "--executor", "inline", project, "--allow-incomplete", "-q")[0] == 0


def test_bad_bom_files_are_usage_errors(run: Run, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    code, _, err = run("bom", "verify", tmp_path / "x.json")
    assert code == 2 and "is not JSON" in err
    (tmp_path / "y.json").write_text('{"hello": 1}')
    code, _, err = run("bom", "diff", tmp_path / "y.json", tmp_path / "y.json")
    assert code == 2 and "neither CycloneDX" in err
    (tmp_path / "z.json").write_text('{"bomFormat": "CycloneDX", "components": 5}')
    code, _, err = run("bom", "verify", tmp_path / "z.json")
    assert code == 2 and "not a BOM mlward can read" in err
    assert run("bom", "diff", "only-one")[0] == 2
    assert run("bom", "-f", "xml")[0] == 2


def test_report_is_written_and_referenced(project: Path, run: Run, tmp_path: Path) -> None:
    report = tmp_path / "scan.json"
    code, out, _ = run(*BOM, project, "--report", report, "-q")
    assert code == 0
    assert json.loads(report.read_text())["kind"] == "files"
    doc = json.loads(out)
    model = next(c for c in doc["components"] if c["bom-ref"] == "model:models/clf.pt")
    assert {"type": "static-analysis-report", "url": str(report),
            "comment": "mlward scan report"} in model["externalReferences"]


def test_a_probe_that_gets_no_answer_is_incomplete(project: Path, run: Run) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on (real, on this machine)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    code, _, err = run(*BOM, project, "--probe", url, "--probe-timeout", "1")
    assert code == 2
    assert f"{url}: no HTTP answer" in err
