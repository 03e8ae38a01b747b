"""The function a scan's work units run, in a module of its own.

A unit's function travels to the worker as a reference to it (module and name). Here, the
process that sends units pickles it without importing the engine and the scanners, and the
fork server preloads it without the pipeline (its logging and report building), which no
worker needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlward._internal.engine import ItemResult
    from mlward._internal.walk import Item
    from mlward.settings import Settings


def scan_item(settings: Settings, item: Item) -> ItemResult:
    """Scan one work unit (in a worker)."""
    from mlward._internal.engine import scan_unit

    return scan_unit(settings, item)
