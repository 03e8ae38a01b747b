"""One verification for the whole chain: signature -> model -> lineage -> every input.

Each step is a :class:`Link`; the result names the first broken one in plain words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlward._internal.provenance import dsse, keys, lineage, oms
from mlward._internal.provenance.errors import ProvenanceError
from mlward._internal.provenance.manifest import Change, read_bounded, read_json


@dataclass(frozen=True)
class Link:
    name: str
    ok: bool
    detail: str
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()
    """More about the link for people (what changed in a tabular input's rows)."""


@dataclass(frozen=True)
class ChainResult:
    links: tuple[Link, ...]

    @property
    def ok(self) -> bool:
        return all(link.ok for link in self.links)

    @property
    def first_broken(self) -> Link | None:
        return next((link for link in self.links if not link.ok), None)


def signature_path(path: Path) -> Path:
    """Where ``mlward sign FILE`` puts its DSSE envelope: ``FILE.dsse.json``."""
    return path.with_name(path.name + ".dsse.json")


def oms_signature_path(model: Path) -> Path:
    """Where ``mlward sign --oms MODEL`` puts its bundle: ``MODEL.sig`` beside the folder."""
    return model.with_name(model.name + ".sig")


def verify_file(path: Path, signature: Path, trusted: Mapping[str, keys.PublicKey]) -> str:
    """Check a DSSE envelope over ``path``; returns the signing key id."""
    envelope = dsse.Envelope.load(signature)
    keyid = dsse.verify(envelope, trusted)
    if read_bounded(path, "signed file") != envelope.payload:
        raise ProvenanceError(f"{path} is not the content that was signed: it changed after "
                              "signing, or the signature belongs to another file")
    return keyid


def verify_oms(model: Path, signature: Path, trusted: Mapping[str, keys.PublicKey]) -> Link:
    try:
        bundle = read_json(signature, "signature")
        if not oms.is_bundle(bundle):
            raise ProvenanceError(f"{signature} is not a Sigstore bundle")
        keyid, changes = oms.verify(bundle, signature, model, trusted)
    except ProvenanceError as exc:
        return Link("OMS signature", False, exc.diagnostics())
    if changes:
        return Link("OMS signature", False, f"the model differs from what was signed "
                    f"({len(changes)} change(s))", tuple(changes))
    return Link("OMS signature", True, f"valid, key {keyid[:16]}..., all files match")


def verify_chain(model: Path, *, trusted: Mapping[str, keys.PublicKey] | None,
                 signature: Path | None = None, require_signature: bool = True) -> ChainResult:
    """Check the model's signature, its files, its lineage statement and every input.

    ``trusted`` is None when no trust was given: then signatures are not checked and, when
    ``require_signature`` is set, that is itself a broken link.
    """
    statement_file = lineage.statement_path(model)
    if not statement_file.exists():
        raise ProvenanceError(f"no lineage statement for {model} (looked for {statement_file}; "
                              "record one with mlward lineage record)")
    links: list[Link] = []
    sig = signature or signature_path(statement_file)
    if sig.exists() and trusted is not None:
        try:
            keyid = verify_file(statement_file, sig, trusted)
            links.append(Link("signature", True, f"valid, key {keyid[:16]}..."))
        except ProvenanceError as exc:
            links.append(Link("signature", False, exc.diagnostics()))
    elif require_signature:
        links.append(Link("signature", False, f"no signature at {sig}" if not sig.exists()
                          else "no trusted keys to check the signature with"))
    bundle = oms_signature_path(model)
    if bundle.exists() and trusted is not None:
        links.append(verify_oms(model, bundle, trusted))

    try:
        statement = lineage.load_statement(statement_file)
    except ProvenanceError as exc:
        links.append(Link("lineage statement", False, exc.diagnostics()))
        return ChainResult(tuple(links))
    try:
        changes = lineage.check_model(statement, model)
    except ProvenanceError as exc:
        links.append(Link("model", False, exc.diagnostics()))
    else:
        links.append(Link("model", not changes, "files match the lineage statement" if not changes
                          else f"{model} differs from the model the lineage records",
                          tuple(changes)))
    links.append(Link("lineage statement", True,
                      f"{len(statement.inputs)} input(s) recorded"))
    for item in statement.inputs:
        result = lineage.check_input(item, statement_file.parent)
        name = f"input {result.name}"
        if result.problem:
            links.append(Link(name, False, result.problem))
        elif result.changes:
            links.append(Link(name, False, f"changed since the lineage was recorded "
                              f"({len(result.changes)} file(s))", result.changes,
                              lineage.data_changes(item, statement_file.parent)))
        else:
            where = "; ".join(f"{r.name} at {p}" + (" (absolute path)" if r.absolute else "")
                              for r, p in result.roots)
            links.append(Link(name, True, f"unchanged ({where})"))
    return ChainResult(tuple(links))
