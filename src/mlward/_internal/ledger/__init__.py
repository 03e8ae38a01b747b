"""Tamper-evident audit ledger: an RFC 9162 Merkle log of who did what, where and when.

Layout: ``entry`` (canonical entries), ``merkle`` (RFC 9162 tree, proofs, verification),
``note`` (C2SP signed notes, checkpoints, tlog-proof receipts), ``store`` (SQLite and
PostgreSQL), ``ledger`` (the ledger over a store: append, prove, checkpoint, verify, export),
``project`` (the ``.mlward/`` folder and ``mlward init``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlward._internal.lazy import lazy_attributes
from mlward._internal.ledger.errors import LedgerError
from mlward._internal.ledger.project import find_project, init_project, open_ledger, resolve

if TYPE_CHECKING:
    from mlward._internal.ledger.entry import Entry, Event
    from mlward._internal.ledger.ledger import Ledger, Problem, VerifyResult, verify_export

# Heavy names load on first use (PEP 562), so that ``record_event`` in a project without a
# ledger costs no cryptography or database import.
__getattr__ = lazy_attributes(__name__, {
    "Entry": "entry", "Event": "entry", "Ledger": "ledger", "Problem": "ledger",
    "VerifyResult": "ledger", "verify_export": "ledger"})

__all__ = [
    "Entry", "Event", "Ledger", "LedgerError", "Problem", "VerifyResult", "find_project",
    "init_project", "open_ledger", "record_event", "verify_export",
]


def record_event(action: str, resource: str, *, outcome: str,
                 digests: Mapping[str, str] | None = None,
                 details: Mapping[str, Any] | None = None,
                 project: Path | None = None, db: str | None = None) -> bool:
    """Append an event to the project's ledger when there is one (True); do nothing
    otherwise (False).

    ``action`` e.g. ``scan``, ``manifest.create``, ``sign``; ``resource`` a path or URI;
    ``outcome`` e.g. ``pass``, ``fail``, ``error``. The project is the ``.mlward/`` folder found
    walking up from ``project`` (default: the current directory), or ``db`` (the ``db``
    setting: ``--db``, ``MLWARD_DB``).

    Never raises for a missing ledger. Raises :class:`LedgerError` when a ledger is configured
    but cannot take the entry (unreadable, locked too long, a bad event), and
    :class:`~mlward._internal.ledger.errors.LedgerTampered` when an initialised project's
    ledger is gone: the caller decides whether that fails its command (the CLI warns and
    carries on).

    Every event records where it happened (``details["where"]``: the working directory, the
    project and its git commit), which also lets the forensic index resolve relative paths.
    """
    config = resolve(db, project=project)
    if config is None:
        return False
    from mlward._internal.ledger.entry import Event
    from mlward._internal.ledger.refs import here

    event = Event(action=action, resource=resource, outcome=outcome,
                  digests=dict(digests or {}), details={"where": here(), **(details or {})})
    with open_ledger(db, project=project) as ledger:
        ledger.append([event])
    return True
