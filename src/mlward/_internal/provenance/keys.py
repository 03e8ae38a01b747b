"""Signing keys (ECDSA P-256 and Ed25519) and the trust file of accepted public keys.

Keys are PEM files: the private key PKCS#8, written with mode 0600; the public key
SubjectPublicKeyInfo. A key's id is the SHA-256 of its public PEM bytes, in hex: the same
value the OpenSSF model signing format puts in ``verificationMaterial.publicKey.hint``.

The trust file is a PEM bundle of accepted public keys (``cat new.pub >> trusted.pem`` adds
one). Its default place is ``$MLWARD_TRUST``, else ``trusted_keys.pem`` in the project's
``.mlward/`` folder (found walking up from the current directory).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mlward._internal.io import atomic_write_bytes
from mlward._internal.provenance import KEY_TYPES, read_limited
from mlward._internal.provenance.errors import ProvenanceError

MAX_KEY_FILE = 1 << 20
_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----\s*", re.S)

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: PublicKey) -> str:
    """SHA-256 of the public key's PEM, in hex (the OMS public key hint)."""
    return hashlib.sha256(public_pem(key)).hexdigest()


def key_type(key: PublicKey | PrivateKey) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    return f"ecdsa-{key.curve.name}"


@dataclass(frozen=True)
class KeyFiles:
    private: Path
    public: Path
    key_id: str


def generate(prefix: Path, kind: str = "ecdsa-p256", *, force: bool = False) -> KeyFiles:
    """Write ``PREFIX.key`` (mode 0600) and ``PREFIX.pub``; refuse to overwrite unless forced."""
    private: PrivateKey
    if kind == "ecdsa-p256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif kind == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ProvenanceError(f"unknown key type {kind!r} (choose from {', '.join(KEY_TYPES)})")
    if not prefix.name or prefix.name in (".", ".."):
        raise ProvenanceError(f"{str(prefix)!r} is a folder, not a file name prefix (try "
                              f"{str(prefix / 'mlward-signing')!r})")
    key_path = prefix.with_name(prefix.name + ".key")
    pub_path = prefix.with_name(prefix.name + ".pub")
    for p in (key_path, pub_path):
        if p.exists() and not force:
            raise ProvenanceError(f"{p} exists; choose another name or pass --force")
    if str(key_path.parent):
        key_path.parent.mkdir(parents=True, exist_ok=True)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    atomic_write_bytes(key_path, pem, mode=0o600)
    atomic_write_bytes(pub_path, public_pem(private.public_key()), mode=0o644)
    return KeyFiles(key_path, pub_path, key_id(private.public_key()))


def _read(path: Path, what: str) -> bytes:
    return read_limited(path, what, MAX_KEY_FILE)


def _check_supported(key: object, path: Path) -> None:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and \
            key.curve.name in ("secp256r1", "secp384r1", "secp521r1"):
        return
    raise ProvenanceError(f"{path}: unsupported key type (use ECDSA on a NIST curve or Ed25519)")


def load_private(path: Path) -> PrivateKey:
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ProvenanceError(f"{path} is encrypted; mlward reads unencrypted keys only") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ProvenanceError(f"{path} is not a PEM private key") from None
    _check_supported(key, path)
    assert isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
    return key


def load_public(path: Path) -> PublicKey:
    return _parse_public(_read(path, "public key"), path)


def _parse_public(pem: bytes, path: Path) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise ProvenanceError(f"{path} holds something that is not a PEM public key") from None
    _check_supported(key, path)
    assert isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    return key


def load_trusted(path: Path) -> dict[str, PublicKey]:
    """The trust file's keys by key id; a missing or empty trust file is an error."""
    if not path.exists():
        raise ProvenanceError(f"no trust file at {path}: add accepted public keys to it "
                              "(mlward keygen --trust adds the new key), or pass --key")
    keys = {}
    for block in _PEM_BLOCK.findall(_read(path, "trust file")):
        key = _parse_public(block, path)
        keys[key_id(key)] = key
    if not keys:
        raise ProvenanceError(f"trust file {path} holds no public key")
    return keys


def add_trusted(path: Path, key: PublicKey) -> None:
    """Append ``key`` to the trust file unless it is there already."""
    existing = _read(path, "trust file") if path.exists() else b""
    if public_pem(key) in existing:
        return
    if str(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, existing + public_pem(key), mode=0o644)


def sign_bytes(key: PrivateKey, data: bytes) -> bytes:
    """ECDSA with the curve's matching SHA-2 (DER signature), or Ed25519."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, ec.ECDSA(_ec_hash(key.curve)))


def verify_bytes(key: PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, ec.ECDSA(_ec_hash(key.curve)))
    except InvalidSignature:
        return False
    return True


def _ec_hash(curve: ec.EllipticCurve) -> hashes.HashAlgorithm:
    return {256: hashes.SHA256(), 384: hashes.SHA384()}.get(curve.key_size, hashes.SHA512())
