"""Evidence bundles: verified offline in a folder with no project; every byte tampered with
fails a named check; a bundle rebuilt around an edited member fails its proofs."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from mlward._internal.audit.bundle import INDEX, pack, verify_bundle
from mlward._internal.ledger import open_ledger
from mlward._internal.ledger.note import NoteVerifier
from mlward.cli.main import main

from .conftest import audit


@pytest.fixture
def bundle(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) \
        -> tuple[bytes, NoteVerifier, Path]:
    """A bundle of the second of two snapshots, the verifier key, and a fresh empty folder
    (the cwd) that knows nothing of the project."""
    audit(project)
    (project / "data/train.csv").write_text("changed\n")
    second = audit(project)
    out = tmp_path / "bundle.tar.gz"
    assert main(["audit", "export", second.id[:8], "-o", str(out)]) == 0
    with open_ledger(None, project) as ledger:
        verifier = ledger.verifier
    assert verifier is not None
    fresh = tmp_path / "elsewhere"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    return out.read_bytes(), verifier, fresh


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


def test_a_bundle_verifies_offline_in_a_fresh_folder(bundle: tuple[bytes, NoteVerifier, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data, verifier, fresh = bundle
    (fresh / "b.tar.gz").write_bytes(data)
    capsys.readouterr()
    assert main(["audit", "verify", "b.tar.gz", "--key", str(verifier)]) == 0
    assert "bundle ok" in capsys.readouterr().out
    members = _members(data)  # an ordinary .tar.gz: gzip and tar read it
    assert {"snapshot.json", "previous-snapshot.json", "checkpoint", "keys/ledger.pub",
            "VERIFY.md", INDEX} <= set(members)
    result = verify_bundle(data, verifier)
    assert result.ok and result.entries == 2, result.problems


def test_every_single_byte_changed_is_caught(bundle: tuple[bytes, NoteVerifier, Path]) -> None:
    data, verifier, _ = bundle
    missed = []
    for position in range(len(data)):
        mask = 0x01 if position % 2 else 0x80  # low and high bits, alternately
        tampered = bytearray(data)
        tampered[position] ^= mask
        result = verify_bundle(bytes(tampered), verifier)
        if result.ok or not result.problems[0][1]:
            missed.append((position, mask))
    assert not missed, f"tampering not detected at {missed[:10]}"


@pytest.mark.parametrize(("member", "named"), [
    ("snapshot.json", "snapshot.json"), ("previous-snapshot.json", "previous-snapshot.json"),
    ("checkpoint", "checkpoint"), ("entries/", "entry"), ("keys/ledger.pub", "keys/ledger.pub"),
    ("VERIFY.md", "VERIFY.md")])
def test_an_edited_member_in_a_rebuilt_bundle_is_named(
        bundle: tuple[bytes, NoteVerifier, Path], member: str, named: str) -> None:
    data, verifier, _ = bundle
    members = _members(data)
    name = next(n for n in sorted(members) if n.startswith(member))
    for position in range(0, len(members[name]), max(1, len(members[name]) // 40)):
        edited = dict(members)
        raw = bytearray(edited[name])
        raw[position] ^= 0x01
        edited[name] = bytes(raw)
        result = verify_bundle(pack(edited), verifier)  # archive rebuilt: only content checks
        assert not result.ok, (name, position)
        assert any(named in what for what, _ in result.problems), result.problems


def test_a_fully_rebuilt_bundle_with_a_forged_snapshot_fails_its_proofs(
        bundle: tuple[bytes, NoteVerifier, Path]) -> None:
    """The attacker edits the snapshot and fixes every digest the bundle itself holds."""
    import hashlib

    data, verifier, _ = bundle
    members = _members(data)
    doc = json.loads(members["snapshot.json"])
    doc["files"] = [f for f in doc["files"] if f["path"] != "data/train.csv"]
    from mlward._internal.ledger.entry import canonical_json

    members["snapshot.json"] = canonical_json(doc)
    index = json.loads(members[INDEX])
    index["members"]["snapshot.json"] = hashlib.sha256(members["snapshot.json"]).hexdigest()
    members[INDEX] = json.dumps(index).encode()
    result = verify_bundle(pack(members), verifier)
    assert [w for w, _ in result.problems] == ["snapshot.json"]
    assert "does not match ledger entry" in result.problems[0][1]


def test_the_wrong_key_fails(bundle: tuple[bytes, NoteVerifier, Path]) -> None:
    from mlward._internal.ledger.note import NoteSigner

    data, verifier, _ = bundle
    other = NoteSigner.generate(verifier.name).verifier
    result = verify_bundle(data, other)
    assert not result.ok and result.problems[0][0] == "checkpoint"
    unkeyed = verify_bundle(data)
    assert unkeyed.ok and "proves consistency" in unkeyed.notes[0]


def test_hostile_bundles_end_as_problems(tmp_path: Path) -> None:
    for data in (b"", b"\x1f\x8b" + b"\0" * 100, gzip.compress(b"x" * 1000),
                 pack({INDEX: b"{", "a": b""}), pack({INDEX: b"[]"}), pack({"../x": b""})):
        result = verify_bundle(data)
        assert not result.ok and result.problems
