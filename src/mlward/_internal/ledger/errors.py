"""Errors of the audit ledger."""

from __future__ import annotations

from mlward.errors import MlwardError


class LedgerError(MlwardError):
    """The ledger cannot be opened, read or written, or a ledger document is malformed."""
