"""Live Google Cloud checks against gcp-storage-emulator (buckets, objects, bucket settings)
and local JSON servers for what the emulator does not serve.

IAM policies: the emulator stores a policy but ignores conditions and enforces nothing, so
the documented ``getIamPolicy`` responses (policy version 3, a conditional binding) are
served from a local HTTP server in front of the emulator, which forwards every other
request to it. The Vertex AI Workbench list (Notebooks API v2) is served the same way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlward._internal.cloud import gcp
from mlward._internal.cloud.collect import Options
from mlward._internal.cloud.run import cloud_report
from mlward.cli.main import main
from mlward.findings import Report, Severity

from .conftest import Throttle, json_server, uris_of
from .test_aws import checkpoint, safetensors

PROJECT = "test-project"
POLICIES = {
    "gcs-public": [{"role": "roles/storage.objectViewer", "members": ["allUsers"]}],
    "gcs-datasets": [{"role": "roles/storage.objectViewer",
                      "members": ["allAuthenticatedUsers"],
                      "condition": {"title": "datasets only", "expression":
                                    "resource.name.startsWith('projects/_/buckets/"
                                    "gcs-datasets/objects/dvc')"}}],
    "gcs-private": [{"role": "roles/storage.objectViewer",
                     "members": ["group:ml-team@example.com"]}],
}
PARQUET = b"PAR1" + b"\0" * 64


def iam_and_workbench(method: str, path: str) -> tuple[int, Any] | None:
    """The documented JSON of storage.buckets.getIamPolicy and notebooks instances.list."""
    for bucket, bindings in POLICIES.items():
        if method == "GET" and path.startswith(f"/storage/v1/b/{bucket}/iam"):
            return 200, {"kind": "storage#policy", "resourceId": f"projects/_/buckets/{bucket}",
                         "version": 3, "etag": "CAE=", "bindings": bindings}
    if method == "GET" and path.startswith(f"/v2/projects/{PROJECT}/locations/-/instances"):
        base = f"projects/{PROJECT}/locations/us-central1-a/instances"
        return 200, {"instances": [
            {"name": f"{base}/lab-public", "gceSetup": {"machineType": "e2-standard-4"}},
            {"name": f"{base}/lab-private", "gceSetup": {"machineType": "e2-standard-4",
                                                         "disablePublicIp": True}}]}
    return None


@pytest.fixture
def no_google_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Application Default Credentials and no metadata-server probe: requests to the
    local servers go unauthenticated, and nothing leaves the machine."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    from google.auth.compute_engine import _metadata

    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", True)  # google-auth reads it on import
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("CLOUDSDK_CONFIG", "/nonexistent")


def build(emulator: str) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": emulator})
    public = client.create_bucket("gcs-public")
    public.blob("models/clf.safetensors").upload_from_string(safetensors())
    public.blob("notes.txt").upload_from_string(b"hello")
    private = client.create_bucket("gcs-private")
    private.iam_configuration.uniform_bucket_level_access_enabled = True
    private.iam_configuration.public_access_prevention = "enforced"
    private.versioning_enabled = True
    private.patch()
    private.blob("models/clf.pt").upload_from_string(checkpoint())
    datasets = client.create_bucket("gcs-datasets")
    datasets.blob("dvc/files/md5/3f/0c2b6b1a8d7e4f5a6b7c8d9e0f1a2b").upload_from_string(
        PARQUET)


@pytest.fixture(scope="module")
def servers(gcs_emulator: str) -> Iterator[tuple[str, str]]:
    build(gcs_emulator)
    with json_server(iam_and_workbench, forward=gcs_emulator) as front:
        yield front, front


def project(root: Path) -> Path:
    (root / ".dvc").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (root / ".dvc" / "config").write_text(
        "['remote \"gcs\"']\n    url = gs://gcs-datasets/dvc\n"
        "['remote \"gone\"']\n    url = gs://nobody-has-this-bucket/dvc\n")
    (root / "data").mkdir()
    (root / "data" / "train.parquet.dvc").write_text(
        "outs:\n- md5: 3f0c2b6b1a8d7e4f5a6b7c8d9e0f1a2b\n  size: 68\n  path: train.parquet\n")
    return root


@pytest.fixture
def report(servers: tuple[str, str], tmp_path: Path, no_google_metadata: None) -> Report:
    storage_url, notebooks_url = servers
    return cloud_report("gcp", Options(endpoint_url=storage_url,
                                       notebooks_endpoint=notebooks_url, project=PROJECT,
                                       links=(project(tmp_path / "project"),)))


INSTANCES = f"/v2/projects/{PROJECT}/locations/us-central1-a/instances"
CASES = [
    ("MW832", "gs://gcs-public", "gs://gcs-private"),
    ("MW833", "gs://gcs-public", "gs://gcs-private"),
    ("MW834", "gs://gcs-public", "gs://gcs-private"),
    ("MW835", "gs://gcs-public", "gs://gcs-private"),
    ("MW836", f"{INSTANCES}/lab-public", f"{INSTANCES}/lab-private"),
    ("MW841", "gs://gcs-public", "gs://gcs-private"),
    ("MW842", "gs://nobody-has-this-bucket", "gs://gcs-datasets"),
]


@pytest.mark.parametrize(("rule", "failing", "passing"), CASES, ids=[c[0] for c in CASES])
def test_check_fails_and_passes(report: Report, rule: str, failing: str, passing: str) -> None:
    uris = {u.replace(u.split(INSTANCES)[0], "") if INSTANCES in u else u
            for u in uris_of(report, rule)}
    assert failing in uris, f"{rule} not reported on {failing}: {sorted(uris)}"
    assert passing not in uris


def test_nothing_left_unexamined(report: Report) -> None:
    assert not report.inconclusive, report.inconclusive
    assert {f.location.uri for f in report.facts} >= {"gs://gcs-public", "gs://gcs-private"}


def test_public_dataset_named_by_its_dvc_file(report: Report) -> None:
    """A conditional allAuthenticatedUsers binding still makes the DVC remote readable by
    any Google account; the finding names the dataset the .dvc file tracks."""
    [f] = [f for f in report.findings if f.rule_id == "MW840"]
    assert f.severity is Severity.CRITICAL
    assert f.location.uri.startswith("gs://gcs-datasets/dvc/files/md5/3f/")
    assert "dataset 'train.parquet'" in f.message and "DVC remote 'gcs'" in f.message
    assert "(conditional)" in f.message


def test_public_bucket_facts(report: Report) -> None:
    facts = {f.location.uri: f.data for f in report.facts}
    assert facts["gs://gcs-public"]["public"] == ["allUsers has roles/storage.objectViewer"]
    assert facts["gs://gcs-private"]["public"] == []
    assert [a["format"] for a in facts["gs://gcs-public"]["assets"]] == ["safetensors"]


def test_workbench_api_not_enabled_is_not_a_failure(gcs_emulator: str,
                                                    no_google_metadata: None) -> None:
    """A project without the Notebooks API answers 404: no instances, nothing missed."""
    report = cloud_report("gcp", Options(endpoint_url=gcs_emulator, project=PROJECT,
                                         notebooks_endpoint=gcs_emulator,
                                         services=("workbench",)))
    assert not report.inconclusive
    assert "API not enabled" in report.stats["workbench"]


@pytest.mark.parametrize(("retries", "judged"), [(3, True), (2, False)])
def test_throttled_calls_are_retried_then_inconclusive(gcs_emulator: str,
                                                       no_google_metadata: None,
                                                       retries: int, judged: bool) -> None:
    """The Notebooks API answers 429 twice: with 3 attempts the instances are judged; with
    2 the list is inconclusive (exit 2), never an empty, clean project."""
    throttle = Throttle("/locations/-/instances", times=2, status=429)
    with json_server(lambda m, p: throttle(m, p) or iam_and_workbench(m, p)) as notebooks:
        report = cloud_report("gcp", Options(endpoint_url=gcs_emulator, project=PROJECT,
                                             notebooks_endpoint=notebooks, retries=retries,
                                             services=("workbench",)))
    assert throttle.seen == min(retries, 3)
    assert bool(uris_of(report, "MW836")) is judged
    assert (report.exit_code(Severity.CRITICAL) == 2) is not judged
    assert judged or "429" in report.inconclusive[0].reason


def test_permissions_command(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["cloud", "permissions", "gcp"]) == 0
    role = json.loads(capsys.readouterr().out)
    assert role["includedPermissions"] == sorted(gcp.PERMISSIONS)
    assert all(p.endswith((".list", ".get", ".getIamPolicy")) for p in gcp.PERMISSIONS)
