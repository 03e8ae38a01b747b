"""The inventory's one error."""

from __future__ import annotations

from mlward.errors import MlwardError


class InventoryError(MlwardError):
    """The inventory database cannot be opened, migrated or written, or a document given to
    it is not one mlward made."""
