"""C2SP signed notes, checkpoints and tlog-proof receipts."""

from __future__ import annotations

import base64
import hashlib

import pytest

from mlward._internal.ledger.errors import LedgerError
from mlward._internal.ledger.merkle import MemoryTree, leaf_hash
from mlward._internal.ledger.note import Checkpoint, NoteSigner, NoteVerifier, Receipt, open_note

NAME = "example.com/ledger"


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner.generate(NAME)


def test_key_id_and_verifier_string_follow_the_spec(signer: NoteSigner) -> None:
    public = signer.verifier.public
    expected_id = hashlib.sha256(NAME.encode() + b"\n\x01" + public).digest()[:4]
    name, hex_id, key = str(signer.verifier).split("+", 2)
    assert (name, hex_id) == (NAME, expected_id.hex())
    assert base64.b64decode(key) == b"\x01" + public
    assert NoteVerifier.parse(str(signer.verifier)) == signer.verifier
    assert NoteSigner.parse(str(signer)) == signer


def test_signed_note_shape_and_signature(signer: NoteSigner) -> None:
    text = Checkpoint(NAME, 5, b"\x11" * 32).text()
    note = signer.sign(text)
    body, sig_line = note.split("\n\n")
    assert body + "\n" == text
    dash, name, sig = sig_line.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", NAME)
    raw = base64.b64decode(sig)
    assert raw[:4] == signer.verifier.key_id and len(raw) == 68
    assert open_note(note, signer.verifier) == text
    assert Checkpoint.open(note, signer.verifier, NAME) == Checkpoint(NAME, 5, b"\x11" * 32)


def test_altered_or_foreign_notes_are_refused(signer: NoteSigner) -> None:
    note = signer.sign(Checkpoint(NAME, 5, b"\x11" * 32).text())
    with pytest.raises(LedgerError, match="does not verify"):
        open_note(note.replace("\n5\n", "\n6\n"), signer.verifier)
    other = NoteSigner.generate(NAME)
    with pytest.raises(LedgerError, match="no signature"):
        open_note(note, other.verifier)
    with pytest.raises(LedgerError, match="not 'elsewhere'"):
        Checkpoint.open(note, signer.verifier, "elsewhere")
    with pytest.raises(LedgerError):
        open_note("no signatures here\n", signer.verifier)


def test_receipt_round_trip_and_offline_verification(signer: NoteSigner) -> None:
    entries = [f"entry {i}".encode() for i in range(11)]
    tree = MemoryTree(leaf_hash(e) for e in entries)
    note = signer.sign(Checkpoint(NAME, 11, tree.root()).text())
    receipt = Receipt(entries[6], 6, tuple(tree.inclusion_proof(6)), note)
    text = str(receipt)
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    assert "\nindex 6\n" in text
    parsed = Receipt.parse(text)
    assert parsed == receipt
    assert parsed.verify(signer.verifier).size == 11

    forged = Receipt(b"entry X", 6, receipt.proof, note)
    with pytest.raises(LedgerError, match="inclusion proof of entry 6"):
        forged.verify(signer.verifier)
    with pytest.raises(LedgerError, match="no signature"):
        parsed.verify(NoteSigner.generate(NAME).verifier)


@pytest.mark.parametrize("text", [
    "", "c2sp.org/tlog-proof@v1\n", "c2sp.org/tlog-proof@v1\nindex 1\n\nx\n",
    "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\nx\n",
    "c2sp.org/tlog-proof@v1\nextra AA==\nindex 01\n\nx\n",
    "c2sp.org/tlog-proof@v1\nextra AA==\nindex 1\n" + "AA==\n" * 100 + "\nx\n",
])
def test_malformed_receipts_are_refused(text: str) -> None:
    with pytest.raises(LedgerError):
        Receipt.parse(text)
