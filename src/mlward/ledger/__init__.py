"""Tamper-evident audit ledger. PLACEHOLDER until the ledger lands."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def record_event(action: str, resource: str, *, outcome: str,
                 digests: Mapping[str, str] | None = None,
                 details: Mapping[str, Any] | None = None,
                 project: Path | None = None) -> None:
    """Append an event to the project's ledger when there is one; do nothing otherwise.

    ``action`` e.g. ``scan``, ``manifest.create``, ``sign``; ``resource`` a path or URI;
    ``outcome`` e.g. ``pass``, ``fail``, ``error``. Never raises for a missing ledger.
    """
    return None
