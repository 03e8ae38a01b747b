"""The inventory: every report, BOM, gate run and audit snapshot a command produced, in one
database the dashboard (``mlward serve``) and ``mlward query`` read.

Layout: ``config`` (the ``[inventory]`` table), ``schema`` (tables and the versioned
migrations, one schema for SQLite and PostgreSQL), ``documents`` (what a JSON document is and
the rows it becomes), ``store`` (open, ingest by digest, the queries the pages and the JSON
API share).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlward._internal.inventory.errors import InventoryError
from mlward._internal.lazy import lazy_attributes

if TYPE_CHECKING:
    from mlward._internal.inventory.documents import Document, DocumentError, parse_document
    from mlward._internal.inventory.store import InventoryStore, Page, open_store

# The database layer loads on first use: a command run outside any project pays no
# SQLAlchemy import to learn that it has no inventory.
__getattr__ = lazy_attributes(__name__, {
    "Document": "documents", "DocumentError": "documents", "parse_document": "documents",
    "InventoryStore": "store", "Page": "store", "open_store": "store"})

__all__ = ["Document", "DocumentError", "InventoryError", "InventoryStore", "Page",
           "open_store", "parse_document"]
