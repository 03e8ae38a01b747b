"""Manifests: create, verify (added/removed/modified/renamed), bad input, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import blake3
import pytest

from mlward._internal.provenance.errors import ProvenanceError
from mlward._internal.provenance.manifest import Manifest, create

from .conftest import Run, run_json


def test_create_records_who_where_when_and_every_file(run: Run, dataset: Path) -> None:
    code, out, _ = run("manifest", "create", dataset, "-o", "m.json")
    assert code == 0 and "3 file(s)" in out
    doc = json.loads(Path("m.json").read_text())
    assert doc["schemaVersion"] == 2
    assert set(doc["createdBy"]) == {"user", "host", "time", "tool"}
    assert doc["createdBy"]["time"].endswith("Z")
    assert doc["roots"] == [{"name": "data", "path": "data", "type": "directory"}]
    by_path = {e["path"]: e for e in doc["entries"]}
    assert set(by_path) == {"labels.txt", "train/a.csv", "train/b.csv"}
    a = dataset / "train" / "a.csv"
    assert by_path["train/a.csv"]["digest"] == {"sha256": hashlib.sha256(a.read_bytes())
                                                .hexdigest()}
    assert by_path["train/a.csv"]["size"] == a.stat().st_size
    assert [p.name for p in Path().iterdir() if p.name.startswith(".m.json")] == []


def test_root_digest_depends_on_content_not_on_who_or_when(dataset: Path) -> None:
    first, second = create([dataset]), create([dataset])
    assert first.root_digest == second.root_digest
    (dataset / "labels.txt").write_text("cat\ndog\nbird\n")
    assert create([dataset]).root_digest != first.root_digest


def test_verify_identical_exits_0(run: Run, dataset: Path) -> None:
    run("manifest", "create", dataset, "-o", "m.json")
    code, out, _ = run("manifest", "verify", "m.json")
    assert code == 0 and "identical" in out


def test_verify_lists_every_kind_of_change(run: Run, dataset: Path) -> None:
    run("manifest", "create", dataset, "-o", "m.json")
    (dataset / "train" / "a.csv").write_text("x,y\n1,999\n")            # modified
    (dataset / "labels.txt").unlink()                                   # removed
    (dataset / "train" / "b.csv").rename(dataset / "train" / "c.csv")   # renamed
    (dataset / "extra.csv").write_text("new")                           # added
    code, result = run_json(run, "manifest", "verify", "m.json")
    changes = result["changes"]
    assert code == 1
    assert {(c["path"], c["status"]) for c in changes} == {
        ("train/a.csv", "modified"), ("labels.txt", "removed"),
        ("train/c.csv", "renamed"), ("extra.csv", "added")}
    assert next(c for c in changes if c["status"] == "renamed")["from"] == "train/b.csv"


def test_verify_against_a_moved_copy(run: Run, dataset: Path, tmp_path: Path) -> None:
    run("manifest", "create", dataset, "-o", "m.json")
    moved = tmp_path / "elsewhere"
    dataset.rename(moved)
    assert run("manifest", "verify", "m.json", moved)[0] == 0
    code, _, err = run("manifest", "verify", "m.json")
    assert code == 2 and "does not exist" in err


def test_several_roots_and_a_single_file(run: Run, dataset: Path, model: Path) -> None:
    weights = model / "weights.bin"
    run("manifest", "create", dataset, weights, "-o", "m.json")
    doc = json.loads(Path("m.json").read_text())
    assert [r["name"] for r in doc["roots"]] == ["data", "weights.bin"]
    assert {e["path"] for e in doc["entries"]} >= {"data/labels.txt", "weights.bin"}
    assert run("manifest", "verify", "m.json")[0] == 0
    weights.write_bytes(b"swapped")
    code, result = run_json(run, "manifest", "verify", "m.json")
    assert code == 1 and result["changes"] == [{"path": "weights.bin", "status": "modified"}]


def test_blake3_and_whole_file_options(run: Run, dataset: Path) -> None:
    big = dataset / "big.bin"
    big.write_bytes(os.urandom(5 << 20))
    run("manifest", "create", dataset, "-o", "b3.json", "--hash", "blake3")
    entries = {e["path"]: e for e in json.loads(Path("b3.json").read_text())["entries"]}
    assert entries["big.bin"]["digest"] == {"blake3": blake3.blake3(big.read_bytes()).hexdigest()}
    run("manifest", "create", dataset, "-o", "whole.json", "--whole-file",
        "--shard-size", str(4 << 20))
    entries = {e["path"]: e for e in json.loads(Path("whole.json").read_text())["entries"]}
    assert entries["big.bin"]["digest"] == {"sha256": hashlib.sha256(big.read_bytes()).hexdigest()}
    run("manifest", "create", dataset, "-o", "sharded.json", "--shard-size", str(4 << 20))
    entries = {e["path"]: e for e in json.loads(Path("sharded.json").read_text())["entries"]}
    assert list(entries["big.bin"]["digest"]) == [f"sha256-sharded-{4 << 20}"]
    for name in ("b3.json", "whole.json", "sharded.json"):
        assert run("manifest", "verify", name)[0] == 0
    big.write_bytes(b"x" + big.read_bytes()[1:])
    for name in ("b3.json", "whole.json", "sharded.json"):
        assert run("manifest", "verify", name)[0] == 1


def test_symlinks_are_recorded_and_never_followed(run: Run, dataset: Path,
                                                  tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not part of the dataset")
    (dataset / "escape").symlink_to(outside)
    (dataset / "escape-file").symlink_to(outside / "secret.txt")
    run("manifest", "create", dataset, "-o", "m.json")
    entries = {e["path"]: e for e in json.loads(Path("m.json").read_text())["entries"]}
    assert entries["escape"] == {"path": "escape", "type": "symlink", "target": str(outside)}
    assert entries["escape-file"]["type"] == "symlink" and "digest" not in entries["escape-file"]
    assert not any(p.startswith("escape/") for p in entries)
    (dataset / "escape-file").unlink()
    (dataset / "escape-file").symlink_to(dataset / "labels.txt")
    code, result = run_json(run, "manifest", "verify", "m.json")
    assert code == 1 and result["changes"] == [{"path": "escape-file", "status": "modified"}]


def test_fifo_is_recorded_and_never_opened(run: Run, dataset: Path) -> None:
    os.mkfifo(dataset / "pipe")  # opening it for reading would block forever
    code, _, _ = run("manifest", "create", dataset, "-o", "m.json")
    assert code == 0
    entries = {e["path"]: e for e in json.loads(Path("m.json").read_text())["entries"]}
    assert entries["pipe"] == {"path": "pipe", "type": "fifo"}


def test_hashing_never_runs_what_it_reads(run: Run, dataset: Path, marker: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (exec, (f"open({str(marker)!r}, 'w').write('pwned')",))

    (dataset / "model.pkl").write_bytes(pickle.dumps(Payload()))
    run("manifest", "create", dataset, "-o", "m.json")
    assert run("manifest", "verify", "m.json")[0] == 0
    assert not marker.exists()


def _edit(path: str, change: object) -> None:
    doc = json.loads(Path(path).read_text())
    change(doc)  # type: ignore[operator]
    Path(path).write_text(json.dumps(doc))


def test_newer_schema_version_is_a_clear_error(run: Run, dataset: Path) -> None:
    run("manifest", "create", dataset, "-o", "m.json")
    _edit("m.json", lambda d: d.update(schemaVersion=3))
    code, _, err = run("manifest", "verify", "m.json")
    assert code == 2 and "schema version 3" in err and "upgrade mlward" in err


def test_edited_entries_break_the_root_digest(run: Run, dataset: Path) -> None:
    run("manifest", "create", dataset, "-o", "m.json")
    _edit("m.json", lambda d: d["entries"][0].update(size=1))
    code, _, err = run("manifest", "verify", "m.json")
    assert code == 2 and "root digest does not match" in err


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "a/../../b", "a//b", "./a"])
def test_paths_that_escape_the_root_are_refused(bad: str, dataset: Path) -> None:
    doc = create([dataset]).to_dict()
    doc["entries"][0]["path"] = bad
    with pytest.raises(ProvenanceError, match="escapes its root"):
        Manifest.from_dict(doc)


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"kind": "mlward.manifest"}',
                                     b"[" * 100_000, b'{"kind": "mlward.manifest", '
                                     b'"schemaVersion": 1, "roots": 5}'])
def test_garbage_manifests_end_in_a_message(run: Run, content: bytes) -> None:
    Path("m.json").write_bytes(content)
    code, _, err = run("manifest", "verify", "m.json")
    assert code == 2 and "mlward: error:" in err and "Traceback" not in err


def test_missing_inputs_are_clear_errors(run: Run) -> None:
    code, _, err = run("manifest", "create", "nowhere", "-o", "m.json")
    assert code == 2 and "cannot read nowhere" in err
    code, _, err = run("manifest", "verify", "nothing.json")
    assert code == 2 and "cannot read manifest nothing.json" in err


def test_a_fifo_given_as_the_root_is_never_opened(run: Run, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    assert run("manifest", "create", tmp_path / "pipe", "-o", "m.json")[0] == 0
    entries = json.loads(Path("m.json").read_text())["entries"]
    assert entries == [{"path": "pipe", "type": "fifo"}]


def test_tiny_shard_size_is_a_usage_error(run: Run, dataset: Path) -> None:
    code, _, err = run("manifest", "create", dataset, "-o", "m.json", "--shard-size", "1024")
    assert code == 2 and "shard size must be at least" in err


def test_a_manifest_inside_its_root_does_not_list_itself(run: Run, dataset: Path) -> None:
    manifest_file = dataset / "MANIFEST.json"
    run("manifest", "create", dataset, "-o", manifest_file)
    paths = {e["path"] for e in json.loads(manifest_file.read_text())["entries"]}
    assert "MANIFEST.json" not in paths
    assert run("manifest", "verify", manifest_file)[0] == 0


def _golden_tree(root: Path) -> None:
    """Files in more batches than one thread takes, small and large, a name the JSON encoder
    escapes, an empty file, a link and a FIFO."""
    (root / "sub" / "deeper").mkdir(parents=True)
    for i in range(150):
        folder = root / ("sub" if i % 2 else "sub/deeper")
        (folder / f"{i:03d}.bin").write_bytes(bytes([i]) * (i * 37))
    (root / "empty").write_bytes(b"")
    (root / 'q"uote é.txt').write_text("quoted")
    (root / "big.bin").write_bytes(bytes(range(256)) * 5000)  # over the small-file size, 1 MiB
    os.symlink("../empty", root / "sub" / "link")
    os.mkfifo(root / "pipe")


# Root digests that mlward wrote for _golden_tree before manifest create was sped up
# (entries built without re-validation, small files hashed in batches): same bytes since.
GOLDEN = {(): "4e5ceb6aa4cfb60bb97288a462369d93252ddbab7f07b490ec0851539f1c0c98",
          ("--hash", "blake3"): "f0be24af1ebf3454d0984f4fa4cee2db34707f445f899ec551883415bf544c77",
          ("--shard-size", "1048576"):
              "a8d25b3db6fc3127cb2be39f9606f2407ed2cf39e41563fed703caf5e0a9e044"}


@pytest.mark.parametrize("options", list(GOLDEN))
def test_root_digests_are_those_earlier_versions_wrote(run: Run, tmp_path: Path,
                                                       options: tuple[str, ...]) -> None:
    _golden_tree(tmp_path / "t")
    assert run("manifest", "create", tmp_path / "t", "-o", "m.json", *options)[0] == 0
    written = Manifest.load(Path("m.json"))
    assert written.root_digest == GOLDEN[options]
    assert Path("m.json").read_text().count('"type":"file"') == 153
    assert run("manifest", "verify", "m.json")[0] == 0


def test_entries_of_files_just_hashed_equal_checked_entries(tmp_path: Path) -> None:
    from mlward._internal.provenance.manifest import Entry, canonical_lines

    _golden_tree(tmp_path / "t")
    built = create([tmp_path / "t"]).entries
    files = [e for e in built if e.type == "file"]
    checked = [Entry(e.path, "file", e.size, dict(e.digest)) for e in files]
    assert files == checked and len(files) == 153
    assert [e.to_dict() for e in files] == [e.to_dict() for e in checked]
    assert [(e.label, e.content) for e in files] == [(e.label, e.content) for e in checked]
    assert canonical_lines(files) == canonical_lines(checked)
    assert Manifest.from_dict(create([tmp_path / "t"]).to_dict()).entries == built


@pytest.mark.parametrize("link", [False, True], ids=["files only", "with a symlink"])
def test_the_lines_made_with_the_entries_are_the_canonical_lines(tmp_path: Path,
                                                                 link: bool) -> None:
    """create() formats the lines of files it just hashed as it makes their entries; they
    must be what the entries give, in path order, whatever order the files were listed in."""
    from mlward._internal.provenance.manifest import canonical_lines

    for name in ("b.bin", "a/z.bin", "a.bin", "a-b/c.bin", "a/b/c/d.bin", "0.bin",
                 "\u00e9t\u00e9.bin", 'q"uote.bin'):
        (tmp_path / "t" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "t" / name).write_bytes(name.encode())
    if link:
        (tmp_path / "t" / "a" / "link").symlink_to("z.bin")
    made = create([tmp_path / "t"])
    assert made.lines == canonical_lines(made.entries)
    assert [e.path for e in made.entries] == sorted(e.path for e in made.entries)
    again = Manifest(made.roots, made.entries, made.created_by, made.spec)
    assert again.root_digest == made.root_digest
    assert any(e.type == "symlink" for e in made.entries) is link


def test_a_name_no_manifest_may_hold_is_refused_at_creation(run: Run, dataset: Path) -> None:
    (dataset / "back\\slash.csv").write_text("x\n")
    code, _, err = run("manifest", "create", dataset, "-o", "m.json")
    assert code == 2 and "not a plain relative path" in err and not Path("m.json").exists()


def test_a_path_listed_twice_is_refused_wherever_it_sits(dataset: Path) -> None:
    doc = create([dataset]).to_dict()
    doc["entries"] = [*doc["entries"], doc["entries"][0]]  # out of order: sorted, they meet
    doc["entries"].reverse()
    with pytest.raises(ProvenanceError, match="same path twice"):
        Manifest.from_dict(doc)
