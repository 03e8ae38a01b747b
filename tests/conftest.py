"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A path that a payload would create if it ever ran. Tests assert it never exists."""
    return tmp_path / "PWNED_MARKER"
