"""Evidence bundles: one snapshot and its proofs, checkable offline on another machine.

``bundle.tar.gz`` holds ``mlward-bundle.json`` (the index: format, snapshot id, origin,
verifier and witness keys, the entries and the SHA-256 of every other member),
``snapshot.json`` (and ``previous-snapshot.json`` when there is one), ``checkpoint`` (the
signed, possibly cosigned, checkpoint), ``keys/ledger.pub``, ``keys/witnesses.pub``, one
``entries/<index>.tlog-proof`` receipt (c2sp.org/tlog-proof) per ledger entry the snapshot
depends on (its own, the previous snapshot's, and those that say who changed what since), and
``VERIFY.md``.

The bytes are deterministic, so the verifier can hold them to one form: the tar is rebuilt from
its members and compared byte for byte; the gzip header is fixed but for a SHA-256 of the
compressed data and trailer, carried in a gzip extra field (``MW``) that every gzip reader
skips. Any byte changed anywhere in the file therefore fails a named check (archive digest,
compressed data, tar layout, a member's digest, a signature, an inclusion proof, the snapshot's
content address), and a bundle rebuilt around an edited member fails the signature and proofs.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlward._internal.audit.errors import AuditError

if TYPE_CHECKING:
    from mlward._internal.ledger import Ledger
    from mlward._internal.ledger.note import NoteVerifier
    from mlward._internal.ledger.witness import WitnessVerifier

FORMAT = "mlward-audit-bundle/1"
INDEX = "mlward-bundle.json"
MAX_BUNDLE = 1 << 30
MAX_TAR = 2 << 30
MAX_MEMBERS = 10_000
_EXTRA_ID = b"MW"
# gzip: deflate, FEXTRA, mtime 0, best compression, unknown OS
_HEADER = b"\x1f\x8b\x08\x04" + b"\x00\x00\x00\x00" + b"\x02\xff"
_XLEN = struct.pack("<H", 4 + 32)
_SUBFIELD = _EXTRA_ID + struct.pack("<H", 32)
_PREFIX = _HEADER + _XLEN + _SUBFIELD
HEAD_SIZE = len(_PREFIX) + 32

VERIFY_TEXT = """# Verifying this evidence bundle

This bundle holds an mlward audit snapshot ({snapshot}) of the ledger {origin}, the ledger
entries it depends on with their inclusion proofs, the signed checkpoint they are proven in,
and the public keys. Check it offline, with no access to the project:

    mlward audit verify bundle.tar.gz --key '{verifier}'

Pass the ledger's verifier key you obtained independently (from the project's owners, not
from this bundle): the bundle's own copy proves consistency, not who signed. Witness keys
(`--witness KEY`) check the checkpoint's cosignatures. Exit code 0: every check passed;
1: something was altered, and the output names it.

By hand: each `entries/N.tlog-proof` is a c2sp.org/tlog-proof receipt (`mlward ledger verify
--receipt FILE --key KEY`); `snapshot.json` hashes (SHA-256) to the snapshot id that the
`audit.snapshot` entry's `digests.sha256` holds.
"""


def _tar(members: Sequence[tuple[str, bytes]]) -> bytes:
    """The canonical tar of ``members`` (in order): ustar, regular files, mode 0644, owner 0,
    time 0."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _gzip(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = compressor.compress(data) + compressor.flush() + struct.pack(
        "<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return _PREFIX + hashlib.sha256(body).digest() + body


def pack(members: Mapping[str, bytes]) -> bytes:
    """The bundle bytes: the index first, then the other members by name."""
    return _gzip(_tar([(n, members[n]) for n in _order(members)]))


def _order(members: Mapping[str, bytes]) -> list[str]:
    return [INDEX] * (INDEX in members) + sorted(n for n in members if n != INDEX)


def export_bundle(ledger: Ledger, project: Path, snapshot_id: str, output: Path) -> int:
    """Write the evidence bundle of snapshot ``snapshot_id``; return the entries it holds."""
    from mlward._internal.audit.diff import attribute, diff_snapshots
    from mlward._internal.audit.history import proof_tree
    from mlward._internal.audit.record import recorded, snapshot_folder
    from mlward._internal.audit.snapshot import Snapshot
    from mlward._internal.io import atomic_write_bytes
    from mlward._internal.ledger.note import Receipt

    history = recorded(ledger)
    position = next((n for n, r in enumerate(history) if r.id == snapshot_id), None)
    if position is None:
        raise AuditError(f"snapshot {snapshot_id} is not in the ledger")
    if ledger.verifier is None:
        raise AuditError("exporting needs the ledger's verifier key")
    this = history[position]
    folder = snapshot_folder(project)
    snapshot = Snapshot.load(folder, this.id)
    docs = {"snapshot.json": snapshot.canonical()}
    roles = {this.index: "snapshot"}
    if position > 0:
        prev = history[position - 1]
        roles[prev.index] = "previous-snapshot"
        try:
            prev_doc = Snapshot.load(folder, prev.id)
        except AuditError:
            prev_doc = None
        if prev_doc is not None:
            docs["previous-snapshot.json"] = prev_doc.canonical()
            changes = attribute(diff_snapshots(prev_doc, snapshot, prev.id, this.id), ledger,
                                snapshot.root, this.index, prev.index)
            for c in changes.files:
                for w in c.who:
                    roles.setdefault(w.index, f"change: {c.status} {c.path}")
    size, _, note = proof_tree(ledger, max(roles))
    if note is None:
        raise AuditError("exporting needs a signed checkpoint: the ledger key "
                         "(.mlward/keys/ledger.key) is not here")
    bodies = ledger.store.bodies(sorted(roles))
    members: dict[str, bytes] = dict(docs)
    entries = []
    for index in sorted(roles):
        receipt = Receipt(bodies[index], index, tuple(ledger.inclusion_proof(index, size)),
                          note)
        name = f"entries/{index}.tlog-proof"
        members[name] = str(receipt).encode()
        entries.append({"index": index, "role": roles[index], "file": name})
    members["checkpoint"] = note.encode()
    members["keys/ledger.pub"] = f"{ledger.verifier}\n".encode()
    members["keys/witnesses.pub"] = "".join(f"{w}\n" for w in ledger.witnesses).encode()
    members["VERIFY.md"] = VERIFY_TEXT.format(snapshot=this.id, origin=ledger.origin,
                                              verifier=ledger.verifier).encode()
    index_doc = {"format": FORMAT, "snapshot": this.id, "origin": ledger.origin,
                 "verifier": str(ledger.verifier),
                 "witnesses": [str(w) for w in ledger.witnesses], "entries": entries,
                 "members": {n: hashlib.sha256(d).hexdigest() for n, d in sorted(members.items())}}
    members[INDEX] = (json.dumps(index_doc, indent=1, sort_keys=True) + "\n").encode()
    atomic_write_bytes(output, pack(members), mode=0o644)
    return len(entries)


@dataclass
class BundleResult:
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(what failed, why), in the order checked."""
    notes: list[str] = field(default_factory=list)
    snapshot: str | None = None
    origin: str | None = None
    size: int | None = None
    entries: int = 0
    witnessed_by: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, what: str, why: str) -> None:
        self.problems.append((what, why))

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "snapshot": self.snapshot, "origin": self.origin,
                "tree_size": self.size, "entries": self.entries,
                "witnessed_by": self.witnessed_by, "notes": self.notes,
                "problems": [{"what": w, "message": m} for w, m in self.problems]}


def _unpack(data: bytes, result: BundleResult) -> dict[str, bytes] | None:
    """The members, after the archive-level checks; None when they cannot be read at all."""
    if len(data) > MAX_BUNDLE:
        result.fail("archive", f"larger than {MAX_BUNDLE} bytes")
        return None
    if len(data) < HEAD_SIZE + 8 or data[:len(_PREFIX)] != _PREFIX:
        result.fail("archive", "the gzip header is not an mlward bundle's (altered, or not a "
                    "bundle)")
    body = data[HEAD_SIZE:]
    if hashlib.sha256(body).digest() != data[len(_PREFIX):HEAD_SIZE]:
        result.fail("archive", "the compressed data does not match the bundle's integrity "
                    "digest: the file was altered after it was exported")
    tar = _inflate(body, result)
    if tar is None:
        return None
    try:
        members = _members(tar)
    except (tarfile.TarError, AuditError, ValueError) as exc:
        result.fail("archive", f"the tar inside is unreadable: {exc}")
        return None
    if _tar([(n, members[n]) for n in _order(members)]) != tar:
        result.fail("archive", "the tar's layout is not the canonical one mlward writes "
                    "(member order, headers or padding were changed)")
    return members


def _inflate(body: bytes, result: BundleResult) -> bytes | None:
    d = zlib.decompressobj(-15)
    try:
        tar = d.decompress(body, MAX_TAR + 1)
    except zlib.error as exc:
        result.fail("archive", f"the compressed data is corrupt ({exc})")
        return None
    if len(tar) > MAX_TAR:
        result.fail("archive", f"decompresses to more than {MAX_TAR} bytes")
        return None
    trailer = d.unused_data
    if not d.eof or len(trailer) != 8:
        result.fail("archive", "the compressed data is truncated or has bytes after its end")
        return tar if d.eof else None
    crc, size = struct.unpack("<II", trailer)
    if crc != zlib.crc32(tar) & 0xFFFFFFFF or size != len(tar) & 0xFFFFFFFF:
        result.fail("archive", "the gzip checksum or length does not match the content")
    return tar


def _members(tar: bytes) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        for n, info in enumerate(archive):
            if n >= MAX_MEMBERS:
                raise AuditError(f"more than {MAX_MEMBERS} members")
            name = info.name
            if not info.isreg() or name.startswith("/") or ".." in name.split("/") \
                    or name in members:
                raise AuditError(f"member {name!r} is not a plain, unique file")
            f = archive.extractfile(info)
            members[name] = f.read() if f is not None else b""
    return members


def verify_bundle(data: bytes, verifier: NoteVerifier | None = None,
                  witnesses: Sequence[WitnessVerifier] | None = None) -> BundleResult:
    """Check a bundle's bytes offline: archive, members, checkpoint signature (with
    ``verifier``, else the bundle's own key, which proves consistency only), cosignatures
    (with ``witnesses``, else the bundle's), every receipt, and the snapshots' addresses."""
    result = BundleResult()
    members = _unpack(data, result)
    if members is None:
        return result
    index = _index(members, result)
    if index is None:
        return result
    result.snapshot, result.origin = index.get("snapshot"), index.get("origin")
    verifier, witnesses = _keys(index, verifier, witnesses, result)
    if verifier is None:
        return result
    checkpoint = _checkpoint(members, verifier, witnesses, result)
    if checkpoint is None:
        return result
    entries = _receipts(members, index, verifier, checkpoint, result)
    _snapshots(members, index, entries, result)
    return result


def _index(members: Mapping[str, bytes], result: BundleResult) -> dict[str, Any] | None:
    try:
        index = json.loads(members[INDEX])
    except KeyError:
        result.fail(INDEX, "missing: not an mlward evidence bundle")
        return None
    except (ValueError, RecursionError) as exc:
        result.fail(INDEX, f"not JSON ({exc})")
        return None
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(
            index.get("members"), dict) or not isinstance(index.get("entries"), list):
        result.fail(INDEX, f"not a {FORMAT} index")
        return None
    listed = index["members"]
    for name in sorted(set(members) - {INDEX}):
        expected = listed.get(name)
        if expected is None:
            result.fail(name, "is in the bundle but not in its index (added)")
        elif hashlib.sha256(members[name]).hexdigest() != expected:
            result.fail(name, "its content does not match the digest in the index (altered)")
    for name in sorted(set(listed) - set(members)):
        result.fail(name, "is in the index but not in the bundle (removed)")
    return index


def _keys(index: Mapping[str, Any], verifier: NoteVerifier | None,
          witnesses: Sequence[WitnessVerifier] | None, result: BundleResult) \
        -> tuple[NoteVerifier | None, Sequence[WitnessVerifier]]:
    from mlward._internal.ledger.errors import LedgerError
    from mlward._internal.ledger.note import NoteVerifier
    from mlward._internal.ledger.witness import WitnessVerifier

    try:
        bundled = NoteVerifier.parse(str(index.get("verifier", "")))
    except LedgerError as exc:
        result.fail(INDEX, f"the ledger key it names is malformed: {exc}")
        return None, ()
    if verifier is None:
        verifier = bundled
        result.notes.append("no --key given: the checkpoint was checked with the key the "
                            "bundle carries, which proves consistency, not who signed it")
    elif str(bundled) != str(verifier):
        result.notes.append("the bundle names another ledger key than the one given; the "
                            "given key is used")
    if witnesses is None:
        try:
            witnesses = [WitnessVerifier.parse(str(w)) for w in index.get("witnesses", [])]
        except LedgerError as exc:
            result.fail(INDEX, f"a witness key it names is malformed: {exc}")
            witnesses = []
    return verifier, witnesses


def _checkpoint(members: Mapping[str, bytes], verifier: NoteVerifier,
                witnesses: Sequence[WitnessVerifier], result: BundleResult) -> Any:
    from mlward._internal.ledger.errors import LedgerError
    from mlward._internal.ledger.note import Checkpoint
    from mlward._internal.ledger.witness import check_cosignatures

    try:
        note = members["checkpoint"].decode("utf-8")
        checkpoint = Checkpoint.open(note, verifier, result.origin)
    except KeyError:
        result.fail("checkpoint", "missing")
        return None
    except (UnicodeDecodeError, LedgerError) as exc:
        result.fail("checkpoint", f"does not verify: {exc}")
        return None
    result.size = checkpoint.size
    if witnesses:
        try:
            cosigned = check_cosignatures(note, witnesses)
        except LedgerError as exc:
            result.fail("checkpoint", f"cosignatures unreadable: {exc}")
            return checkpoint
        for problem in cosigned.problems:
            result.fail("checkpoint", problem)
        missing = [w.name for w in witnesses if w.name not in cosigned.valid]
        if missing:
            result.fail("checkpoint", f"not cosigned by the witness(es) {', '.join(missing)}")
        result.witnessed_by = sorted(cosigned.valid)
    return checkpoint


def _receipts(members: Mapping[str, bytes], index: Mapping[str, Any],
              verifier: NoteVerifier, checkpoint: Any,
              result: BundleResult) -> dict[int, tuple[str, dict[str, Any]]]:
    """Each listed entry's receipt checked against the bundle's checkpoint: index -> (role,
    entry JSON)."""
    from mlward._internal.ledger import Entry
    from mlward._internal.ledger.errors import LedgerError
    from mlward._internal.ledger.note import Receipt

    out: dict[int, tuple[str, dict[str, Any]]] = {}
    note = members.get("checkpoint", b"").decode("utf-8", "replace")
    for item in index["entries"]:
        if not isinstance(item, dict) or not isinstance(item.get("file"), str):
            result.fail(INDEX, "an entries item is malformed")
            continue
        name = item["file"]
        try:
            receipt = Receipt.parse(members[name].decode("utf-8"))
            if receipt.note != note:
                raise LedgerError("its checkpoint is not the bundle's checkpoint")
            if receipt.index != item.get("index"):
                raise LedgerError(f"it proves entry {receipt.index}, the index says "
                                  f"{item.get('index')}")
            receipt.verify(verifier, checkpoint.origin)
            entry = Entry.from_bytes(receipt.entry)
        except KeyError:
            result.fail(name, "missing")
            continue
        except (UnicodeDecodeError, LedgerError) as exc:
            result.fail(f"entry {item.get('index')} ({name})", f"does not verify: {exc}")
            continue
        out[receipt.index] = (str(item.get("role", "")), entry.to_json())
    result.entries = len(out)
    return out


def _snapshots(members: Mapping[str, bytes], index: Mapping[str, Any],
               entries: Mapping[int, tuple[str, dict[str, Any]]], result: BundleResult) -> None:
    """Each bundled snapshot document hashes to the id its (proven) ledger entry holds."""
    from mlward._internal.audit.snapshot import Snapshot
    from mlward._internal.ledger.store import SNAPSHOT_ACTION

    by_role = dict(entries.values())
    ids: dict[str, str] = {}
    for name, role in (("snapshot.json", "snapshot"),
                       ("previous-snapshot.json", "previous-snapshot")):
        entry = by_role.get(role)
        if name not in members:
            if role == "snapshot":
                result.fail(name, "missing")
            continue
        if entry is None or entry.get("action") != SNAPSHOT_ACTION:
            result.fail(name, f"no verified {SNAPSHOT_ACTION} entry for it in the bundle")
            continue
        expected = entry["digests"].get("sha256", "")
        try:
            Snapshot.from_bytes(members[name], expected)
        except Exception as exc:  # AuditError, or a malformed document
            result.fail(name, f"does not match ledger entry {entry['index']}: {exc}")
            continue
        ids[role] = expected
    if ids.get("snapshot") and ids["snapshot"] != index.get("snapshot"):
        result.fail(INDEX, "names another snapshot than the one the bundle proves")
    if "previous-snapshot" in ids and "snapshot" in ids:
        doc = json.loads(members["snapshot.json"])
        if doc.get("previous") != ids["previous-snapshot"]:
            result.fail("snapshot.json", "does not name the bundled previous snapshot")
