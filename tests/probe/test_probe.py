"""``mlward probe`` against real Jupyter, MLflow and Ray servers on 127.0.0.1.

The servers are the real tools (installed by .ci/run through the ``probe-test`` extra). Each
test probes with read-only GETs and checks what the probe concludes.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from mlward._internal.probe import probe, probe_report
from mlward._internal.vulndb import open_index
from mlward.cli.main import main
from mlward.findings import Severity
from mlward.settings import load_settings

from .conftest import free_port, running, tool

OSV = Path(__file__).resolve().parent.parent / "fixtures" / "osv"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWARD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLWARD_VULN_DB", raising=False)


# --- the probe's own manners, against a plain local server --------------------------------

class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path))
        if self.path == "/api/version":
            self.send_response(302)
            self.send_header("Location", "/x")
            self.end_headers()
            return
        self.send_response(404)
        self.end_headers()

    def do_POST(self) -> None:  # never called by the probe
        self.seen.append(("POST", self.path))
        self.send_response(500)
        self.end_headers()


@pytest.fixture
def recorder() -> Iterator[str]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_probe_sends_only_gets_and_follows_no_redirect(recorder: str) -> None:
    result = probe(recorder, timeout=5)
    assert result.reachable and result.tool is None
    assert Recorder.seen and all(method == "GET" for method, _ in Recorder.seen)
    assert "/x" not in {p for _, p in Recorder.seen}  # the redirect was not followed


def test_probe_unknown_server_is_not_an_inconclusive_failure(recorder: str) -> None:
    report = probe_report([recorder], timeout=5)
    assert report.findings == () and report.exit_code(Severity.INFO) == 0


def test_probe_unreachable_is_inconclusive() -> None:
    report = probe_report([f"http://127.0.0.1:{free_port()}"], timeout=2)
    assert report.inconclusive and report.inconclusive[0].reason == "no HTTP answer"


def test_probe_refuses_other_schemes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "file:///etc/passwd"]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err


# --- real servers ---------------------------------------------------------------------------

@pytest.mark.server
def test_jupyter_server_without_token(workdir: Path) -> None:
    port = free_port()
    env = {"JUPYTER_CONFIG_DIR": str(workdir / "cfg"), "JUPYTER_DATA_DIR": str(workdir / "data"),
           "JUPYTER_RUNTIME_DIR": str(workdir / "rt")}
    cmd = [str(tool("jupyter-server")), "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           "--IdentityProvider.token=", "--ServerApp.password=", "--allow-root",
           f"--ServerApp.root_dir={workdir}"]
    with running(cmd, f"http://127.0.0.1:{port}", workdir, env, ready="/api") as url:
        index = open_index(OSV, settings=load_settings(env=os.environ))
        report = probe_report([url], source=index, timeout=60)
        r = probe(url, timeout=60)
    assert r.tool == "Jupyter Server" and r.version
    assert r.open_apis == ["/api/kernels"]
    rules = {f.rule_id: f for f in report.findings}
    assert rules["MW650"].severity.label == "critical"
    assert rules["MW651"].details["version"] == r.version


@pytest.mark.server
def test_jupyter_server_with_token_requires_auth(workdir: Path) -> None:
    port = free_port()
    env = {"JUPYTER_CONFIG_DIR": str(workdir / "cfg2"),
           "JUPYTER_DATA_DIR": str(workdir / "data2"), "JUPYTER_RUNTIME_DIR": str(workdir / "rt2")}
    cmd = [str(tool("jupyter-server")), "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           "--IdentityProvider.token=probe-test-token", "--allow-root",
           f"--ServerApp.root_dir={workdir}"]
    with running(cmd, f"http://127.0.0.1:{port}", workdir, env, ready="/api") as url:
        r = probe(url, timeout=60)
    assert r.tool == "Jupyter Server"
    assert r.open_apis == [] and r.auth_required == ["/api/kernels"]


def _mlflow(workdir: Path, name: str, extra: list[str]) -> tuple[list[str], dict[str, str], int]:
    port = free_port()
    (workdir / name).mkdir()
    ini = workdir / name / "auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = sqlite:///{workdir / name / 'auth.db'}\n"
                   f"admin_username = admin\nadmin_password = {secrets.token_hex(16)}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    cmd = [str(tool("mlflow")), "server", "--backend-store-uri",
           f"sqlite:///{workdir / name / 'mlflow.db'}", "--host", "127.0.0.1", "--port",
           str(port), "--workers", "1", *extra]
    return cmd, {"MLFLOW_AUTH_CONFIG_PATH": str(ini),
                 "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}, port


@pytest.mark.server
@pytest.mark.slow
def test_mlflow_without_auth(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cmd, env, port = _mlflow(workdir, "open", [])
    with running(cmd, f"http://127.0.0.1:{port}", workdir, env, ready="/health") as url:
        code = main(["probe", "-q", "-f", "json", "--timeout", "60", "--vuln-db", str(OSV),
                     url])
    report = json.loads(capsys.readouterr().out)
    by_rule = {}
    for f in report["findings"]:
        by_rule.setdefault(f["rule_id"], []).append(f)
    tool_info = by_rule["MW651"][0]["details"]
    assert tool_info["tool"] == "MLflow" and tool_info["version"]
    assert by_rule["MW650"][0]["evidence"].startswith("/api/2.0/mlflow/experiments/search")
    # GHSA-ghv6-9r9j-wh4j affects every mlflow from 0.9.0 and has no fix in this record.
    assert any(f["evidence"] == "GHSA-ghv6-9r9j-wh4j" for f in by_rule["MW501"])
    assert code == 1


@pytest.mark.server
@pytest.mark.slow
def test_mlflow_with_basic_auth(workdir: Path) -> None:
    cmd, env, port = _mlflow(workdir, "auth", ["--app-name", "basic-auth"])
    with running(cmd, f"http://127.0.0.1:{port}", workdir, env, ready="/health") as url:
        r = probe(url, timeout=60)
    assert r.tool == "MLflow"
    assert r.open_apis == [] and r.auth_required


@pytest.mark.server
@pytest.mark.slow
def test_ray_head(workdir: Path) -> None:
    ray = tool("ray")
    dash = free_port()
    cmd = [str(ray), "start", "--head", "--block", "--dashboard-host=127.0.0.1",
           f"--dashboard-port={dash}", f"--port={free_port()}", "--num-cpus=1",
           "--object-store-memory=80000000", "--include-dashboard=true",
           "--disable-usage-stats", f"--temp-dir={workdir / 'ray'}"]
    with running(cmd, f"http://127.0.0.1:{dash}", workdir, {"RAY_USAGE_STATS_ENABLED": "0"},
                 ready="/api/version") as url:
        index = open_index(OSV, settings=load_settings(env=os.environ))
        r = probe(url, timeout=60)
        report = probe_report([url], source=index, timeout=60)
    assert r.tool == "Ray" and r.version
    assert r.open_apis == ["/api/jobs/"]
    assert any(f.rule_id == "MW650" and f.severity.label == "critical" for f in report.findings)


@pytest.mark.server
def test_tensorboard(workdir: Path) -> None:
    port = free_port()
    (workdir / "tb").mkdir()
    cmd = [str(tool("tensorboard")), "--logdir", str(workdir / "tb"), "--host", "127.0.0.1",
           "--port", str(port)]
    with running(cmd, f"http://127.0.0.1:{port}", workdir, ready="/data/environment") as url:
        r = probe(url, timeout=60)
        report = probe_report([url], timeout=60)
    assert r.tool == "TensorBoard" and r.version
    assert [(f.rule_id, f.severity.label) for f in report.findings
            if f.rule_id == "MW650"] == [("MW650", "medium")]
    # No vulnerability data was given: the version is reported as not matched.
    assert any("vulnerability data not available" in s.reason for s in report.inconclusive)
