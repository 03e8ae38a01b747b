"""Data-to-model provenance: content manifests, lineage statements, signatures.

``hashing`` (parallel, streaming digests) -> ``manifest`` (what a dataset or model holds) ->
``lineage`` (which inputs made a model, as an in-toto statement) -> ``dsse`` and ``oms``
(signatures over them) -> ``chain`` (one verification of the whole chain).
"""

from __future__ import annotations

from mlward.provenance.errors import FileChangedError, ProvenanceError

KEY_TYPES = ("ecdsa-p256", "ed25519")
"""Signing key types ``mlward keygen`` makes (the ones OMS verifiers accept are NIST curves)."""

__all__ = ["KEY_TYPES", "FileChangedError", "ProvenanceError"]
