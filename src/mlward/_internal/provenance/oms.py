"""The OpenSSF model signing format (OMS v1.0), key-based, both ways.

A signature is a Sigstore bundle (media type v0.3, JSON) holding a public key hint (the
SHA-256 of the signer's public PEM, see :func:`keys.key_id`), no transparency log entries,
and a DSSE envelope whose payload is an in-toto Statement v1:

- ``subject``: one descriptor named after the model folder, whose ``sha256`` digest is the
  SHA-256 over the raw per-file digests in resource order;
- ``predicateType`` ``https://model_signing/signature/v1.0``;
- ``predicate.resources``: ``{name, algorithm, digest}`` per file, sorted by name, each the
  plain SHA-256 of the file; ``predicate.serialization``: how the folder was walked
  (``method: files``, ``hash_type``, ``allow_symlinks``, ``ignore_paths``).

This module writes and reads that layout itself; the ``model-signing`` package is only a test
dependency, used to show that each side accepts the other's bundles.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from mlward._internal.io import atomic_write_text
from mlward._internal.provenance import dsse, keys
from mlward._internal.provenance.errors import ProvenanceError
from mlward._internal.provenance.hashing import HashSpec
from mlward._internal.provenance.manifest import Change, Entry, check_relative, diff, hash_roots

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")


def is_bundle(data: Any) -> bool:
    return isinstance(data, dict) and str(data.get("mediaType", "")).startswith(
        "application/vnd.dev.sigstore.bundle")


def _model_files(model: Path, ignore: Sequence[str]) -> tuple[Entry, ...]:
    if not model.is_dir():
        raise ProvenanceError(f"{model} is not a folder: OMS signs a model folder")
    entries = hash_roots([model], [""], HashSpec("sha256", None))
    kept = tuple(e for e in entries if not any(
        e.path == p or e.path.startswith(p + "/") for p in ignore))
    odd = [e.path for e in kept if e.type != "file"]
    if odd:
        raise ProvenanceError(f"{model} holds symlinks or special files ({', '.join(odd[:5])}),"
                              " which the OMS files method does not sign")
    return kept


def _ignored(model: Path, signature: Path) -> list[str]:
    ignore = list(GIT_PATHS)
    with contextlib.suppress(ValueError):
        ignore.append(signature.resolve().relative_to(model.resolve()).as_posix())
    return ignore


def sign(model: Path, key: keys.PrivateKey, signature: Path) -> dict[str, Any]:
    """Sign the model folder and write the bundle to ``signature``; returns the statement."""
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ProvenanceError("OMS key-based signatures use ECDSA on a NIST curve "
                              "(model_signing verifies no other): use an ecdsa-p256 key")
    ignore = _ignored(model, signature)
    files = _model_files(model, ignore)
    resources = [{"name": e.path, "algorithm": "sha256", "digest": e.digest["sha256"]}
                 for e in files]
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model.resolve().name,
                     "digest": {"sha256": _root_digest(resources)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256",
                              "allow_symlinks": False, "ignore_paths": ignore},
            "resources": resources,
        },
    }
    payload = json.dumps(statement, indent=2).encode()
    envelope = dsse.sign(payload, dsse.IN_TOTO_TYPE, key)
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": keys.key_id(key.public_key())},
                                 "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": dsse.IN_TOTO_TYPE,
            "signatures": [{"sig": base64.b64encode(envelope.signatures[0][1]).decode(),
                            "keyid": ""}],
        },
    }
    atomic_write_text(signature, json.dumps(bundle, indent=2) + "\n", mode=0o644)
    return statement


def _root_digest(resources: Sequence[Mapping[str, Any]]) -> str:
    h = hashlib.sha256()
    for r in resources:
        h.update(bytes.fromhex(r["digest"]))
    return h.hexdigest()


def verify(bundle: Any, signature: Path, model: Path,
           trusted: Mapping[str, keys.PublicKey]) -> tuple[str, list[Change]]:
    """Check an OMS bundle: the key id that signed it, and how the folder differs from it."""
    if bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise ProvenanceError(f"unsupported Sigstore bundle media type {bundle.get('mediaType')}")
    try:
        material = bundle["verificationMaterial"]
        hint = (material.get("publicKey") or {}).get("hint") or ""
        envelope = dsse.Envelope.from_dict(bundle["dsseEnvelope"])
    except (KeyError, TypeError, AttributeError):
        raise ProvenanceError("the Sigstore bundle has no key-based DSSE envelope") from None
    if "certificate" in material or "x509CertificateChain" in material:
        raise ProvenanceError("certificate-based (Sigstore) bundles are not supported; "
                              "mlward verifies key-based OMS signatures")
    if envelope.payload_type != dsse.IN_TOTO_TYPE:
        raise ProvenanceError(f"unexpected payload type {envelope.payload_type}")
    if hint and hint not in trusted:
        raise ProvenanceError(f"signed by a key that is not trusted (key id {hint[:16]}...)")
    candidates = {hint: trusted[hint]} if hint else trusted
    keyid = dsse.verify(dsse.Envelope(envelope.payload_type, envelope.payload,
                                      tuple(("", s) for _, s in envelope.signatures)),
                        candidates)
    statement = _statement(envelope.payload)
    serialization = statement["predicate"]["serialization"]
    ignore = [p for p in serialization.get("ignore_paths", []) if isinstance(p, str)]
    ignore += [p for p in _ignored(model, signature) if p not in ignore]
    current = _model_files(model, ignore)
    recorded = tuple(Entry(r["name"], "file", 0, {"sha256": r["digest"]})
                     for r in statement["predicate"]["resources"])
    return keyid, diff(recorded, current)


def _statement(payload: bytes) -> dict[str, Any]:
    try:
        statement = json.loads(payload)
        if statement["_type"] != STATEMENT_TYPE:
            raise ProvenanceError(f"payload is not an in-toto Statement v1 ({statement['_type']})")
        if statement["predicateType"] != PREDICATE_TYPE:
            raise ProvenanceError(f"unsupported predicate type {statement['predicateType']}")
        serialization = statement["predicate"]["serialization"]
        if serialization.get("method") != "files" or serialization.get("hash_type") != "sha256":
            raise ProvenanceError("only the OMS 'files' serialization with sha256 is supported "
                                  f"(got {serialization.get('method')}, "
                                  f"{serialization.get('hash_type')})")
        resources = statement["predicate"]["resources"]
        for r in resources:
            check_relative(r["name"])
            if r["algorithm"] != "sha256" or len(bytes.fromhex(r["digest"])) != 32:
                raise ProvenanceError(f"resource {r['name']!r} has an unsupported digest")
        subjects = statement["subject"]
        if len(subjects) != 1 or subjects[0]["digest"]["sha256"] != _root_digest(resources):
            raise ProvenanceError("the statement's subject digest does not match its resources")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProvenanceError(f"the signed statement is malformed ({exc!s})") from None
    return statement  # type: ignore[no-any-return]
