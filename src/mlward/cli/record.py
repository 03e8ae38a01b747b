"""How every command leaves its entry in the project's audit ledger.

One action per command (``scan``, ``deps``, ``probe``, ``manifest.create``, ``sign``,
``notebook.clean`` ...) and a resource that is a URI (``file:///...``, ``http://...``), so the
ledger can be queried by what was touched. Outside an initialised project nothing is recorded
and the command says so once; a ledger that refuses the entry is a warning, and a ledger that
was deleted or emptied is reported as tampering (the command's own result still stands).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def file_uri(path: str | os.PathLike[str]) -> str:
    """The ``file://`` URI of a local path (absolute, links resolved)."""
    return Path(path).resolve().as_uri()


def record(args: argparse.Namespace, action: str, resource: str, *, outcome: str,
           digests: Mapping[str, str] | None = None,
           details: Mapping[str, Any] | None = None) -> None:
    """Append the event to the project's ledger; say once when there is none."""
    from mlward._internal.ledger import LedgerError, record_event
    from mlward._internal.ledger.errors import LedgerTampered

    settings = args.settings
    try:
        recorded = record_event(action, resource, outcome=outcome, digests=digests,
                                details=details, db=settings.db)
    except LedgerTampered as exc:
        print(f"mlward: TAMPERING: the {action} could not be recorded: {exc.diagnostics()}",
              file=sys.stderr)
        return
    except LedgerError as exc:
        print(f"mlward: warning: the {action} was not recorded in the ledger: "
              f"{exc.diagnostics()}", file=sys.stderr)
        return
    if not recorded and not settings.quiet and not getattr(args, "ledger_absence_told", False):
        args.ledger_absence_told = True
        print("mlward: note: not recorded in an audit ledger (no initialised project here; "
              "`mlward init` makes one)", file=sys.stderr)
