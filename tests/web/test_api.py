"""The dashboard's JSON API and its own security, against the real server (uvicorn on
127.0.0.1), and `mlward push` / `mlward query` end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from tests.web.conftest import HOSTILE, TOKEN, Site, serve_project, tamper

from mlward._internal.inventory import open_store
from mlward._internal.web.app import create_app
from mlward._internal.web.openapi import openapi
from mlward.cli.main import main

pytestmark = pytest.mark.server


def test_every_page_renders_with_the_security_headers(site: Site) -> None:
    for path in ("/", "/inventory", "/findings", "/ledger", "/ledger/0", "/gates",
                 "/query", "/assets/1", "/api/v1/projects"):
        r = httpx.get(site.url + path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"


def test_findings_api_filters_and_pages(site: Site) -> None:
    everything = httpx.get(site.url + "/api/v1/findings").json()
    assert everything["total"] == 2  # the demo's payload and its hostile-named copy
    crit = httpx.get(site.url + "/api/v1/findings",
                     params={"severity": "critical", "path": "downloaded/"}).json()
    assert [f["rule_id"] for f in crit["items"]] == ["MW101"]
    page = httpx.get(site.url + "/api/v1/findings", params={"per_page": 1, "page": 2}).json()
    assert (page["page"], page["pages"], len(page["items"])) == (2, 2, 1)
    assert httpx.get(site.url + "/api/v1/findings",
                     params={"project": "nobody"}).json()["total"] == 0


def test_assets_api_and_lineage(site: Site) -> None:
    models = httpx.get(site.url + "/api/v1/assets", params={"kind": "model",
                                                            "q": "classifier"}).json()
    ids = [m["id"] for m in models["items"] if m["digest"]]  # the BOM's observation
    detail = httpx.get(f"{site.url}/api/v1/assets/{ids[0]}").json()
    [flow] = detail["lineage"]
    assert [n["location"] for n in flow["inputs"]] == ["data/train.csv"]
    assert httpx.get(site.url + "/api/v1/assets/999999").status_code == 404


def test_openapi_documents_every_api_route(site: Site) -> None:
    served = httpx.get(site.url + "/api/v1/openapi.json").json()
    assert served == openapi()
    routes = {getattr(r, "path", "") for r in create_app(open_store(site.db)).routes}
    routes = {r for r in routes if r.startswith("/api/")}
    assert routes == set(served["paths"])


def test_ledger_proof_verifies(site: Site) -> None:
    proof = httpx.get(site.url + "/api/v1/ledger/0/proof").json()
    assert proof["ok"] is True and proof["checkpoint"]["size"] >= 1
    ledger = httpx.get(site.url + "/api/v1/ledger").json()
    assert ledger["verify"]["ok"] is True


def test_a_tampered_entry_fails_its_proof(own_site: Site) -> None:
    tamper(own_site.root, 0)
    proof = httpx.get(own_site.url + "/api/v1/ledger/0/proof").json()
    assert proof["ok"] is False and "changed" in proof["reason"]
    assert httpx.get(own_site.url + "/api/v1/ledger").json()["verify"]["ok"] is False


def test_query_api(site: Site) -> None:
    rows = httpx.get(site.url + "/api/v1/query", params={
        "q": 'models.filter(m, m.pickle && m.findings > 0).map(m, m.path)'}).json()["rows"]
    assert sorted(r["value"] for r in rows) == sorted(["downloaded/sentiment.pkl", HOSTILE])
    bad = httpx.get(site.url + "/api/v1/query", params={"q": "models.filter("}).json()
    assert "does not compile" in bad["error"]
    long = httpx.get(site.url + "/api/v1/query", params={"q": "1 + " * 2000 + "1"}).json()
    assert "longer than" in long["error"]
    wrong = httpx.get(site.url + "/api/v1/query", params={"q": 'models[0].path + 1'}).json()
    assert wrong["error"].startswith("CEL error")


def later_report(report: Path, folder: Path) -> Path:
    """The same scan as if run again later (another digest)."""
    data = json.loads(report.read_text())
    data["finished"] = "2030-01-01T00:00:00+00:00"
    out = folder / "later.json"
    out.write_text(json.dumps(data))
    return out


def test_push_ingests_once(own_site: Site, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    # The scan already wrote its report to the inventory: pushing it again is idempotent.
    assert main(["push", own_site.url, str(own_site.report)]) == 0
    assert "already there" in capsys.readouterr().err
    later = later_report(own_site.report, tmp_path)
    assert main(["push", own_site.url, str(later), "--project", "pushed"]) == 0
    assert main(["push", own_site.url, str(later), "--project", "pushed"]) == 0
    err = capsys.readouterr().err
    assert "ingested for project pushed" in err and "already there" in err
    projects = [p["name"] for p in httpx.get(own_site.url + "/api/v1/projects").json()["items"]]
    assert "pushed" in projects


def test_ingest_refuses_what_it_must(own_site: Site) -> None:
    url = own_site.url + "/api/v1/ingest"
    assert httpx.post(url, content=b"{}", headers={"content-type": "text/plain"}
                      ).status_code == 415
    assert httpx.post(url, json={"kind": "other"}).status_code == 422
    assert httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}
                      ).status_code == 400
    deep = b"[" * 200_000 + b"]" * 200_000  # nesting that would exhaust the stack
    assert httpx.post(url, content=deep, headers={"content-type": "application/json"}
                      ).status_code == 400
    big = b'{"x": "' + b"a" * (5 << 20) + b'"}'
    assert httpx.post(url, content=big, headers={"content-type": "application/json"}
                      ).status_code == 413
    cross = httpx.post(url, content=own_site.report.read_bytes(),
                       headers={"content-type": "application/json",
                                "origin": "https://evil.example", "sec-fetch-site": "cross-site"})
    assert cross.status_code == 403


def test_dns_rebinding_host_is_refused(site: Site) -> None:
    r = httpx.get(site.url + "/api/v1/projects", headers={"host": "attacker.example"})
    assert r.status_code == 400


def test_token_protects_pages_api_and_push(tmp_path: Path, project: tuple[Path, Path],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root, report = project
    with serve_project(root, report, token=TOKEN) as s:
        assert httpx.get(s.url + "/api/v1/projects").status_code == 401
        assert httpx.get(s.url + "/api/v1/projects",
                         headers={"authorization": "Bearer wrong"}).status_code == 401
        ok = httpx.get(s.url + "/api/v1/projects",
                       headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        page = httpx.get(s.url + "/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        with httpx.Client(base_url=s.url) as browser:
            assert browser.post("/login", data={"token": "nope"}).status_code == 401
            signed = browser.post("/login", data={"token": TOKEN}, follow_redirects=False)
            assert signed.status_code == 303
            assert TOKEN not in signed.headers["set-cookie"]
            assert browser.get("/").status_code == 200
        monkeypatch.delenv("MLWARD_TOKEN", raising=False)
        assert main(["push", s.url, str(report)]) == 2  # no token
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        assert main(["push", s.url, str(report), "--token-file", str(token_file)]) == 0


def test_serve_refuses_other_addresses_without_a_token(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MLWARD_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "without an access token" in capsys.readouterr().err


def test_push_needs_https_off_this_machine(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "r.json"
    report.write_text("{}")
    assert main(["push", "http://mlward.example.com", str(report)]) == 2
    assert "https://" in capsys.readouterr().err


def test_events_announce_an_ingest(own_site: Site) -> None:
    with httpx.Client(timeout=20) as client, \
            client.stream("GET", own_site.url + "/api/v1/events") as events:
        lines = events.iter_lines()
        assert next(lines).startswith("retry:")
        assert next(lines) == "event: hello"
        later = later_report(own_site.report, own_site.root.parent)
        assert httpx.post(own_site.url + "/api/v1/ingest?project=live",
                          content=later.read_bytes(),
                          headers={"content-type": "application/json"}).status_code == 201
        for line in lines:
            if line == "event: ingest":
                break


def test_query_command_formats(project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = project
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLWARD_DB", raising=False)
    expr = 'findings.map(f, {"rule": f.rule, "path": f.path})'
    capsys.readouterr()
    assert main(["query", expr, "-f", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["path"] for r in rows} == {"downloaded/sentiment.pkl", HOSTILE}
    assert main(["query", expr, "-f", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "rule,path"
    assert main(["query", expr]) == 0
    assert "MW101" in capsys.readouterr().out
    assert main(["query", "models.filter("]) == 2


@pytest.mark.slow
def test_demo_serves_its_results(tmp_path: Path) -> None:
    """`mlward demo --serve`: the walk-through, then the dashboard over its inventory."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("MLWARD_DB", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlward", "demo", "--keep", str(tmp_path / "demo"), "--serve",
         "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, "the demo stopped instead of serving"
            assert time.monotonic() < deadline, "the dashboard never answered"
            try:
                docs = httpx.get(f"http://127.0.0.1:{port}/api/v1/documents").json()
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert {d["kind"] for d in docs["items"]} >= {"report", "gate", "audit"}
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.postgres
def test_team_server_on_postgresql(project: tuple[Path, Path], tmp_path: Path) -> None:
    """A team server: the inventory in PostgreSQL, results pushed to it, read back."""
    from tests.inventory.conftest import PG_DSN, postgres_schema
    from tests.web.conftest import running

    if not PG_DSN:
        pytest.skip("MLWARD_TEST_PG_DSN is not set (.ci/run starts a PostgreSQL server)")
    _, report = project
    with postgres_schema() as dsn, running(create_app(open_store(dsn))) as url:
        assert main(["push", url, str(report), "--project", "team-a"]) == 0
        assert main(["push", url, str(later_report(report, tmp_path)),
                     "--project", "team-b"]) == 0
        projects = httpx.get(url + "/api/v1/projects").json()["items"]
        assert [p["name"] for p in projects] == ["team-a", "team-b"]
        assert httpx.get(url + "/api/v1/findings", params={"project": "team-b"}
                         ).json()["total"] == 2


def test_gates_page_lists_gate_runs_and_alerts(own_site: Site,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from mlward._internal.ledger import record_event

    monkeypatch.chdir(own_site.root)
    monkeypatch.delenv("MLWARD_DB", raising=False)
    assert main(["gate", ".", "--policy", "baseline", "--executor", "inline", "-q",
                 "--no-alerts", "-o", str(own_site.root.parent / "gate.txt")]) == 1
    record_event("gate.alert", "https://hooks.example.com", outcome="failed",
                 details={"channel": "team", "kind": "webhook", "alert": "violations",
                          "items": 2, "attempts": 3, "error": "HTTP 500"},
                 project=own_site.root)
    gates = httpx.get(own_site.url + "/api/v1/documents", params={"kind": "gate"}).json()
    assert [d["verdict"] for d in gates["items"]] == ["fail"]
    html = httpx.get(own_site.url + "/gates").text
    assert "baseline" in html  # the policy's name, in the run's summary
    assert "https://hooks.example.com" in html and "failed: HTTP 500" in html
