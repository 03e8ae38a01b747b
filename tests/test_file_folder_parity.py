"""A verdict does not depend on how a file was reached (issue 13, item 3): scanning the test
corpora file by file and as one folder gives identical findings and examined formats, a folder
scan lists no file twice, and an exposure config inside an archive gets the findings it gets
on disk."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import corpus
import mlward
from mlward.findings import Report
from mlward.settings import Settings


def _settings(root: Path) -> Settings:
    return Settings(executor="inline", root=str(root))


def _findings(report: Report) -> list[dict[str, Any]]:
    """Every finding, whole, minus the fingerprint (it numbers equal findings per run)."""
    out = []
    for f in report.findings:
        d = f.to_dict()
        d.pop("fingerprint")
        out.append(d)
    return sorted(out, key=repr)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], Path]:
    root = tmp_path_factory.mktemp("corpus")
    marker = root.parent / "PWNED_MARKER"
    return root, corpus.build(root / "all", marker), marker


def test_file_by_file_and_folder_scans_agree(built: tuple[Path, list[Path], Path]) -> None:
    root, files, marker = built
    folder = mlward.scan([root / "all"], settings=_settings(root))
    alone = [mlward.scan([f], settings=_settings(root)) for f in files]
    assert _findings(folder) == sorted((d for r in alone for d in _findings(r)), key=repr)
    assert sorted(folder.examined) == sorted(e for r in alone for e in r.examined)
    # every exposure fixture was judged, named or not
    exposed = {f.location.uri for f in folder.findings if f.rule_id.startswith("MW6")}
    assert {f"all/{name}" for name in corpus.EXPOSURE} <= exposed
    assert not marker.exists()


def test_a_folder_scan_lists_no_file_twice(built: tuple[Path, list[Path], Path]) -> None:
    root, _, _ = built
    report = mlward.scan([root / "all"], settings=_settings(root))
    twice = [k for k, n in Counter((e.location, e.format) for e in report.examined).items()
             if n > 1]
    assert not twice
    assert len({f.fingerprint for f in report.findings}) == len(report.findings)


@pytest.mark.parametrize("name", sorted(corpus.EXPOSURE))
def test_an_exposure_config_in_an_archive_gets_the_same_findings(tmp_path: Path,
                                                                 name: str) -> None:
    (tmp_path / name).write_text(corpus.EXPOSURE[name])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, corpus.EXPOSURE[name])
    (tmp_path / "configs.zip").write_bytes(buf.getvalue())
    on_disk = mlward.scan([tmp_path / name], settings=_settings(tmp_path))
    zipped = mlward.scan([tmp_path / "configs.zip"], settings=_settings(tmp_path))

    def judged(report: Report) -> list[tuple[object, ...]]:
        return sorted((f.rule_id, f.severity, f.message, f.evidence,
                       f.location.members[-1] if f.location.members else f.location.uri)
                      for f in report.findings if f.rule_id.startswith("MW6"))

    assert judged(on_disk)
    assert judged(on_disk) == judged(zipped)
