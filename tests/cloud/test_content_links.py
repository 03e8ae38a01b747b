"""Content identification from first bytes, storage URIs of every provider, project
references (MLflow, DVC, lineage, BOM, code), SAS tokens, and the [cloud] settings."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pytest

from mlward._internal.cloud import content, sas
from mlward._internal.cloud.collect import Options, options_from_section, sample
from mlward._internal.cloud.links import StorageUri, collect, parse_uri
from mlward._internal.pipeline import scan
from mlward.errors import UsageError
from mlward.settings import Settings

from .test_aws import CUSTOMERS, checkpoint, safetensors


def _tar_gz(name: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\x80\x02N."))
    return buf.getvalue()


def _npz() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.npy", b"\x93NUMPY\x01\x00")
    return buf.getvalue()


@pytest.mark.parametrize(("key", "head", "kind", "fmt"), [
    ("a/model.pt", checkpoint(), "model", "pytorch-zip"),
    ("weights", safetensors(), "model", "safetensors"),   # no suffix: content decides
    ("clf.pkl", b"\x80\x04\x95\x10\x00", "model", "pickle"),
    ("m.gguf", b"GGUF\x03\x00\x00\x00", "model", "gguf"),
    ("m.h5", b"\x89HDF\r\n\x1a\n\x00", "model", "hdf5"),
    ("m.tflite", b"\x1c\x00\x00\x00TFL3", "model", "tflite"),
    ("model.tar.gz", _tar_gz("model.pth"), "model", "model-archive"),
    ("m.onnx", b"\x08\x07\x12\x07pytorch", "model", "onnx"),
    ("d.parquet", b"PAR1\x15\x04", "dataset", "parquet"),
    ("d.npy", b"\x93NUMPY\x01\x00", "dataset", "numpy"),
    ("d.npz", _npz(), "dataset", "numpy-npz"),
    ("d.arrow", b"ARROW1\x00\x00", "dataset", "arrow"),
    ("rows.csv.gz", gzip.compress(b"a,b\n1,2\n3,4\n"), "dataset", "csv+gzip"),
    ("rows.jsonl", b'{"a": 1}\n{"a": 2}\n{"a": 3}\n', "dataset", "jsonl"),
])
def test_identify_by_first_bytes(key: str, head: bytes, kind: str, fmt: str) -> None:
    found = content.identify(key, head[:content.HEAD_BYTES])
    assert found is not None and (found.kind, found.format) == (kind, fmt)


@pytest.mark.parametrize("head", [b"", b"hello world", b"PK\x03\x04", b"\x1f\x8b\x08garbage",
                                  b"\x80", b"\xff" * 100, b"\x00" * 16])
def test_identify_rejects_what_it_cannot_tell(head: bytes) -> None:
    assert content.identify("x.bin", head) is None


def test_personal_data_in_a_dataset_head() -> None:
    found = content.identify("customers.csv", CUSTOMERS)
    assert found is not None and set(found.sensitive) == {"US SSN", "payment card"}
    plain = content.identify("metrics.csv", b"step,loss\n1,0.5\n2,0.4\n")
    assert plain is not None and plain.sensitive == ()


def test_sampling_reads_referenced_and_model_like_keys_first() -> None:
    keys = [(f"logs/{i}.txt", 10) for i in range(50)] + [("runs/7/model.pt", 10),
                                                          ("data/z.bin", 10), ("dir/", 0)]
    read: list[str] = []

    def head(key: str) -> bytes:
        read.append(key)
        return checkpoint() if key == "runs/7/model.pt" else b"x"

    assets, sampled = sample(keys, head, Options(sample=2), prefixes=["data"])
    assert read == ["data/z.bin", "runs/7/model.pt"] and sampled == 2
    assert [a.key for a in assets] == ["runs/7/model.pt"]


@pytest.mark.parametrize(("text", "expected"), [
    ("s3://b/k/x.pt", StorageUri("aws", "s3://b", "k/x.pt")),
    ("s3a://b", StorageUri("aws", "s3://b", "")),
    ("https://b.s3.us-east-1.amazonaws.com/k", StorageUri("aws", "s3://b", "k")),
    ("https://s3.amazonaws.com/b/k", StorageUri("aws", "s3://b", "k")),
    ("gs://b/k", StorageUri("gcp", "gs://b", "k")),
    ("https://storage.googleapis.com/b/k", StorageUri("gcp", "gs://b", "k")),
    ("az://acct/cont/k", StorageUri("azure", "az://acct/cont", "k")),
    ("wasbs://cont@acct.blob.core.windows.net/k", StorageUri("azure", "az://acct/cont", "k")),
    ("abfss://cont@acct.dfs.core.windows.net/k", StorageUri("azure", "az://acct/cont", "k")),
    ("https://acct.blob.core.windows.net/cont/k", StorageUri("azure", "az://acct/cont", "k")),
    ("https://example.com/b/k", None),
    ("file:///tmp/x", None),
    ("s3://", None),
])
def test_storage_uris(text: str, expected: StorageUri | None) -> None:
    assert parse_uri(text) == expected


def test_project_references(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "model.lineage.json").write_text(json.dumps({
        "_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "model.pt"}],
        "predicate": {"buildDefinition": {"resolvedDependencies": [
            {"uri": "gs://training-data/v3/", "annotations": {}}]}}}))
    (tmp_path / "bom.cdx.json").write_text(json.dumps({
        "bomFormat": "CycloneDX", "components": [{"name": "sentiment", "externalReferences": [
            {"type": "distribution", "url": "s3://models/sentiment/v2"}]}]}))
    (tmp_path / "bom.spdx.json").write_text(json.dumps({"@context": "https://spdx.org/rdf/"
        "3.0.1/spdx-context.jsonld", "@graph": [
            {"type": "CreationInfo", "comment": "gs://not-a-component/x"},
            {"type": "dataset_DatasetPackage", "name": "reviews",
             "software_downloadLocation": "gs://corpora/reviews/"}]}))
    (tmp_path / "inventory.json").write_text(json.dumps({
        "kind": "mlward.inventory", "components": [
            {"name": "ranker", "location": "az://acct/models/ranker.onnx"}]}))
    (tmp_path / "serve.sh").write_text(
        "mlflow server --host 127.0.0.1 --default-artifact-root s3://mlflow-store/root\n")
    (tmp_path / "train.py").write_text("df = pd.read_csv('s3://raw/rows.csv')\n")
    refs = {(r.target.bucket, r.what, r.asset) for r in collect([tmp_path], tmp_path).references}
    assert ("gs://training-data", "lineage of model 'model'", "model") in refs
    assert ("s3://models", "BOM component 'sentiment'", "sentiment") in refs
    assert ("gs://corpora", "BOM component 'reviews'", "reviews") in refs
    assert ("az://acct/models", "BOM component 'ranker'", "ranker") in refs
    assert not any(r.target.bucket == "gs://not-a-component" for r in
                   collect([tmp_path], tmp_path).references if r.what.startswith("BOM"))
    assert ("s3://mlflow-store", "MLflow server --default-artifact-root", None) in refs
    assert ("s3://raw", "code train.py", None) in refs


def test_hostile_project_files_stay_bounded(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "mlruns").mkdir()
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    (tmp_path / "mlruns" / "meta.yaml").write_text(bomb + "artifact_location: s3://x/y\n")
    (tmp_path / "data.dvc").write_text(bomb)
    links = collect([tmp_path], tmp_path)
    assert [r.target.bucket for r in links.references] == ["s3://x"]


def test_sas_tokens() -> None:
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    text = ("a = 'https://acct.blob.core.windows.net/c?sv=2022-11-02&sp=rwl"
            "&st=2026-01-01T00:00:00Z&se=2027-01-01T00:00:00Z&sig=" + "A" * 43 + "%3D'\n"
            "b = '?sv=2022-11-02&sp=r&se=2030-01-01&sig=" + "B" * 43 + "'\n"
            "c = '?sv=2022-11-02&sp=w&st=2026-06-01&se=2026-06-02&sig=" + "C" * 43 + "'\n"
            "d = 'sig=" + "D" * 43 + "'\n")
    tokens = list(sas.find(text))
    assert [t.line for t in tokens] == [1, 2, 3]  # d has no version: not a SAS
    assert [sas.is_broad(t, now) for t in tokens] == [True, False, False]
    assert tokens[0].host == "acct.blob.core.windows.net"
    assert "A" * 10 not in tokens[0].evidence


def test_mlward_scan_reports_sas_tokens_in_code_and_notebooks(tmp_path: Path) -> None:
    """The secrets scanner knows a SAS by its HMAC-SHA256 signature (32 bytes, base64, URL-
    encoded or not) beside a service version; ``mlward cloud azure`` then says how broad and
    long-lived it is (MW843)."""
    signature = base64.b64encode(bytes(range(7, 39))).decode()
    url = ("https://acct.blob.core.windows.net/data/rows.csv?sv=2022-11-02&sp=rwdl"
           "&se=2030-01-01T00:00:00Z&sig=")
    (tmp_path / "load.py").write_text(f"URL = '{url}{quote(signature, safe='')}'\n"
                                      f"OTHER = '{url}{'A' * 38}%3D'\n")  # 28 bytes: no HMAC
    (tmp_path / "explore.ipynb").write_text(json.dumps({
        "cells": [{"cell_type": "code", "source": [f"df = read_csv('{url}{signature}')"],
                   "metadata": {}, "outputs": [], "execution_count": None}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    report = scan([tmp_path], settings=Settings(executor="inline"))
    found = sorted((f.location.uri, f.location.cell, f.location.line, f.rule_id)
                   for f in report.findings if "SAS" in f.message)
    assert found == [("explore.ipynb", 1, 1, "MW401"), ("load.py", None, 1, "MW401")]
    text = json.dumps(report.to_dict())
    assert signature[:20] not in text and quote(signature, safe="")[:20] not in text


def test_cloud_settings_table_is_validated() -> None:
    values = options_from_section({"sample": 5, "trusted_accounts": ["111111111111"],
                                   "timeout": 3}, "mlward.toml")
    assert Options(**values).sample == 5 and values["timeout"] == 3.0
    with pytest.raises(UsageError, match=r"mlward.toml: \[cloud\] sample"):
        options_from_section({"sample": 0}, "mlward.toml")
    with pytest.raises(UsageError, match="unknown key"):
        options_from_section({"buckets_please": 1}, "mlward.toml")
