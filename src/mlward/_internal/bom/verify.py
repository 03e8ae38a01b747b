"""``mlward bom verify``: the files, signatures and ledger checkpoint a BOM records, checked
against what is here now.

Every model and dataset file the BOM lists is re-hashed (relative to the root where the check
runs; files in object storage where they are); a folder or prefix the BOM lists is listed
again for files that appeared. Signatures the BOM
recorded are checked again with the trusted keys, and so is the BOM's own DSSE envelope when
one sits beside it. The ledger must still hold the tree the BOM's checkpoint names (same size,
same root). Each problem is a finding (MW750, MW752-MW755); what cannot be checked (no keys,
no ledger) is an inconclusive skip, never a pass.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlward._internal.bom.collect import hash_all, list_files
from mlward._internal.bom.inventory import Component, FileRecord, Inventory
from mlward._internal.sources.remote import is_remote
from mlward._version import __version__
from mlward.findings import Location, Report, ReportBuilder, TargetKind
from mlward.rules import (
    BOM_FILE_ADDED,
    BOM_FILE_CHANGED,
    BOM_FILE_MISSING,
    BOM_LEDGER_MISSING,
    BOM_SIGNATURE_INVALID,
)
from mlward.settings import Settings

SIGNED = ("signature", "lineage_signature")


def verify(inventory: Inventory, root: Path, *, bom_file: Path, settings: Settings,
           trusted: Mapping[str, Any] | None) -> Report:
    """The report of checking ``inventory`` (read from ``bom_file``) against ``root``."""
    from mlward._internal.triage import make_triage

    builder = ReportBuilder(TargetKind.REPOSITORY, started=datetime.now(timezone.utc),
                            version=__version__, root=str(root), inputs=[str(bom_file)])
    _files(inventory, root, builder)
    _signatures(inventory, root, bom_file, trusted, builder)
    _ledger(inventory, settings, builder)
    builder.stats["components"] = len(inventory.components)
    return builder.build(finished=datetime.now(timezone.utc), triage=make_triage(settings, root))


def _files(inventory: Inventory, root: Path, builder: ReportBuilder) -> None:
    from mlward._internal.provenance.hashing import FileJob

    listed: list[tuple[Component, str, str]] = []
    remote: list[tuple[Component, FileRecord]] = []
    for c in inventory.components:
        if c.kind not in ("model", "dataset"):
            continue
        for f in c.files:
            if not Location(f.path).is_local:
                remote.append((c, f))
            elif "sha256" in f.digests:
                listed.append((c, f.path, f.digests["sha256"]))
        if is_remote(c.location):
            if [f.path for f in c.files] != [c.location]:  # a prefix, not one object
                _listed_again(c, builder)
            continue
        folder = root / c.location
        if c.location and folder.is_dir():
            known = {f.path for f in c.files}
            for path in list_files(folder, c.location):
                if path not in known:
                    builder.add(BOM_FILE_ADDED.finding(
                        Location(path), f"{path} appeared in {c.kind} {c.name}, which the BOM "
                        "lists without it", evidence=path, details={"ref": c.ref}))
    jobs: list[tuple[Component, str, str, FileJob]] = []
    for c, path, digest in listed:
        try:
            st = (root / path).stat()
        except OSError:
            builder.add(BOM_FILE_MISSING.finding(
                Location(path), f"{path} of {c.kind} {c.name} is missing", evidence=path,
                details={"ref": c.ref, "recorded": digest}))
            continue
        jobs.append((c, path, digest, FileJob.of(root / path, st, "sha256")))
    for (c, path, digest, _), now in zip(jobs, hash_all([job for *_, job in jobs]),
                                         strict=True):
        if now is None:
            builder.skip(Location(path), "cannot re-hash: it changed or became unreadable "
                         "while it was read", inconclusive=True)
            continue
        builder.examine(Location(path), "bom-listed file")
        if now != digest:
            builder.add(BOM_FILE_CHANGED.finding(
                Location(path), f"{path} of {c.kind} {c.name} changed: sha256 {digest[:16]}... "
                f"is now {now[:16]}...", evidence=f"{path}:{now}",
                details={"ref": c.ref, "recorded": digest, "now": now}))
    _remote(remote, builder)


def _remote(files: list[tuple[Component, FileRecord]], builder: ReportBuilder) -> None:
    """Files in object storage or a registry, re-hashed where they are by the digest the BOM
    records (a manifest's, sharded or not); without one, they cannot be checked."""
    from mlward._internal.provenance.errors import ProvenanceError
    from mlward._internal.provenance.hashing import FileJob, hash_with
    from mlward.executors import ThreadExecutor

    for c, f in files:
        label = next((k for k in sorted(f.digests) if _known(k)), None)
        loc = Location(f.path)
        if label is None or not is_remote(f.path):
            builder.skip(loc, f"{c.kind} {c.name}: the BOM records no digest of it that can "
                         "be checked here", inconclusive=True)
            continue
        try:
            now = hash_with(ThreadExecutor(), [FileJob.remote(f.path, f.size, label)])[0]
        except ProvenanceError as exc:
            builder.add(BOM_FILE_MISSING.finding(
                loc, f"{f.path} of {c.kind} {c.name} cannot be read: {exc}", evidence=f.path,
                details={"ref": c.ref, "recorded": f.digests[label]}))
            continue
        builder.examine(loc, "bom-listed file")
        if now != f.digests[label]:
            builder.add(BOM_FILE_CHANGED.finding(
                loc, f"{f.path} of {c.kind} {c.name} changed: {label} "
                f"{f.digests[label][:16]}... is now {now[:16]}...", evidence=f"{f.path}:{now}",
                details={"ref": c.ref, "recorded": f.digests[label], "now": now}))


def _known(label: str) -> bool:
    """Whether mlward hashes with ``label`` (a BOM read from a file may name anything)."""
    from mlward._internal.provenance.errors import ProvenanceError
    from mlward._internal.provenance.hashing import parse_label

    try:
        parse_label(label)
    except ProvenanceError:
        return False
    return True


def _listed_again(c: Component, builder: ReportBuilder) -> None:
    """Objects that appeared under a component's object-storage prefix."""
    from mlward._internal.sources.remote import list_objects
    from mlward.errors import MlwardError

    try:
        now = list_objects(c.location)
    except MlwardError as exc:
        builder.skip(Location(c.location), f"cannot list it: {exc}", inconclusive=True)
        return
    known = {f.path for f in c.files}
    for obj in now:
        if obj.url not in known:
            builder.add(BOM_FILE_ADDED.finding(
                Location(obj.url), f"{obj.url} appeared in {c.kind} {c.name}, which the BOM "
                "lists without it", evidence=obj.url, details={"ref": c.ref}))


def _signatures(inventory: Inventory, root: Path, bom_file: Path,
                trusted: Mapping[str, Any] | None, builder: ReportBuilder) -> None:
    from mlward._internal.provenance import chain
    from mlward._internal.provenance.errors import ProvenanceError

    checks: list[tuple[str, Path, Path | None]] = []  # (what, signed, envelope or None: OMS)
    own = chain.signature_path(bom_file)
    if own.exists():
        checks.append(("the BOM's own signature", bom_file, own))
    for c in inventory.components:
        path = root / c.location
        if c.properties.get("signature") == "valid":
            bundle = chain.oms_signature_path(path)
            checks.append((f"{c.name}'s signature", path, None if bundle.exists()
                           else chain.signature_path(path)))
        if c.properties.get("lineage_signature") == "valid":
            statement = root / str(c.properties.get("lineage", ""))
            checks.append((f"{c.name}'s lineage signature", statement,
                           chain.signature_path(statement)))
    if not checks:
        return
    if trusted is None:
        for what, signed, _ in checks:
            builder.skip(Location(_uri(root, signed)), f"{what} not checked: no trusted keys "
                         "(pass --key or --trust, or add .mlward/trusted_keys.pem)",
                         inconclusive=True)
        return
    for what, signed, envelope in checks:
        loc = Location(_uri(root, signed))
        if envelope is None:
            link = chain.verify_oms(signed, chain.oms_signature_path(signed), trusted)
            ok, detail = link.ok, link.detail
        else:
            try:
                chain.verify_file(signed, envelope, trusted)
                ok, detail = True, "valid"
            except ProvenanceError as exc:
                ok, detail = False, exc.diagnostics()
        builder.examine(loc, "signature")
        if not ok:
            builder.add(BOM_SIGNATURE_INVALID.finding(
                loc, f"{what} no longer verifies: {detail}", evidence=what))


def _uri(root: Path, path: Path) -> str:
    from mlward.findings import local_uri

    return local_uri(path, root)


def _ledger(inventory: Inventory, settings: Settings, builder: ReportBuilder) -> None:
    from mlward._internal.ledger import LedgerError, open_ledger
    from mlward._internal.ledger.note import Checkpoint
    from mlward._internal.ledger.project import resolve

    binding = inventory.ledger
    if binding is None:
        return
    where = Location(f"ledger:{binding.origin}")
    try:
        if resolve(settings.db) is None:
            builder.skip(where, "no ledger here to check the BOM's checkpoint against "
                         "(run in the project, or pass --db)", inconclusive=True)
            return
        with open_ledger(settings.db) as ledger:
            if ledger.verifier is None:
                builder.skip(where, "the ledger has no verifier key: the BOM's checkpoint "
                             "cannot be checked", inconclusive=True)
                return
            checkpoint = Checkpoint.open(binding.note, ledger.verifier)
            size = ledger.size()
            held = size >= checkpoint.size and ledger.root(checkpoint.size) == checkpoint.root
            builder.examine(where, "ledger checkpoint")
            if checkpoint.origin != ledger.origin or not held or \
                    base64.b64encode(checkpoint.root).decode() != binding.root:
                builder.add(BOM_LEDGER_MISSING.finding(
                    where, f"the ledger ({ledger.origin}, {size} entries) does not hold the "
                    f"BOM's checkpoint ({checkpoint.origin}, size {checkpoint.size})",
                    evidence=binding.root, details={"size": checkpoint.size,
                                                    "ledger_size": size}))
    except LedgerError as exc:
        builder.add(BOM_LEDGER_MISSING.finding(where, f"the BOM's checkpoint cannot be "
                                               f"checked: {exc.diagnostics()}",
                                               evidence=binding.root))
