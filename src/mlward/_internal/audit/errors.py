"""Errors of audits, snapshots and evidence bundles."""

from __future__ import annotations

from mlward.errors import MlwardError


class AuditError(MlwardError):
    """An audit cannot run or record, or a snapshot or bundle is malformed."""
