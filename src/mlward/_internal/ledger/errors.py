"""Errors of the audit ledger."""

from __future__ import annotations

from mlward.errors import MlwardError


class LedgerError(MlwardError):
    """The ledger cannot be opened, read or written, or a ledger document is malformed."""


class LedgerTampered(LedgerError):
    """The ledger of an initialised project is gone or emptied: evidence was destroyed.

    Never answered by making a new, empty ledger (that would hide the loss)."""
