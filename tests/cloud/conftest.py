"""Real servers on 127.0.0.1 for the cloud tests, started here and always stopped:

- AWS: moto's standalone server (``ThreadedMotoServer``: S3, S3 Control, IAM, STS,
  Organizations, SageMaker, Bedrock on one port), reset between test modules;
- Google Cloud Storage: ``gcp-storage-emulator``;
- Azure Blob Storage: Azurite, from npm (``.ci/run`` installs it into ``.test-tools/``);
- small JSON servers for the documented API responses no emulator serves (GCS
  ``getIamPolicy``, the Notebooks API, Azure Resource Manager): see each test.

Nothing here reaches beyond the machine: credentials are fixed test values, and boto3 is
kept from the instance metadata service.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
IAC = Path(__file__).resolve().parent / "fixtures" / "iac"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed "
                                      "(pip install -e '.[test]')")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(),
                                            verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def aws_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in AWS_ENV.items():
            mp.setenv(key, value)
        mp.delenv("AWS_PROFILE", raising=False)
        yield


def reset_moto(url: str) -> None:
    request = urllib.request.Request(url + "/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def boto(url: str, service: str, region: str = "us-east-1") -> Any:
    import boto3

    return boto3.client(service, endpoint_url=url, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


# --- small JSON servers ---------------------------------------------------------------------

Route = Callable[[str, str], "tuple[int, Any] | None"]
"""(method, path) -> (status, JSON body), or None to fall through."""


@contextmanager
def json_server(route: Route, forward: str | None = None) -> Iterator[str]:
    """A local HTTP server answering with ``route``; what it does not answer is forwarded
    to ``forward`` (byte for byte) when given, else 404."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            answer = route(self.command, self.path)
            if answer is None and forward is not None:
                self._forward()
                return
            status, body = answer or (404, {"error": {"code": 404, "message": "not found"}})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "content-length", "connection")}
            request = urllib.request.Request(str(forward) + self.path, data=body,
                                             headers=headers, method=self.command)
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    status, rheaders, data = resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as exc:
                status, rheaders, data = exc.code, exc.headers, exc.read()
            self.send_response(status)
            for k, v in rheaders.items():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_HEAD = do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Throttle:
    """A route answering the first ``times`` requests whose path contains ``part`` with
    ``status`` (throttling or a server error), then falling through; counts them."""

    def __init__(self, part: str, times: int, status: int = 503) -> None:
        self.part, self.left, self.status, self.seen = part, times, status, 0
        self.lock = threading.Lock()

    def __call__(self, method: str, path: str) -> tuple[int, Any] | None:
        if self.part not in path:
            return None
        with self.lock:
            self.seen += 1
            if self.left <= 0:
                return None
            self.left -= 1
        return self.status, {"error": {"code": self.status, "message": "slow down"}}


# --- gcp-storage-emulator -------------------------------------------------------------------

@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[str]:
    emulator = pytest.importorskip("gcp_storage_emulator.server",
                                   reason="gcp-storage-emulator is not installed "
                                   "(pip install -e '.[test]')")
    port = free_port()
    server = emulator.create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


# --- Azurite --------------------------------------------------------------------------------

def azurite_command() -> list[str]:
    """Azurite's blob service, from ``MLWARD_TEST_AZURITE`` or ``.test-tools`` (where
    ``.ci/run`` installs it with npm); skips with the reason when absent."""
    configured = os.environ.get("MLWARD_TEST_AZURITE")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO / ".test-tools" / "node_modules" / ".bin" / "azurite-blob")
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the Azure tests need Azurite (npm install "
                    "azurite; .ci/run installs both)")
    for candidate in candidates:
        if candidate.exists():
            return [str(candidate)]
    pytest.skip("Azurite is not installed: run `npm install --prefix .test-tools azurite` "
                "(.ci/run does) or set MLWARD_TEST_AZURITE to its azurite-blob script")


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A connection string for a fresh Azurite blob service on 127.0.0.1."""
    command = azurite_command()
    port = free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    log = open(workdir / "azurite.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([*command, "--blobHost", "127.0.0.1", "--blobPort", str(port),
                             "--location", str(workdir), "--skipApiVersionCheck",
                             "--loose", "--silent"], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                log.close()
                raise RuntimeError("Azurite did not start: "
                                   + (workdir / "azurite.log").read_text()[-2000:])
            time.sleep(0.2)
        # Azurite's documented development account and key (public, local only).
        yield ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
               "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==;"
               f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def uris_of(report: Any, rule: str) -> set[str]:
    """Where ``rule`` was reported."""
    return {f.location.uri for f in report.findings if f.rule_id == rule}


def by_rule(findings: Any) -> Mapping[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for f in findings:
        out.setdefault(f.rule_id, []).append(f)
    return out
