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

from mlward._internal.bom.inventory import (
    Component,
    FileRecord,
    Inventory,
    InventoryError,
    LedgerBinding,
    Vulnerability,
    Workflow,
)

__all__ = ["Component", "FileRecord", "Inventory", "InventoryError", "LedgerBinding",
           "Vulnerability", "Workflow"]
