"""Object storage as a source, against moto's S3 server: only the bytes a verdict needs are
requested (the server's request log proves tensor bytes are never fetched), verdicts match a
local scan of the same files, and manifests of a bucket match local ones."""

from __future__ import annotations

import io
import json
import pickle
import sys
from pathlib import Path

import pytest

from mlward._internal.pipeline import scan
from mlward._internal.sources import HEAD_BYTES
from mlward._internal.sources.remote import MIN_REQUEST, RangedFile, ReadCounter, _Spans
from mlward.cli.main import main
from mlward.findings import Verdict
from mlward.settings import Settings

from .conftest import (
    BlobServer,
    GcsServer,
    S3Server,
    evil_pickle,
    model_tree,
    storage_ranges,
    torch_zip,
)

INLINE = Settings(executor="inline")


def _put_tree(s3: S3Server, bucket: str, tree: Path, prefix: str) -> None:
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    for path in sorted(tree.rglob("*")):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(tree).as_posix()}",
                              Body=path.read_bytes())


def test_ranged_file_reads_only_the_bytes_asked() -> None:
    data = bytes(range(256)) * 64
    asked: list[tuple[int, int]] = []

    def fetch(start: int, end: int) -> bytes:
        asked.append((start, end))
        return data[start:end]

    counter, spans = ReadCounter(), _Spans()
    f = RangedFile(fetch, len(data), counter, spans, "mem://x")
    f.seek(-22, io.SEEK_END)
    assert f.read() == data[-22:]  # at the end: nothing after it to ask for
    f.seek(8000)
    assert f.read(2000) == data[8000:10000]
    f.seek(7000)
    assert f.read(1500) == data[7000:8500]  # partly fetched: only the rest is asked for
    f.seek(100)
    assert f.read(24) == data[100:124]  # a tiny read asks for MIN_REQUEST bytes...
    assert f.read(300) == data[124:424]  # ... so the header after it is already here
    f.seek(100)
    assert f.read(10) == data[100:110]
    assert asked == [(len(data) - 22, len(data)), (8000, 10000), (7000, 8000),
                     (100, 100 + MIN_REQUEST)]
    assert (counter.requests, counter.bytes) == (4, 22 + 2000 + 1000 + MIN_REQUEST)
    f.seek(len(data) + 10)
    assert f.read(10) == b""


def test_an_object_shorter_than_listed_is_an_error_not_a_short_read() -> None:
    f = RangedFile(lambda s, e: b"abc", 10, ReadCounter(), _Spans(), "mem://x")
    with pytest.raises(OSError, match="changed while it was read"):
        f.read(10)


def test_checkpoint_tensor_bytes_are_never_fetched(s3: S3Server) -> None:
    # Laid out as torch.save lays out a model: a pickle of several KiB first (past the 4 KiB
    # every sniff reads), then the tensors, then the small records.
    state = {f"layer{n}.weight": ("storage", n, [n, 64]) for n in range(300)}
    blob = torch_zip(pickle.dumps(state, protocol=2),
                     *(bytes(range(256)) * (4 << 10) for _ in range(3)))  # 3 x 1 MiB
    s3.client().create_bucket(Bucket="ckpts")
    s3.client().put_object(Bucket="ckpts", Key="team/model.pt", Body=blob)
    s3.log.clear()
    report = scan(["s3://ckpts/team"], settings=INLINE)
    assert report.verdicts() == {"s3://ckpts/team/model.pt": Verdict.CLEAN}
    assert any(e.format == "pickle" and e.location.members == ("archive/data.pkl",)
               for e in report.examined)
    gets = s3.gets("ckpts", "team/model.pt")
    assert gets and all(g.range for g in gets), "every read of the object is a ranged GET"
    tensors = storage_ranges(blob)
    assert len(tensors) == 3 and min(start for start, _ in tensors) > HEAD_BYTES
    for g in gets:
        first, last = (int(x) for x in g.range.removeprefix("bytes=").split("-"))
        for start, end in tensors:
            # Only the bytes beside a storage member's header are read (its first bytes are
            # checked not to be a pickle's); never the tensor itself.
            if first < end and last >= start:
                assert last < start + MIN_REQUEST, f"tensor bytes fetched: {g}"
    sent = sum(g.sent for g in gets)
    assert sent < len(blob) / 100
    fact, = (f for f in report.facts if f.kind == "object")
    assert fact.location.uri == "s3://ckpts/team/model.pt"
    assert fact.data["size"] == len(blob)
    assert fact.data["read"] == sent  # what the server sent is what the scan counted
    assert fact.data["requests"] == len(gets)
    assert report.stats["object_storage"] == {"objects": 1, "bytes_stored": len(blob),
                                              "bytes_read": sent, "requests": len(gets)}


def test_payload_in_a_checkpoint_on_s3_is_found_and_never_runs(s3: S3Server,
                                                               marker: Path) -> None:
    s3.client().create_bucket(Bucket="evil")
    s3.client().put_object(Bucket="evil", Key="model.pt",
                           Body=torch_zip(evil_pickle(marker), bytes(1 << 20)))
    report = scan(["s3://evil/model.pt"], settings=INLINE)
    assert report.verdicts()["s3://evil/model.pt"] is Verdict.DANGEROUS
    assert any(f.location.uri == "s3://evil/model.pt"
               and f.location.members == ("archive/data.pkl",) for f in report.findings)
    assert not marker.exists()


def test_parquet_on_s3_is_judged_from_its_footer(s3: S3Server, marker: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    def parquet(table: object) -> bytes:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="none")
        return buf.getvalue()

    # CVE-2023-47248: a column whose extension metadata is a pickle (pyarrow < 14.0.1 loads it).
    field = pa.field("x", pa.binary(), metadata={
        b"ARROW:extension:name": b"arrow.py_extension_type",
        b"ARROW:extension:metadata": evil_pickle(marker)})
    evil = parquet(pa.table({"x": [b"a"]}).cast(pa.schema([field])))
    rows = parquet(pa.table({"v": pa.array(range(1 << 20), pa.int64())}))
    client = s3.client()
    client.create_bucket(Bucket="lake")
    client.put_object(Bucket="lake", Key="evil.parquet", Body=evil)
    client.put_object(Bucket="lake", Key="rows.parquet", Body=rows)
    report = scan(["s3://lake"], settings=INLINE)
    assert {"MW950", "MW101"} <= {f.rule_id for f in report.findings
                                  if f.location.uri == "s3://lake/evil.parquet"}
    assert report.verdicts()["s3://lake/rows.parquet"] is Verdict.CLEAN
    sent = sum(r.sent for r in s3.gets("lake", "rows.parquet"))
    assert 0 < sent < len(rows) / 100  # the footer, not the 8 MiB of rows
    assert not marker.exists()


def test_bucket_and_local_scans_agree(s3: S3Server, tmp_path: Path, marker: Path) -> None:
    tree = model_tree(tmp_path / "tree", marker, copies=2)
    _put_tree(s3, "mirror", tree, "models")
    local = scan([tree], settings=Settings(executor="thread"))
    remote = scan(["s3://mirror/models"], settings=Settings(executor="thread"))

    def key(uri: str) -> str:
        return uri.removeprefix("s3://mirror/models/")

    assert {key(u): v for u, v in remote.verdicts().items()} == local.verdicts()
    assert sorted((f.rule_id, key(f.location.uri), f.location.members, f.evidence)
                  for f in remote.findings) == sorted(
        (f.rule_id, f.location.uri, f.location.members, f.evidence) for f in local.findings)
    stats = remote.stats["object_storage"]
    assert stats["objects"] == 12 and stats["bytes_read"] <= stats["bytes_stored"]
    assert not marker.exists()


def test_model_objects_of_a_bucket_are_bom_models(s3: S3Server, tmp_path: Path,
                                                  marker: Path) -> None:
    from mlward._internal.bom.collect import Options, build_inventory

    tree = model_tree(tmp_path / "tree", marker)
    _put_tree(s3, "bom", tree, "team")
    inventory, report, _ = build_inventory([], INLINE, Options(targets=["s3://bom/team"]))
    models = {c.location: c for c in inventory.components if c.kind == "model"}
    base = "s3://bom/team/set0000"
    assert set(models) == {f"{base}/{n}" for n in ("clean.pkl", "evil.pkl", "model.pt",
                                                   "evil.pt")}  # not the zip, not the text
    evil, clean = models[f"{base}/evil.pt"], models[f"{base}/clean.pkl"]
    assert (evil.ref, evil.verdict, clean.verdict) == (f"model:{base}/evil.pt", "dangerous",
                                                       "clean")
    size = (tree / "set0000" / "evil.pt").stat().st_size
    assert [(f.path, f.size, dict(f.digests)) for f in evil.files] == [
        (f"{base}/evil.pt", size, {})]  # no digest: that would read every byte
    assert evil.properties["formats"] == ["pytorch-zip"] and evil.findings
    # Without digests, bom verify cannot check them: inconclusive, never a pass.
    from mlward._internal.bom.verify import verify

    checked = verify(inventory, tmp_path, bom_file=tmp_path / "bom.json", settings=INLINE,
                     trusted=None)
    assert {s.location.uri for s in checked.inconclusive if "no digest" in s.reason} == set(
        models)
    assert report.stats["object_storage"]["bytes_read"] < report.stats["object_storage"][
        "bytes_stored"]
    assert not marker.exists()


def test_exclude_applies_to_keys_under_the_prefix(s3: S3Server, tmp_path: Path,
                                                  marker: Path) -> None:
    tree = model_tree(tmp_path / "tree", marker)
    _put_tree(s3, "excl", tree, "p")
    report = scan(["s3://excl/p"], settings=Settings(executor="inline", exclude=("*.zip",)))
    assert "s3://excl/p/set0000/bundle.zip" not in report.verdicts()
    assert report.stats["excluded"] == {"excluded by the exclude settings": 1}
    assert any(s.location.uri == "s3://excl/p/set0000/bundle.zip" and not s.inconclusive
               for s in report.skipped)


def test_an_empty_prefix_is_inconclusive_and_a_missing_bucket_an_error(
        s3: S3Server, capsys: pytest.CaptureFixture[str]) -> None:
    s3.client().create_bucket(Bucket="empty")
    assert main(["scan", "--executor", "inline", "s3://empty/nothing/here"]) == 2
    assert "no objects under this prefix" in capsys.readouterr().out
    assert main(["scan", "--executor", "inline", "s3://no-such-bucket-here/x"]) == 2
    assert "cannot list s3://no-such-bucket-here/x" in capsys.readouterr().err


def test_missing_storage_extra_names_the_install(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if gcsfs were not installed
    assert main(["scan", "--executor", "inline", "gs://bucket/prefix"]) == 2
    assert "pip install 'mlward[gcs]'" in capsys.readouterr().err


def test_bucket_manifest_matches_the_local_one(s3: S3Server, tmp_path: Path) -> None:
    tree = tmp_path / "data"
    tree.mkdir()
    (tree / "big.bin").write_bytes(bytes(range(256)) * (12 << 10))  # 3 MiB: 3 shards
    (tree / "small.txt").write_text("hello")
    (tree / "sub").mkdir()
    (tree / "sub" / "x.json").write_text("{}")
    _put_tree(s3, "data", tree, "v1")
    options = ["--shard-size", str(1 << 20)]
    assert main(["manifest", "create", str(tree), "-o", str(tmp_path / "local.json"),
                 *options]) == 0
    assert main(["manifest", "create", "s3://data/v1", "-o", str(tmp_path / "s3.json"),
                 *options]) == 0
    local = json.loads((tmp_path / "local.json").read_text())
    remote = json.loads((tmp_path / "s3.json").read_text())
    assert remote["entries"] == local["entries"]
    assert remote["rootDigest"] == local["rootDigest"]
    assert remote["roots"] == [{"name": "v1", "path": "s3://data/v1", "type": "directory",
                                "absolute": True}]
    assert {e["path"]: next(iter(e["digest"])) for e in remote["entries"]}["big.bin"] == \
        f"sha256-sharded-{1 << 20}"

    # The manifest of the bucket, kept in a project, is a dataset of its BOM (the manifest's
    # files and digests; the bucket is not read again).
    from mlward._internal.bom.collect import build_inventory

    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "s3.json").rename(project / "v1.manifest.json")
    before = len(s3.log)
    inventory, _, _ = build_inventory([project], INLINE)
    data, = (c for c in inventory.components if c.kind == "dataset")
    assert (data.ref, data.location, data.properties["manifest"]) == (
        "data:s3://data/v1", "s3://data/v1", "v1.manifest.json")
    assert sorted((f.path, f.size, dict(f.digests)) for f in data.files) == sorted(
        (f"s3://data/v1/{e['path']}", e["size"], e["digest"]) for e in remote["entries"])
    assert len(s3.log) == before
    # bom verify re-hashes those objects where they are, and lists the prefix again.
    from mlward._internal.bom.verify import verify

    def drift() -> set[tuple[str, str]]:
        report = verify(inventory, project, bom_file=project / "bom.json", settings=INLINE,
                        trusted=None)
        return {(f.rule_id, f.location.uri) for f in report.findings}

    assert drift() == set()
    client = s3.client()
    client.put_object(Bucket="data", Key="v1/small.txt", Body=b"HELLO")
    client.put_object(Bucket="data", Key="v1/new.bin", Body=b"new")
    client.delete_object(Bucket="data", Key="v1/sub/x.json")
    assert drift() == {("MW750", "s3://data/v1/small.txt"), ("MW753", "s3://data/v1/new.bin"),
                       ("MW752", "s3://data/v1/sub/x.json")}


@pytest.mark.parametrize("store", ["gs", "az"])
def test_gcs_and_azure_scans_and_manifests_match_local(store: str, request: pytest.FixtureRequest,
                                                       tmp_path: Path, marker: Path) -> None:
    """gs:// (gcsfs) and az:// (adlfs) against their emulators: the same verdicts and findings
    as the local files, fewer bytes read than stored, and the same manifest."""
    server: GcsServer | BlobServer = request.getfixturevalue("gcs" if store == "gs"
                                                            else "azurite")
    tree = model_tree(tmp_path / "tree", marker, copies=2)
    (tree / "big.bin").write_bytes(bytes(range(256)) * (12 << 10))  # 3 MiB: 3 shards
    server.put("models", tree, "team")
    local = scan([tree], settings=INLINE)
    remote = scan([f"{store}://models/team"], settings=INLINE)

    def key(uri: str) -> str:
        return uri.removeprefix(f"{store}://models/team/")

    assert {key(u): v for u, v in remote.verdicts().items()} == local.verdicts()
    assert sorted((f.rule_id, key(f.location.uri), f.location.members, f.evidence)
                  for f in remote.findings) == sorted(
        (f.rule_id, f.location.uri, f.location.members, f.evidence) for f in local.findings)
    stats = remote.stats["object_storage"]
    assert stats["objects"] == 13 and stats["bytes_read"] < stats["bytes_stored"] / 10
    options = ["--shard-size", str(1 << 20)]
    assert main(["manifest", "create", str(tree), "-o", str(tmp_path / "local.json"),
                 *options]) == 0
    assert main(["manifest", "create", f"{store}://models/team", "-o",
                 str(tmp_path / "remote.json"), *options]) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("local.json", "remote.json"))
    assert (b["entries"], b["rootDigest"]) == (a["entries"], a["rootDigest"])
    assert not marker.exists()
