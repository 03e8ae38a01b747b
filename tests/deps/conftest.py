"""Fixtures for the dependency tests: real OSV records copied into tests/fixtures/osv."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlward._internal.vulndb import LocalIndex, open_index
from mlward.settings import Settings, load_settings

OSV = Path(__file__).resolve().parent.parent / "fixtures" / "osv"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own index cache and no configured data."""
    monkeypatch.setenv("MLWARD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLWARD_VULN_DB", raising=False)
    monkeypatch.setenv("MLWARD_OSV_API", "http://127.0.0.1:9")  # never the real service


def env_settings() -> Settings:
    """The settings the CLI would resolve here (the tests set MLWARD_* variables)."""
    return load_settings(env=os.environ)


@pytest.fixture(scope="session")
def osv_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIndex]:
    """The fixture records indexed once for the session, in a cache of its own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLWARD_CACHE", str(tmp_path_factory.mktemp("osv-cache")))
        index = open_index(OSV, settings=env_settings())
    yield index
    index.close()
