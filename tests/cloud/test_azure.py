"""Live Azure checks against Azurite (from npm) for Blob Storage, and a local JSON server
for the documented Azure Resource Manager answer (storage account properties), which
Azurite does not serve. A "public" finding is proven by reading the same blob anonymously."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from mlward._internal.cloud import azure
from mlward._internal.cloud.collect import Options
from mlward._internal.cloud.run import cloud_report
from mlward.cli.main import main
from mlward.findings import Report, Severity

from .conftest import Throttle, json_server, uris_of
from .test_aws import safetensors

ACCOUNT = "devstoreaccount1"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
TOKEN = "local-test-token"


class _Token(NamedTuple):
    token: str
    expires_on: int


class StaticCredential:
    """A token credential for the local management server (azure-core's protocol)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> _Token:
        return _Token(TOKEN, 2**31)


def arm(method: str, path: str) -> tuple[int, Any] | None:
    """Storage Accounts - List (api-version 2023-05-01), as Azure documents the answer."""
    if path.startswith(f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Storage/"
                       "storageAccounts"):
        base = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/ml/providers/Microsoft.Storage"
        return 200, {"value": [
            {"id": f"{base}/storageAccounts/{ACCOUNT}", "name": ACCOUNT,
             "type": "Microsoft.Storage/storageAccounts", "properties": {
                 "allowBlobPublicAccess": True, "allowSharedKeyAccess": True}},
            {"id": f"{base}/storageAccounts/lockedaccount", "name": "lockedaccount",
             "type": "Microsoft.Storage/storageAccounts", "properties": {
                 "allowBlobPublicAccess": False, "allowSharedKeyAccess": False}}]}
    return None


def sas_url(permissions: str, days: int) -> str:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    expiry = datetime.now(timezone.utc) + timedelta(days=days)
    return (f"https://{ACCOUNT}.blob.core.windows.net/models?sv=2022-11-02&ss=b&srt=co"
            f"&sp={permissions}&st={start:%Y-%m-%dT%H:%M:%SZ}"
            f"&se={expiry:%Y-%m-%dT%H:%M:%SZ}&spr=https&sig=Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4MTIzNA%3D")


@pytest.fixture(scope="module")
def service(azurite: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(azurite)
    for name, access in (("public-container", "container"), ("public-blob", "blob"),
                         ("private", None)):
        container = client.create_container(name, public_access=access)
        container.upload_blob("ckpt/model.safetensors", safetensors())
    return client


def project(root: Path) -> Path:
    """An MLflow experiment storing its artifacts in the public container, a notebook with
    a broad SAS token and a config with a read-only short one."""
    (root / "mlruns" / "3").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (root / "mlruns" / "3" / "meta.yaml").write_text(
        f"artifact_location: wasbs://public-container@{ACCOUNT}.blob.core.windows.net/ckpt\n"
        "experiment_id: '3'\nname: churn\n")
    notebook = {"cells": [{"cell_type": "code", "source": [
        f"url = '{sas_url('racwdl', 365)}'\n"], "metadata": {}, "outputs": []}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (root / "explore.ipynb").write_text(json.dumps(notebook, indent=1))
    (root / "read.cfg").write_text(f"[data]\nurl = {sas_url('r', 1)}\n")
    return root


@pytest.fixture(scope="module")
def servers(service: Any) -> Iterator[str]:
    with json_server(arm) as management:
        yield management


def run(connection: str, management: str, root: Path) -> Report:
    return cloud_report("azure", Options(connection_string=connection,
                                         subscription=SUBSCRIPTION,
                                         management_endpoint=management, links=(root,)),
                        credential=StaticCredential())


@pytest.fixture(scope="module")
def report(azurite: str, servers: str, tmp_path_factory: pytest.TempPathFactory) -> Report:
    return run(azurite, servers, project(tmp_path_factory.mktemp("azure") / "project"))


CASES = [
    ("MW837", f"az://{ACCOUNT}/public-container", f"az://{ACCOUNT}/private"),
    ("MW838", f"az://{ACCOUNT}", "az://lockedaccount"),
    ("MW839", f"az://{ACCOUNT}", "az://lockedaccount"),
    ("MW841", f"az://{ACCOUNT}/public-blob", f"az://{ACCOUNT}/private"),
    ("MW843", "explore.ipynb", "read.cfg"),
]


@pytest.mark.parametrize(("rule", "failing", "passing"), CASES, ids=[c[0] for c in CASES])
def test_check_fails_and_passes(report: Report, rule: str, failing: str, passing: str) -> None:
    uris = uris_of(report, rule)
    assert failing in uris, f"{rule} not reported on {failing}: {sorted(uris)}"
    assert passing not in uris


def test_public_finding_is_proven_by_an_anonymous_read(report: Report, azurite: str) -> None:
    """What the finding says, a client without any credential does: read the blob from the
    'blob' container, list the 'container' one; the private one refuses."""
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import ContainerClient

    found = {f.location.uri: f for f in report.findings if f.rule_id == "MW837"}
    assert set(found) == {f"az://{ACCOUNT}/public-container", f"az://{ACCOUNT}/public-blob"}
    assert all(f.details["confirmed_anonymous"] is True for f in found.values())
    url = azurite.split("BlobEndpoint=")[1].rstrip(";")
    blob = ContainerClient(url, "public-blob").download_blob("ckpt/model.safetensors")
    assert blob.readall() == safetensors()
    listed = [b.name for b in ContainerClient(url, "public-container").list_blobs()]
    assert listed == ["ckpt/model.safetensors"]
    with pytest.raises(HttpResponseError):
        ContainerClient(url, "private").download_blob("ckpt/model.safetensors").readall()


def test_mlflow_artifacts_in_a_public_container_are_critical(report: Report) -> None:
    [f] = [f for f in report.findings if f.rule_id == "MW840"]
    assert f.location.uri == f"az://{ACCOUNT}/public-container/ckpt/model.safetensors"
    assert "MLflow experiment 'churn'" in f.message


def test_sas_finding_never_prints_the_signature(report: Report) -> None:
    [f] = [f for f in report.findings if f.rule_id == "MW843"]
    text = json.dumps(f.to_dict())
    assert "Zm9vYmFy" not in text and "sig" not in (f.evidence or "")
    assert (f.evidence or "").startswith(f"{ACCOUNT}.blob.core.windows.net sp=racwdl se=")
    assert "write" in f.message and "list" in f.message and f.location.line is not None


def test_a_throttled_listing_is_inconclusive_not_clean(azurite: str, tmp_path: Path) -> None:
    """Listing containers answers 503 (Blob Storage's ServerBusy); with one attempt allowed
    it is made once and the account is inconclusive (exit 2). (A retry waits azure-storage-
    blob's exponential backoff, 15 s first: not run here.)"""
    endpoint = azurite.split("BlobEndpoint=")[1].rstrip(";")
    throttle = Throttle("comp=list", times=1)
    root = tmp_path / "empty"
    root.mkdir()
    with json_server(throttle, forward=endpoint.rsplit("/", 1)[0]) as front:
        report = cloud_report("azure", Options(
            connection_string=azurite.replace(endpoint, f"{front}/{ACCOUNT}"), retries=1,
            services=("storage",), links=(root,)))
    assert throttle.seen == 1
    assert report.exit_code(Severity.CRITICAL) == 2
    assert any("503" in s.reason for s in report.inconclusive), report.inconclusive


def test_soft_delete_on_an_account_holding_models(azurite: str, servers: str, service: Any,
                                                  tmp_path: Path) -> None:
    from azure.storage.blob import RetentionPolicy

    root = tmp_path / "empty"
    root.mkdir()
    (root / "pyproject.toml").write_text("")
    before = run(azurite, servers, root)
    service.set_service_properties(delete_retention_policy=RetentionPolicy(enabled=True,
                                                                           days=7))
    try:
        after = run(azurite, servers, root)
    finally:
        service.set_service_properties(delete_retention_policy=RetentionPolicy(enabled=False))
    assert f"az://{ACCOUNT}" in uris_of(before, "MW844")
    assert not uris_of(after, "MW844")


def test_management_api_gets_the_token(azurite: str, tmp_path: Path) -> None:
    """The management server refuses without the bearer token: the run says so (exit 2)."""
    def strict(method: str, path: str) -> tuple[int, Any] | None:
        return 401, {"error": {"code": "AuthenticationFailed"}}

    with json_server(strict) as management:
        report = cloud_report("azure", Options(connection_string=azurite,
                                               subscription=SUBSCRIPTION,
                                               management_endpoint=management),
                              credential=StaticCredential())
    assert any("HTTP 401" in s.reason for s in report.inconclusive)


def test_connection_string_comes_from_the_environment(azurite: str, service: Any,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("TEST_AZ_CS", azurite)
    out = tmp_path / "r.json"
    code = main(["cloud", "azure", "--connection-string-env", "TEST_AZ_CS", "--services",
                 "storage", "-f", "json", "-o", str(out)])
    assert code == 1  # the public containers
    assert "AccountKey" not in out.read_text()
    monkeypatch.delenv("TEST_AZ_CS")
    assert main(["cloud", "azure", "--connection-string-env", "TEST_AZ_CS"]) == 2


def test_permissions_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloud", "permissions", "azure"]) == 0
    role = json.loads(capsys.readouterr().out)
    assert role["Actions"] == azure.ACTIONS and role["DataActions"] == azure.DATA_ACTIONS
    assert all(a.endswith("/read") for a in role["Actions"] + role["DataActions"])
