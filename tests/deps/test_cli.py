"""``mlward deps``, ``mlward vulndb``, ``--online`` and ``mlward scan`` on a project tree.

The OSV API and export are served by a real HTTP server on 127.0.0.1 from the fixture
records; nothing here reaches the network.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlward.cli.main import main
from mlward.formats.cyclonedx import vers_range

from .conftest import OSV


def records() -> dict[str, dict[str, Any]]:
    out = {}
    for path in OSV.rglob("*"):
        if path.suffix == ".json":
            out[path.stem] = json.loads(path.read_text())
        elif path.suffix == ".yaml":  # as plain strings, the way mlward reads OSV YAML
            out[path.stem] = yaml.load(path.read_text(), Loader=yaml.BaseLoader)
    return out


class FakeOsv:
    """Canned OSV API (querybatch + vulns) and PyPI export on 127.0.0.1."""

    def __init__(self) -> None:
        self.records = records()
        self.requests: list[tuple[str, str, Any]] = []
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for rid, rec in self.records.items():
                zf.writestr(f"{rid}.json", json.dumps(rec))
        self.export = buf.getvalue()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                owner.requests.append(("GET", self.path, None))
                if self.path == "/PyPI/all.zip":
                    self._send(200, owner.export, "application/zip")
                elif self.path.startswith("/v1/vulns/"):
                    rec = owner.records.get(self.path.rsplit("/", 1)[-1])
                    self._send(200 if rec else 404, json.dumps(rec or {}).encode())
                else:
                    self._send(404, b"{}")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(("POST", self.path, body))
                results = []
                for q in body["queries"]:
                    name = q["package"]["name"]
                    ids = sorted(rid for rid, rec in owner.records.items()
                                 if any(a["package"]["name"].lower().replace("_", "-") == name
                                        for a in rec["affected"]))
                    # Pages of 3, as the real API pages long answers.
                    start = int(q.get("page_token", "0"))
                    page: dict[str, Any] = {"vulns": [
                        {"id": i, "modified": "2024-01-01T00:00:00Z"}
                        for i in ids[start:start + 3]]} if ids else {}
                    if start + 3 < len(ids):
                        page["next_page_token"] = str(start + 3)
                    results.append(page)
                self._send(200, json.dumps({"results": results}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_osv(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOsv]:
    osv = FakeOsv()
    monkeypatch.setenv("MLWARD_OSV_API", osv.url)
    monkeypatch.setenv("MLWARD_OSV_EXPORT", f"{osv.url}/PyPI/all.zip")
    yield osv
    osv.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "requirements.txt").write_text("mlflow==2.9.1\nray>=2.0\nrequests==2.31.0\n")
    (root / "docker-compose.yml").write_text(
        "services:\n  tracking:\n    image: ghcr.io/mlflow/mlflow\n"
        "    command: mlflow server --host 0.0.0.0 --port 5000\n    ports:\n"
        "      - \"5000:5000\"\n")
    return root


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(args)
    return code, json.loads(capsys.readouterr().out)


def test_deps_without_data_says_not_checked_and_exits_2(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(["deps", "-q", "-f", "json", str(project)], capsys)
    assert code == 2
    assert report["findings"] == []
    assert any("vulnerability data not available" in s["reason"] and s["inconclusive"]
               for s in report["skipped"])


def test_deps_with_local_data(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(["deps", "-q", "-f", "json", "--vuln-db", str(OSV),
                             str(project / "requirements.txt")], capsys)
    assert code == 1
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for f in report["findings"]:
        by_rule.setdefault(f["rule_id"], []).append(f)
    pinned = {f["evidence"]: f for f in by_rule["MW501"]}
    f = pinned["GHSA-554w-xh4j-8w64"]  # merged with PYSEC-2023-253, CVE-2023-6831
    assert set(f["details"]["ids"]) == {"GHSA-554w-xh4j-8w64", "PYSEC-2023-253",
                                        "CVE-2023-6831"}
    assert f["location"] == {"uri": "requirements.txt", "line": 1}
    assert report["root"] == str(project)
    assert f["details"]["version"] == "2.9.1" and "2.9.2" in f["details"]["fixed_versions"]
    assert f["severity"] == "critical"  # CVSS 3.0 vector scores 10.0
    ray = by_rule["MW502"]
    assert ray and all(x["details"]["unpinned"] and x["location"]["line"] == 2 for x in ray)
    assert not any(x["details"]["package"] == "requests" for x in report["findings"])


def test_cyclonedx_output_validates_against_the_1_6_schema(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    bom_path = tmp_path / "bom.json"
    main(["deps", "-q", "--vuln-db", str(OSV), "--cyclonedx", str(bom_path), str(project)])
    capsys.readouterr()
    text = bom_path.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6"
    vulns = {v["id"]: v for v in bom["vulnerabilities"]}
    v = vulns["GHSA-554w-xh4j-8w64"]
    assert {r["id"] for r in v["references"]} == {"PYSEC-2023-253", "CVE-2023-6831"}
    assert v["affects"][0]["ref"] == "pkg:pypi/mlflow@2.9.1"
    assert v["ratings"][0]["score"] == 10.0
    purls = {c.get("purl") for c in bom["components"]}
    assert "pkg:pypi/mlflow@2.9.1" in purls


def test_online_uses_querybatch_then_records(
        project: Path, fake_osv: FakeOsv, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(["deps", "-q", "-f", "json", "--online",
                             str(project / "requirements.txt")], capsys)
    assert code == 1
    posts = [r for r in fake_osv.requests if r[0] == "POST"]
    assert posts[0][1] == "/v1/querybatch"
    assert posts[0][2] == {"queries": [{"package": {"name": n, "ecosystem": "PyPI"}}
                                       for n in ("mlflow", "ray", "requests")]}
    fetched = {r[1] for r in fake_osv.requests if r[0] == "GET"}
    # mlflow has 21 records: seven pages, every record fetched.
    mlflow = {rid for rid, rec in fake_osv.records.items()
              if any(a["package"]["name"] == "mlflow" for a in rec["affected"])}
    assert {f"/v1/vulns/{rid}" for rid in mlflow} <= fetched
    assert any(r[2]["queries"][0].get("page_token") for r in posts[1:])
    assert any(f["evidence"] == "GHSA-554w-xh4j-8w64" for f in report["findings"])


@pytest.mark.parametrize(("specifier", "vers"), [
    ("", "vers:pypi/*"), ("<3,>=2", "vers:pypi/>=2|<3"), ("==1.0", "vers:pypi/1.0"),
    ("~=1.2", "vers:pypi/*"), ("==1.24.*", "vers:pypi/*"),
])
def test_cyclonedx_version_ranges(specifier: str, vers: str) -> None:
    assert vers_range(specifier) == vers


def test_online_failure_is_an_error_not_a_clean_result(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLWARD_OSV_API", "http://127.0.0.1:9")  # nothing listens there
    code = main(["deps", "-q", "--online", str(project)])
    assert code == 2
    assert "OSV API not reachable" in capsys.readouterr().err


def test_vulndb_update_downloads_and_scan_uses_it(
        project: Path, fake_osv: FakeOsv, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vulndb", "update"]) == 0
    out = capsys.readouterr().out
    assert "indexed" in out
    # `mlward scan` now finds the export in the cache: dependencies beside exposure findings.
    code, report = run_json(["scan", "-q", "-f", "json", str(project)], capsys)
    rules = {f["rule_id"] for f in report["findings"]}
    assert {"MW501", "MW502", "MW610", "MW640"} <= rules
    assert code == 1


def test_vulndb_update_refuses_a_non_zip(fake_osv: FakeOsv,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vulndb", "update", "--url", f"{fake_osv.url}/v1/vulns/GHSA-554w-xh4j-8w64"]) == 2
    assert "did not return a zip" in capsys.readouterr().err


def test_scan_without_data_lists_files_and_is_inconclusive(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(["scan", "-q", "-f", "json", str(project)], capsys)
    assert any(e["format"] == "dependencies (requirements)" for e in report["examined"])
    assert any("vulnerability data not available" in s["reason"] for s in report["skipped"])
    assert {f["rule_id"] for f in report["findings"]} >= {"MW610", "MW640"}
    assert code == 1  # the exposed MLflow server is high


def test_scan_with_env_var_data(project: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLWARD_VULN_DB", str(OSV))
    _, report = run_json(["scan", "-q", "-f", "json", str(project / "requirements.txt")],
                         capsys)
    assert any(f["rule_id"] == "MW501" for f in report["findings"])
    assert not any(s["inconclusive"] for s in report["skipped"])


def test_vulndb_index_reports_reuse(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vulndb", "index", str(OSV)]) == 0
    assert capsys.readouterr().out.startswith("built:")
    assert main(["vulndb", "index", str(OSV)]) == 0
    assert capsys.readouterr().out.startswith("up to date:")


def test_deps_env(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(["deps", "-q", "-f", "json", "--env", "--vuln-db", str(OSV)],
                            capsys)
    assert any(e["format"] == "installed distribution" for e in report["examined"])
    assert code in (0, 1)
