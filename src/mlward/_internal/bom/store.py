"""The inventories of recorded ``mlward bom`` runs, kept by digest in the project.

The ledger entry of a ``bom`` run records the BOM document's SHA-256 and the inventory's
digest; the inventory itself is kept in ``.mlward/boms/<digest>.json``, so ``ledger:N`` (the
BOM recorded at entry N) and ``ledger:latest`` can be read back, and a copy that was edited is
refused because it no longer has the digest the ledger recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlward._internal.bom.cyclonedx import BomError
from mlward._internal.bom.inventory import Inventory, InventoryError
from mlward.settings import Settings

FOLDER = "boms"
ACTION = "bom"


def folder(project: Path) -> Path:
    return project / FOLDER


def keep(inventory: Inventory, project: Path) -> Path:
    """Write the inventory under the project's ``.mlward/boms/`` by its digest."""
    from mlward._internal.io import atomic_write_text

    target = folder(project) / f"{inventory.digest()}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        atomic_write_text(target, inventory.to_json(), mode=0o644)
    return target


def is_ledger_ref(text: str) -> bool:
    return text.startswith("ledger:")


def recorded(spec: str, settings: Settings) -> Inventory:
    """The inventory of the ``bom`` run at ``ledger:N`` or ``ledger:latest``."""
    from mlward._internal.ledger import LedgerError, find_project, open_ledger
    from mlward._internal.ledger.store import Filters

    which = spec[len("ledger:"):]
    if which != "latest" and not which.isdigit():
        raise BomError(f"{spec!r}: say ledger:N (an entry number) or ledger:latest")
    try:
        with open_ledger(settings.db) as ledger:
            if which == "latest":
                entries = [e for e in ledger.log(Filters(action=ACTION))
                           if e.event.action == ACTION]
                if not entries:
                    raise BomError("the ledger records no `mlward bom` run")
                entry = max(entries, key=lambda e: e.index)
            else:
                entry = ledger.entry(int(which))
    except LedgerError as exc:
        raise BomError(f"{spec}: {exc.diagnostics()}") from None
    if entry.event.action != ACTION or "inventory" not in entry.event.details:
        raise BomError(f"{spec}: ledger entry {entry.index} is a {entry.event.action!r} event, "
                       "not a recorded BOM")
    digest = str(entry.event.details["inventory"])
    project = find_project()
    path = folder(project) / f"{digest}.json" if project else None
    if path is None or not path.is_file():
        raise BomError(f"{spec}: the inventory of entry {entry.index} ({digest[:16]}...) is "
                       "not in this project's .mlward/boms/")
    try:
        inventory = Inventory.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, InventoryError) as exc:
        raise BomError(f"{spec}: {path} is unreadable ({exc})") from None
    if inventory.digest() != digest:
        raise BomError(f"{spec}: {path} was changed after the ledger recorded it (its digest "
                       "differs)")
    return inventory
