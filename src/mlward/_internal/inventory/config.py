"""The ``[inventory]`` settings table.

```toml
[inventory]
db = "postgresql://mlward@db.example/mlward"   # default: .mlward/inventory.db
record = true       # false: commands do not write their results to the inventory
project = "fraud-model"   # the name results are filed under (default: the root folder's)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mlward._internal.inventory.errors import InventoryError

DEFAULT_FILE = "inventory.db"

_KEYS = {"db", "record", "project"}


class InventoryConfig(NamedTuple):
    db: str | None  # None: no inventory (no project, nothing configured)
    record: bool = True
    project: str | None = None


def parse_config(section: Mapping[str, Any], *, ledger_db: str | None,
                 project_folder: Path | None) -> InventoryConfig:
    """The inventory settings: ``[inventory] db``, else the ledger's database when that is
    PostgreSQL (a team server keeps both), else ``inventory.db`` in the project's
    ``.mlward`` folder, else none."""
    unknown = set(section) - _KEYS
    if unknown:
        raise InventoryError(f"[inventory]: unknown key(s) {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(sorted(_KEYS))})")
    db = section.get("db")
    if db is not None and (not isinstance(db, str) or not db.strip()):
        raise InventoryError("[inventory] db must be a path or a postgresql:// URL")
    record = section.get("record", True)
    if not isinstance(record, bool):
        raise InventoryError("[inventory] record must be true or false")
    project = section.get("project")
    if project is not None and (not isinstance(project, str) or not project.strip()):
        raise InventoryError("[inventory] project must be a non-empty string")
    if db is None and ledger_db and ledger_db.startswith(("postgresql://", "postgres://")):
        db = ledger_db
    if db is None and project_folder is not None:
        db = str(project_folder / DEFAULT_FILE)
    return InventoryConfig(db, record, project)
