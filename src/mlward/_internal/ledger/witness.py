"""Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519 ``cosignature/v1``).

Whoever holds the ledger key can rewrite the ledger and sign a new checkpoint over the result.
A witness holds a second key, kept on another machine or by another team: before it cosigns a
checkpoint it checks that the tree only grew since the last checkpoint it cosigned (an RFC 9162
consistency proof). A rewritten history then lacks the witness's cosignature on its new root,
and a cosigned old root no longer matches the recomputed tree.

Format: a cosignature is one more signed-note line ``— <witness name> base64(key id ||
timestamp || signature)``; key id = SHA-256(name || 0x0A || 0x04 || public key)[:4]; the
timestamp is 8 bytes big-endian (POSIX seconds); the Ed25519 signature covers
``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint text. Keys travel as note
keys with signature type 0x04 (``<name>+<hex id>+base64(0x04 || key)``). The witness records
the last tree it cosigned in a small state file (``origin``, ``size``, base64 ``root``).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from mlward._internal.io import atomic_write_text
from mlward._internal.ledger.errors import LedgerError
from mlward._internal.ledger.merkle import verify_consistency
from mlward._internal.ledger.note import DASH, Checkpoint, _b64decode, _check_name

COSIGNATURE = b"\x04"
HEADER = "cosignature/v1"
MAX_TIMESTAMP = 2**63 - 1


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE + public).digest()[:4]


def _message(text: str, timestamp: int) -> bytes:
    return f"{HEADER}\ntime {timestamp}\n{text}".encode()


@dataclass(frozen=True)
class WitnessVerifier:
    name: str
    public: bytes

    @property
    def key_id(self) -> bytes:
        return _key_id(self.name, self.public)

    def __str__(self) -> str:
        encoded = base64.b64encode(COSIGNATURE + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> WitnessVerifier:
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise LedgerError("a witness key reads <name>+<hex key id>+<base64 key>")
        name, hex_id, encoded = parts
        _check_name(name)
        raw = _b64decode(encoded, "witness key")
        if len(raw) != 33 or raw[:1] != COSIGNATURE:
            raise LedgerError(f"witness key {name} is not an Ed25519 cosignature (type 0x04) "
                              "key")
        verifier = cls(name, raw[1:])
        if verifier.key_id.hex() != hex_id.lower():
            raise LedgerError(f"witness key id of {name} does not match its name and key")
        return verifier


@dataclass(frozen=True)
class WitnessSigner:
    name: str
    seed: bytes

    @classmethod
    def generate(cls, name: str) -> WitnessSigner:
        _check_name(name)
        key = Ed25519PrivateKey.generate()
        return cls(name, key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @property
    def verifier(self) -> WitnessVerifier:
        public = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        return WitnessVerifier(self.name, public.public_bytes(Encoding.Raw, PublicFormat.Raw))

    def __str__(self) -> str:
        encoded = base64.b64encode(COSIGNATURE + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> WitnessSigner:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise LedgerError("a witness private key reads PRIVATE+KEY+<name>+<hex id>+<key>")
        name, hex_id, encoded = parts[2:]
        _check_name(name)
        raw = _b64decode(encoded, "witness private key")
        if len(raw) != 33 or raw[:1] != COSIGNATURE:
            raise LedgerError("witness private key is not an Ed25519 cosignature key")
        signer = cls(name, raw[1:])
        if signer.verifier.key_id.hex() != hex_id.lower():
            raise LedgerError("witness private key id does not match its name and key")
        return signer

    def cosign(self, note: str, timestamp: int | None = None) -> str:
        """``note`` with this witness's cosignature line added (replacing an earlier one)."""
        text, lines = split_note(note)
        timestamp = int(time.time()) if timestamp is None else timestamp
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        raw = self.verifier.key_id + struct.pack(">Q", timestamp) + \
            key.sign(_message(text, timestamp))
        mine = self.verifier
        kept = [line for line in lines if _line_key(line) != (mine.name, mine.key_id)]
        return text + "\n" + "".join(f"{line}\n" for line in
                                     [*kept, f"{DASH} {self.name} "
                                      f"{base64.b64encode(raw).decode()}"])


def split_note(note: str) -> tuple[str, list[str]]:
    """A signed note's text and its signature lines."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise LedgerError("signed note has no blank line before its signatures")
    return note[:split + 1], note[split + 2:-1].split("\n")


def _line_key(line: str) -> tuple[str, bytes] | None:
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != DASH:
        return None
    try:
        raw = base64.b64decode(parts[2], validate=True)
    except ValueError:
        return None
    return parts[1], raw[:4]


@dataclass(frozen=True)
class Cosigned:
    """What checking a note's cosignatures found: valid ones (witness name -> timestamp) and
    problems (a forged or malformed cosignature by a configured witness)."""

    valid: dict[str, int]
    problems: list[str]


def check_cosignatures(note: str, witnesses: Sequence[WitnessVerifier]) -> Cosigned:
    """Check every line of ``note`` that claims to be by one of ``witnesses``; lines by other
    keys are not ours to judge (as a signed note's verifier ignores unknown keys)."""
    text, lines = split_note(note)
    valid: dict[str, int] = {}
    problems: list[str] = []
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            continue
        for w in witnesses:
            if parts[1] != w.name:
                continue
            try:
                raw = base64.b64decode(parts[2], validate=True)
            except ValueError:
                problems.append(f"the cosignature by {w.name} is not valid base64")
                continue
            if raw[:4] != w.key_id:
                problems.append(f"a cosignature names witness {w.name} but not its key "
                                f"(key id {raw[:4].hex()}, expected {w.key_id.hex()})")
            elif len(raw) != 4 + 8 + 64:
                problems.append(f"the cosignature by {w.name} has the wrong length")
            else:
                (timestamp,) = struct.unpack(">Q", raw[4:12])
                try:
                    if timestamp > MAX_TIMESTAMP:
                        raise InvalidSignature
                    Ed25519PublicKey.from_public_bytes(w.public).verify(
                        raw[12:], _message(text, timestamp))
                except (InvalidSignature, ValueError):
                    problems.append(f"the cosignature by {w.name} does not verify: forged, "
                                    "or the checkpoint was changed after it was cosigned")
                else:
                    valid[w.name] = timestamp
    return Cosigned(valid, problems)


@dataclass(frozen=True)
class WitnessState:
    """The last tree a witness cosigned for a log: the consistency check starts there."""

    origin: str
    size: int
    root: bytes

    @classmethod
    def load(cls, path: Path) -> WitnessState | None:
        if not path.is_file():
            return None
        try:
            checkpoint = Checkpoint.parse_text(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerError(f"cannot read the witness state {path}: {exc}") from None
        return cls(checkpoint.origin, checkpoint.size, checkpoint.root)

    def save(self, path: Path) -> None:
        atomic_write_text(path, Checkpoint(self.origin, self.size, self.root).text(), mode=0o600)


def witness(signer: WitnessSigner, checkpoint: Checkpoint, note: str,
            state: WitnessState | None, proof: Sequence[bytes]) -> tuple[str, WitnessState]:
    """Cosign ``note`` (a checkpoint whose log signature the caller has checked) when the tree
    only grew since ``state``, proven by the consistency ``proof``; refuse otherwise."""
    if state is not None:
        if state.origin != checkpoint.origin:
            raise LedgerError(f"the witness state is for {state.origin!r}, the checkpoint for "
                              f"{checkpoint.origin!r}")
        if checkpoint.size < state.size:
            raise LedgerError(f"refusing to cosign: the checkpoint (size {checkpoint.size}) is "
                              f"older than the last one cosigned (size {state.size}): the "
                              "ledger was rolled back")
        if not verify_consistency(state.size, checkpoint.size, state.root, checkpoint.root,
                                  proof):
            raise LedgerError(f"refusing to cosign: the tree of size {checkpoint.size} is not "
                              f"an extension of the one cosigned at size {state.size}: the "
                              "ledger's history was rewritten")
    return signer.cosign(note), WitnessState(checkpoint.origin, checkpoint.size, checkpoint.root)
