"""C2SP signed notes (Ed25519), tlog checkpoints and tlog-proof receipts.

- signed note (c2sp.org/signed-note): a text ending in a newline, a blank line, then lines
  ``— <key name> base64(key id || signature)``; key id = SHA-256(name || 0x0A || 0x01 || public
  key)[:4]. Keys travel as the Go ``note`` strings: the verifier key
  ``<name>+<hex key id>+base64(0x01 || public key)`` and the private key
  ``PRIVATE+KEY+<name>+<hex key id>+base64(0x01 || seed)``.
- checkpoint (c2sp.org/tlog-checkpoint): the note text ``<origin>\\n<size>\\n<base64 root>\\n``.
- receipt (c2sp.org/tlog-proof@v1): ``c2sp.org/tlog-proof@v1``, ``extra <base64>`` (here the
  entry's canonical bytes), ``index <n>``, the inclusion proof one base64 hash a line, a blank
  line, then the signed checkpoint verbatim. Verifiable offline with the verifier key alone.
- consistency proof (mlward's own text form; C2SP defines none): ``mlward/tlog-consistency@v1``,
  the RFC 9162 consistency proof one base64 hash a line, a blank line, ``old``, the older
  signed checkpoint verbatim, ``new``, the newer one verbatim.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mlward._internal.ledger.errors import LedgerError
from mlward._internal.ledger.merkle import (
    HASH_SIZE,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

ED25519 = b"\x01"
DASH = "\u2014"
MAX_NOTE_BYTES = 1 << 16
MAX_SIGNATURES = 16
MAX_PROOF_HASHES = 64
PROOF_HEADER = "c2sp.org/tlog-proof@v1"
CONSISTENCY_HEADER = "mlward/tlog-consistency@v1"


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise LedgerError(f"{what} is not valid base64") from None


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise LedgerError(f"key name {name!r} must be non-empty, without spaces or '+'")


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    name: str
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public)

    def __str__(self) -> str:
        """The verifier key string ``<name>+<hex id>+<base64(0x01 || key)>``."""
        encoded = base64.b64encode(ED25519 + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> NoteVerifier:
        parts = text.strip().split("+", 2)  # the base64 key may itself contain '+'
        if len(parts) != 3:
            raise LedgerError("a verifier key reads <name>+<hex key id>+<base64 key>")
        name, hex_id, encoded = parts
        _check_name(name)
        raw = _b64decode(encoded, "verifier key")
        if len(raw) != 33 or raw[:1] != ED25519:
            raise LedgerError("verifier key is not an Ed25519 (type 0x01) key")
        verifier = cls(name, raw[1:])
        if verifier.key_id.hex() != hex_id.lower():
            raise LedgerError("verifier key id does not match its name and key")
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    name: str
    seed: bytes

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        _check_name(name)
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        key = Ed25519PrivateKey.generate()
        return cls(name, key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, _raw_public(self._key().public_key()))

    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def sign(self, text: str) -> str:
        """The signed note: ``text`` (ending in a newline), a blank line, one signature line."""
        if not text.endswith("\n"):
            raise LedgerError("note text must end with a newline")
        signature = self.verifier.key_id + self._key().sign(text.encode())
        return f"{text}\n{DASH} {self.name} {base64.b64encode(signature).decode()}\n"

    def __str__(self) -> str:
        """The private key string (keep it secret: it is written with mode 0600)."""
        encoded = base64.b64encode(ED25519 + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> NoteSigner:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise LedgerError("a private key reads PRIVATE+KEY+<name>+<hex id>+<base64 key>")
        name, hex_id, encoded = parts[2:]
        _check_name(name)
        raw = _b64decode(encoded, "private key")
        if len(raw) != 33 or raw[:1] != ED25519:
            raise LedgerError("private key is not an Ed25519 (type 0x01) key")
        signer = cls(name, raw[1:])
        if signer.verifier.key_id.hex() != hex_id.lower():
            raise LedgerError("private key id does not match its name and key")
        return signer


def open_note(note: str, verifier: NoteVerifier) -> str:
    """The text of a signed note, once a signature by ``verifier`` checks; else LedgerError."""
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise LedgerError("signed note is too large")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise LedgerError("signed note contains control characters")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise LedgerError("signed note has no blank line before its signatures")
    text, sig_lines = note[:split + 1], note[split + 2:-1].split("\n")
    if len(sig_lines) > MAX_SIGNATURES:
        raise LedgerError("signed note has too many signatures")
    verified = False
    for line in sig_lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            raise LedgerError(f"malformed signature line {line[:80]!r}")
        raw = _b64decode(parts[2], "note signature")
        if parts[1] != verifier.name or raw[:4] != verifier.key_id:
            continue  # another key's signature (a witness, say): not ours to judge
        if not verifier.verify(text.encode(), raw[4:]):
            raise LedgerError(f"the signature by {verifier.name} does not verify")
        verified = True
    if not verified:
        raise LedgerError(f"the note carries no signature by {verifier.name}")
    return text


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse_text(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise LedgerError("a checkpoint has an origin, a size and a root line")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise LedgerError("checkpoint origin or size is malformed")
        raw = _b64decode(root, "checkpoint root")
        if len(raw) != HASH_SIZE:
            raise LedgerError("checkpoint root is not a SHA-256 hash")
        return cls(origin, int(size), raw)

    @classmethod
    def open(cls, note: str, verifier: NoteVerifier, origin: str | None = None) -> Checkpoint:
        """Check the signature and parse; ``origin`` (when given) must match."""
        checkpoint = cls.parse_text(open_note(note, verifier))
        if origin is not None and checkpoint.origin != origin:
            raise LedgerError(f"checkpoint is for {checkpoint.origin!r}, not {origin!r}")
        return checkpoint


@dataclass(frozen=True)
class Receipt:
    """A c2sp.org/tlog-proof@v1 receipt whose extra data is the entry's canonical bytes."""

    entry: bytes
    index: int
    proof: tuple[bytes, ...]
    note: str  # the signed checkpoint

    def __str__(self) -> str:
        lines = [PROOF_HEADER, f"extra {base64.b64encode(self.entry).decode()}",
                 f"index {self.index}", *(base64.b64encode(p).decode() for p in self.proof)]
        return "\n".join(lines) + "\n\n" + self.note

    @classmethod
    def parse(cls, text: str) -> Receipt:
        head, sep, note = text.partition("\n\n")
        lines = head.split("\n")
        if not sep or len(lines) < 3 or lines[0] != PROOF_HEADER:
            raise LedgerError(f"not a {PROOF_HEADER} receipt")
        if not lines[1].startswith("extra "):
            raise LedgerError("receipt carries no entry (extra line)")
        entry = _b64decode(lines[1][6:], "receipt extra data")
        index = lines[2].removeprefix("index ")
        if not lines[2].startswith("index ") or not index.isdigit() or \
                (index != "0" and index.startswith("0")):
            raise LedgerError("receipt index line is malformed")
        if len(lines) - 3 > MAX_PROOF_HASHES:
            raise LedgerError("receipt inclusion proof is too long")
        proof = tuple(_b64decode(p, "receipt proof hash") for p in lines[3:])
        return cls(entry, int(index), proof, note)

    def verify(self, verifier: NoteVerifier, origin: str | None = None) -> Checkpoint:
        """The checkpoint, once its signature and the entry's inclusion in it both check."""
        checkpoint = Checkpoint.open(self.note, verifier, origin)
        if not verify_inclusion(leaf_hash(self.entry), self.index, checkpoint.size,
                                self.proof, checkpoint.root):
            raise LedgerError(f"the inclusion proof of entry {self.index} does not match "
                              f"the checkpoint (size {checkpoint.size})")
        return checkpoint


@dataclass(frozen=True)
class ConsistencyProof:
    """Proof that the log of one signed checkpoint only grew into the log of another
    (RFC 9162 section 2.1.4): both signed notes and the proof's hashes.

    Text form: a header line, one base64 hash per line, a blank line, then each note behind a
    ``old`` / ``new`` line of its own, so each keeps its exact bytes (and signatures)."""

    old: str
    new: str
    proof: tuple[bytes, ...]

    def __str__(self) -> str:
        hashes = "".join(base64.b64encode(p).decode() + "\n" for p in self.proof)
        return f"{CONSISTENCY_HEADER}\n{hashes}\nold\n{self.old}new\n{self.new}"

    @classmethod
    def parse(cls, text: str) -> ConsistencyProof:
        head, sep, notes = text.partition("\n\nold\n")
        lines = head.split("\n")
        if not sep or lines[0] != CONSISTENCY_HEADER:
            raise LedgerError(f"not a {CONSISTENCY_HEADER} document")
        if len(lines) - 1 > MAX_PROOF_HASHES:
            raise LedgerError("consistency proof is too long")
        old, sep, new = notes.partition("\nnew\n")
        if not sep:
            raise LedgerError("consistency proof lacks its second checkpoint")
        proof = tuple(_b64decode(p, "consistency proof hash") for p in lines[1:] if p)
        return cls(old + "\n", new, proof)

    def verify(self, verifier: NoteVerifier,
               origin: str | None = None) -> tuple[Checkpoint, Checkpoint]:
        """Both checkpoints, once their signatures and the proof between them check."""
        old = Checkpoint.open(self.old, verifier, origin)
        new = Checkpoint.open(self.new, verifier, origin or old.origin)
        if not verify_consistency(old.size, new.size, old.root, new.root, self.proof):
            raise LedgerError(f"the log of {new.size} entries is not an append-only extension "
                              f"of the log of {old.size} entries: the consistency proof does "
                              "not match the two checkpoints")
        return old, new
