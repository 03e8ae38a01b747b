"""Data-to-model provenance: content manifests, lineage statements, signatures.

``hashing`` (parallel, streaming digests) -> ``manifest`` (what a dataset or model holds) ->
``lineage`` (which inputs made a model, as an in-toto statement) -> ``dsse`` and ``oms``
(signatures over them) -> ``chain`` (one verification of the whole chain).
"""

from __future__ import annotations

from pathlib import Path

from mlward._internal.provenance.errors import FileChangedError, ProvenanceError

KEY_TYPES = ("ecdsa-p256", "ed25519")
"""Signing key types ``mlward keygen`` makes (the ones OMS verifiers accept are NIST curves)."""



def default_trust_file(configured: str | None = None) -> Path:
    """The ``trust`` setting (``MLWARD_TRUST``), else ``trusted_keys.pem`` in the project's
    ``.mlward/`` folder. Here, not in ``keys``: a command that finds no trust file need not
    import the cryptography library (a tenth of a second)."""
    if configured:
        return Path(configured)
    from mlward._internal.ledger.project import find_project

    return (find_project() or Path(".mlward")) / "trusted_keys.pem"


def read_limited(path: Path, what: str, limit: int) -> bytes:
    """The bytes of a small file (a key, a manifest, a statement); a file larger than
    ``limit`` or unreadable is a :class:`ProvenanceError` naming ``what`` it should be."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ProvenanceError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise ProvenanceError(f"{what} {path} is larger than {limit} bytes")
    return data


__all__ = ["KEY_TYPES", "FileChangedError", "ProvenanceError", "read_limited"]
