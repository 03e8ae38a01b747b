"""ML bill of materials: every model, dataset, library, service and external model source of a
project, with digests, provenance and scan verdicts, in CycloneDX and SPDX.

The package reads as its pipeline: ``collect`` (a scan, a dependency audit, provenance records
and model cards -> one :class:`~.inventory.Inventory`) -> ``cyclonedx`` / ``spdx`` (renderings
of that inventory, each validated) -> ``read`` (either format back into an inventory) ->
``verify`` (the inventory against the files on disk, its signatures and the ledger) and
``diff`` (two inventories). ``completeness`` scores a model's record; ``store`` keeps the
inventory of every recorded run in the project (``ledger:N``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlward._internal.bom.inventory import (
    Component,
    FileRecord,
    Inventory,
    InventoryError,
    LedgerBinding,
    Vulnerability,
    Workflow,
)
from mlward.settings import Settings


def inventory_of(paths: Sequence[Path], settings: Settings | None = None) -> Inventory:
    """The inventory of ``paths`` (what ``mlward bom`` renders), with the vulnerability data
    the settings name; ``Inventory.to_dict()`` is its JSON (the dashboard reads that)."""
    from mlward._internal.bom.collect import Options, build_inventory
    from mlward._internal.vulndb import source_for

    settings = settings or Settings()
    inventory, _, _ = build_inventory(paths, settings, Options(vulns=source_for(settings)))
    return inventory


def load_bom(spec: str, settings: Settings | None = None) -> Inventory:
    """The inventory of a BOM file (any format mlward writes) or of ``ledger:N`` /
    ``ledger:latest`` (a recorded run)."""
    from mlward._internal.bom.read import load
    from mlward._internal.bom.store import is_ledger_ref, recorded

    return recorded(spec, settings or Settings()) if is_ledger_ref(spec) else load(Path(spec))


__all__ = ["Component", "FileRecord", "Inventory", "InventoryError", "LedgerBinding",
           "Vulnerability", "Workflow", "inventory_of", "load_bom"]
