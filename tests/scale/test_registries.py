"""Where teams keep models: registered model versions on a real MLflow server (started on
127.0.0.1, as the probe tests start it) and the local Hugging Face cache. Each model version
is a ``model-version`` fact with its registry coordinates; its files are scanned where they
are, located below it."""

from __future__ import annotations

import contextlib
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlward._internal.pipeline import scan
from mlward.cli.main import main
from mlward.findings import Report, Verdict
from mlward.settings import Settings, load_settings

from .conftest import evil_pickle, free_port, torch_zip

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def _hf_cache(root: Path, marker: Path) -> Path:
    """A cache holding two revisions of acme/clf, as huggingface_hub lays it out: files in
    ``snapshots/<commit>/`` are links into ``blobs/``; ``refs/main`` names the newest."""
    repo = root / "models--acme--clf"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    blobs = {"evil": torch_zip(evil_pickle(marker), bytes(512)),
             "good": torch_zip(pickle.dumps({"w": 1}, protocol=2), bytes(512)),
             "config": b'{"model_type": "clf"}'}
    for name, data in blobs.items():
        (repo / "blobs" / name).write_bytes(data)
    for commit, weights in ((COMMIT_A, "evil"), (COMMIT_B, "good")):
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (snap / "pytorch_model.bin").symlink_to(f"../../blobs/{weights}")
        (snap / "config.json").symlink_to("../../blobs/config")
    outside = root / "outside.bin"
    outside.write_bytes(evil_pickle(marker))
    (repo / "snapshots" / COMMIT_B / "escape.bin").symlink_to(outside)
    (repo / "refs" / "main").write_text(COMMIT_B)
    (repo / "refs" / "v1").write_text(COMMIT_A + "\n")
    return root


def test_hf_cache_revisions_are_model_versions(tmp_path: Path, marker: Path) -> None:
    cache = _hf_cache(tmp_path / "hub", marker)
    report = scan(["hf-cache:acme/clf"], settings=Settings(hf_cache=str(cache)))
    versions = {f.location.uri: f.data for f in report.facts if f.kind == "model-version"}
    assert set(versions) == {f"hf-cache:acme/clf@{COMMIT_A}", f"hf-cache:acme/clf@{COMMIT_B}"}
    a = versions[f"hf-cache:acme/clf@{COMMIT_A}"]
    assert (a["registry"], a["repo"], a["repo_type"], a["revision"], a["refs"], a["files"]) == (
        "huggingface-cache", "acme/clf", "model", COMMIT_A, ["v1"], 2)
    assert versions[f"hf-cache:acme/clf@{COMMIT_B}"]["refs"] == ["main"]
    verdicts = report.verdicts()
    assert verdicts[f"hf-cache:acme/clf@{COMMIT_A}/pytorch_model.bin"] is Verdict.DANGEROUS
    assert verdicts[f"hf-cache:acme/clf@{COMMIT_B}/pytorch_model.bin"] is Verdict.CLEAN
    escape, = (s for s in report.skipped if s.location.uri.endswith("escape.bin"))
    assert escape.inconclusive and "not followed" in escape.reason
    assert not marker.exists()


def test_hf_cache_by_ref_through_the_cli(tmp_path: Path, marker: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cache = _hf_cache(tmp_path / "hub", marker)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # what huggingface_hub itself reads
    assert load_settings(env={"HF_HUB_CACHE": str(cache)}).hf_cache == str(cache)
    out = tmp_path / "r.json"
    assert main(["scan", "hf-cache:acme/clf@v1", "-f", "json", "-o", str(out)]) == 1
    report = Report.from_dict(json.loads(out.read_text()))
    assert {f.location.uri for f in report.facts if f.kind == "model-version"} == {
        f"hf-cache:acme/clf@{COMMIT_A}"}
    assert main(["scan", "hf-cache:acme/nothing"]) == 2


def test_hf_cache_revisions_are_bom_models_with_their_coordinates(
        tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlward._internal.bom.read import load

    cache = _hf_cache(tmp_path / "hub", marker)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bom.json"
    # escape.bin (a link out of the cache) is inconclusive: the BOM is incomplete, exit 2.
    assert main(["bom", "hf-cache:acme/clf", "-f", "inventory", "-o", str(out),
                 "--executor", "inline", "--quiet"]) == 2
    models = {c.ref: c for c in load(out).components
              if c.kind == "model"}
    a, b = (models[f"model:hf-cache:acme/clf@{c}"] for c in (COMMIT_A, COMMIT_B))
    assert (a.name, a.version, a.verdict) == ("acme/clf", COMMIT_A, "dangerous")
    assert dict(a.properties) == {"registry": "huggingface-cache", "repo": "acme/clf",
                                  "repo_type": "model", "revision": COMMIT_A, "refs": ["v1"],
                                  "cache": str(cache / "models--acme--clf"),
                                  "formats": ["pytorch-zip"]}
    blobs = cache / "models--acme--clf" / "blobs"
    assert [(f.path, f.size) for f in a.files] == [
        (f"hf-cache:acme/clf@{COMMIT_A}/config.json", (blobs / "config").stat().st_size),
        (f"hf-cache:acme/clf@{COMMIT_A}/pytorch_model.bin", (blobs / "evil").stat().st_size)]
    assert a.findings and all(rule.startswith("MW1") for rule, _, _ in a.findings)
    assert b.verdict == "inconclusive" and any("escape.bin" in r for r in b.incomplete)
    assert not a.incomplete and not marker.exists()
    # The same models in CycloneDX, read back.
    cdx = tmp_path / "bom.cdx.json"
    assert main(["bom", "hf-cache:acme/clf", "-o", str(cdx), "--allow-incomplete",
                 "--executor", "inline", "--quiet"]) == 0
    back = {c.ref: c for c in load(cdx).components}
    assert back[a.ref].version == COMMIT_A and back[a.ref].verdict == "dangerous"


# -- MLflow ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("mlflow")
    from probe.conftest import running, tool

    workdir = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    cmd = [str(tool("mlflow")), "server", "--backend-store-uri",
           f"sqlite:///{workdir / 'mlflow.db'}", "--artifacts-destination",
           str(workdir / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    with running(cmd, f"http://127.0.0.1:{port}", workdir, ready="/health") as url:
        yield url


def _register(url: str, tmp_path: Path, name: str, files: dict[str, bytes]) -> str:
    """Log ``files`` as a run's ``model`` artifacts and register them as a new version."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    folder = tmp_path / f"art-{name}-{len(files)}"
    folder.mkdir()
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    run = client.create_run(experiment_id="0")
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id)
    with contextlib.suppress(Exception):  # registered by an earlier call
        client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model",
                                          run_id=run.info.run_id)
    return str(version.version)


@pytest.mark.server
@pytest.mark.slow
def test_mlflow_model_versions_are_scanned_through_the_rest_api(
        mlflow_server: str, tmp_path: Path, marker: Path) -> None:
    good = _register(mlflow_server, tmp_path, "clf", {
        "model.pkl": pickle.dumps({"coef": [1.0, 2.0]}), "MLmodel": b"flavors: {}\n"})
    bad = _register(mlflow_server, tmp_path, "clf", {
        "model.pkl": evil_pickle(marker), "MLmodel": b"flavors: {}\n",
        "data/weights.pt": torch_zip(pickle.dumps({"w": 1}, protocol=2), bytes(1 << 20))})
    host = mlflow_server.removeprefix("http://")
    report = scan([f"mlflow://{host}/models/clf"], settings=Settings(executor="thread"))
    versions = {f.location.uri: f.data for f in report.facts if f.kind == "model-version"}
    base = f"mlflow://{host}/models/clf"
    assert set(versions) == {f"{base}/{good}", f"{base}/{bad}"}
    v = versions[f"{base}/{bad}"]
    assert (v["registry"], v["name"], v["version"], v["files"]) == ("mlflow", "clf", bad, 3)
    assert v["source"].startswith("runs:/") and v["run_id"] in v["source"]
    assert v["artifact_uri"].startswith("mlflow-artifacts:/")
    verdicts = report.verdicts()
    assert verdicts[f"{base}/{bad}/model.pkl"] is Verdict.DANGEROUS
    assert verdicts[f"{base}/{good}/model.pkl"] is Verdict.CLEAN
    assert verdicts[f"{base}/{bad}/data/weights.pt"] is Verdict.CLEAN
    stats = report.stats["object_storage"]  # ranged reads through the server's API
    assert stats["objects"] == 5 and stats["bytes_read"] < stats["bytes_stored"] / 10
    assert not marker.exists()

    # Each version is a BOM model with its registry coordinates.
    from mlward._internal.bom.collect import Options, build_inventory

    inventory, _, _ = build_inventory([], Settings(executor="thread"),
                                      Options(targets=[f"mlflow://{host}/models/clf"]))
    models = {c.ref: c for c in inventory.components if c.kind == "model"}
    assert set(models) == {f"model:{base}/{good}", f"model:{base}/{bad}"}
    m = models[f"model:{base}/{bad}"]
    assert (m.name, m.version, m.verdict, len(m.files)) == ("clf", bad, "dangerous", 3)
    assert (m.properties["registry"], m.properties["server"], m.properties["run_id"]) == (
        "mlflow", mlflow_server, v["run_id"])
    assert models[f"model:{base}/{good}"].verdict == "clean"

    one = scan([f"mlflow://{host}/models/clf/{good}"], settings=Settings(executor="inline"))
    assert {f.location.uri for f in one.facts if f.kind == "model-version"} == {
        f"{base}/{good}"}
    assert main(["scan", "--executor", "inline", f"mlflow://{host}/models/nope"]) == 2
