"""Audit fixtures: a small project with a ledger, audited in this process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlward._internal.audit.record import AuditResult, run_audit
from mlward._internal.demo import write_files
from mlward._internal.ledger import find_project, init_project, open_ledger
from mlward.settings import Settings

SETTINGS = Settings(executor="inline")


write = write_files


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tmp_path/proj``: data, a model, code; an initialised ledger; the cwd."""
    root = tmp_path / "proj"
    root.mkdir()
    write(root, {"data/train.csv": "text,label\ngood,1\n", "data/test.csv": "text,label\nbad,0\n",
                 "models/weights.npy": b"\x93NUMPY\x01\x00v\x00" + b"{'descr': '<f4', "
                 b"'fortran_order': False, 'shape': (1,), }".ljust(117) + b"\n" + b"\0\0\0\0",
                 "train.py": "print('train')\n"})
    init_project(root).close()
    monkeypatch.chdir(root)
    yield root


def audit(root: Path, settings: Settings = SETTINGS, **kwargs: object) -> AuditResult:
    folder = find_project(root)
    assert folder is not None
    with open_ledger(settings.db, root) as ledger:
        return run_audit(root, settings, ledger, folder, **kwargs)  # type: ignore[arg-type]
