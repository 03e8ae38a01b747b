"""DSSE envelopes (Dead Simple Signing Envelope, v1.0).

A signature covers ``PAE(payloadType, payload)``:
``b"DSSEv1" SP len(type) SP type SP len(payload) SP payload``, lengths in ASCII decimal, so
neither the type nor the payload can be swapped for another without breaking it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlward._internal.io import atomic_write_text
from mlward._internal.provenance import keys
from mlward._internal.provenance.errors import ProvenanceError
from mlward._internal.provenance.manifest import read_json

IN_TOTO_TYPE = "application/vnd.in-toto+json"
MANIFEST_TYPE = "application/vnd.mlward.manifest+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b" ".join([b"DSSEv1", str(len(kind)).encode(), kind,
                      str(len(payload)).encode(), payload])


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, signature)

    def to_dict(self) -> dict[str, Any]:
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [{"keyid": k, "sig": base64.b64encode(s).decode()}
                           for k, s in self.signatures],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        try:
            if not isinstance(data, Mapping):
                raise TypeError("not an object")
            sigs = tuple((str(s.get("keyid", "")), _b64(s["sig"])) for s in data["signatures"])
            payload_type = data["payloadType"]
            if not isinstance(payload_type, str) or not sigs:
                raise TypeError("no payload type or no signature")
            return cls(payload_type, _b64(data["payload"]), sigs)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ProvenanceError(f"not a DSSE envelope ({exc!s})") from None

    @classmethod
    def load(cls, path: Path) -> Envelope:
        return cls.from_dict(read_json(path, "signature"))

    def write(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n", mode=0o644)


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError("base64 field is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("malformed base64") from None


def sign(payload: bytes, payload_type: str, key: keys.PrivateKey) -> Envelope:
    signature = keys.sign_bytes(key, pae(payload_type, payload))
    return Envelope(payload_type, payload, ((keys.key_id(key.public_key()), signature),))


def verify(envelope: Envelope, trusted: Mapping[str, keys.PublicKey]) -> str:
    """The key id of a trusted key whose signature on the envelope holds.

    Signatures whose key id names no trusted key are skipped; if none holds, the message says
    whether the key was unknown or the signature did not match (tampering or a wrong key).
    """
    message = pae(envelope.payload_type, envelope.payload)
    known = False
    for keyid, signature in envelope.signatures:
        candidates = [(keyid, trusted[keyid])] if keyid in trusted else (
            list(trusted.items()) if not keyid else [])
        for kid, key in candidates:
            known = True
            if keys.verify_bytes(key, signature, message):
                return kid
    if not known:
        ids = ", ".join(k[:16] for k, _ in envelope.signatures)
        raise ProvenanceError(f"signed by a key that is not trusted (key id {ids}...)")
    raise ProvenanceError("the signature does not match: the signed content or the "
                          "signature was altered, or it was made with another key")
