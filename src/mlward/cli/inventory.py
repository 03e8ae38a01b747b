"""Writing command results to the inventory (the dashboard's database), from the CLI edge:
the settings are resolved here, and a failure is a warning that never changes a command's
exit code (the report the user asked for was already written)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from mlward.errors import MlwardError
from mlward.findings import Report


def inventory_config(settings: Any) -> Any:
    """The resolved ``[inventory]`` settings (:class:`InventoryConfig`)."""
    from mlward._internal.inventory.config import parse_config
    from mlward._internal.ledger import find_project

    return parse_config(settings.section("inventory"), ledger_db=settings.db,
                        project_folder=find_project())


def keep(data: Report | Mapping[str, Any], args: argparse.Namespace, action: str) -> None:
    """Ingest a report, or a BOM, gate result or audit snapshot as JSON data, into the
    inventory when there is one and recording is on; warn, never raise, when it fails."""
    try:
        config = inventory_config(args.settings)
        if config.db is None or not config.record:
            return  # before the database layer is imported: a run without one pays nothing
        from mlward._internal.inventory import open_store, parse_document
        from mlward._internal.inventory.documents import report_document

        doc = (report_document(data, action) if isinstance(data, Report)
               else parse_document(data, action=action))
        with open_store(config.db) as store:
            store.ingest(doc, project=config.project)
    except MlwardError as exc:
        print(f"mlward: warning: the {action} was not written to the inventory: "
              f"{exc.diagnostics()}", file=sys.stderr)
    except Exception as exc:
        print(f"mlward: warning: the {action} was not written to the inventory: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
