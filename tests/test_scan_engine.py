"""The scan engine: walking, dispatch, supplementary scanners, worker processes."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

import mlward
from mlward._internal.scanners.interface import SCANNERS, ScanContext, Scanner
from mlward._internal.sources import Source


def _project(root: Path, n: int) -> None:
    for i in range(n):
        (root / f"w{i}.pkl").write_bytes(pickle.dumps({"i": i, "v": [1.0, 2.0]}, protocol=i % 6))
    # one payload among them: os.system("true"), assembled by hand, never run
    (root / "evil.bin").write_bytes(b"cos\nsystem\n(S'true'\ntR.")


def _summary(report: mlward.Report) -> tuple[object, ...]:
    return (sorted((f.rule_id, str(f.location), f.evidence) for f in report.findings),
            sorted((str(e.location), e.format) for e in report.examined),
            sorted((str(s.location), s.reason) for s in report.skipped))


def test_workers_give_the_same_report_as_one_process(tmp_path: Path) -> None:
    _project(tmp_path, 150)
    one = mlward.scan([tmp_path], jobs=1)
    two = mlward.scan([tmp_path], jobs=2)
    assert _summary(one) == _summary(two)
    assert any(f.evidence == "os.system" for f in two.findings)
    assert len(two.examined) >= 151


class _DiesOnMagic(Scanner):
    """A scanner that kills its process, standing in for a native library crash."""

    name = "test-dies"
    priority = 1

    def sniff(self, source: Source) -> bool:
        return source.head(8) == b"DIE-NOW!"

    def scan(self, source: Source, ctx: ScanContext) -> None:
        os._exit(13)


@pytest.fixture
def dying_scanner():
    yield
    SCANNERS[:] = [s for s in SCANNERS if not isinstance(s, _DiesOnMagic)]


def test_a_dead_worker_makes_its_files_inconclusive(tmp_path: Path, dying_scanner) -> None:
    _project(tmp_path, 100)
    (tmp_path / "crash.bin").write_bytes(b"DIE-NOW!")
    report = mlward.scan([tmp_path], jobs=2)
    inconclusive = {s.location.path for s in report.inconclusive}
    assert inconclusive == {str(tmp_path / "crash.bin")}
    # Every other file was still judged, the payload among them.
    assert len({e.location.path for e in report.examined}) == 101
    assert any(f.evidence == "os.system" for f in report.findings)


def test_secrets_pass_also_runs_on_files_another_scanner_claims(tmp_path: Path) -> None:
    token = "hf_" + "Zq8" * 11 + "x"
    (tmp_path / "requirements.txt").write_text(
        f"numpy==1.26.4\n--extra-index-url https://ci:{token}@pypi.internal.example/simple\n")
    report = mlward.scan([tmp_path])
    formats = {e.format.split(" ")[0] for e in report.examined}
    assert "text" in formats and "dependencies" in formats
    assert any(f.rule_id.startswith("MW4") for f in report.findings)


def test_unrecognised_files_are_skipped_not_inconclusive(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    report = mlward.scan([tmp_path])
    assert [s.reason for s in report.skipped] == ["unrecognised format"]
    assert report.exit_code(mlward.Severity.HIGH) == 0


def test_third_party_scanner_loads_from_its_entry_point(tmp_path: Path, monkeypatch) -> None:
    """A distribution declaring ``mlward.scanners`` gets its scanner registered and used."""
    import mlward._internal.scanners as registry

    (tmp_path / "mlward_plugin_demo.py").write_text(
        "from mlward.plugins import Scanner\n"
        "class DemoScanner(Scanner):\n"
        "    name = 'demo-format'\n"
        "    priority = 5\n"
        "    def sniff(self, source):\n"
        "        return source.head(9) == b'DEMOMODEL'\n"
        "    def scan(self, source, ctx):\n"
        "        ctx.examined(source.location, self.name)\n")
    info = tmp_path / "mlward_plugin_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlward-plugin-demo\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text("[mlward.scanners]\ndemo = mlward_plugin_demo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_loaded", False)
    (tmp_path / "m.bin").write_bytes(b"DEMOMODEL and more")
    try:
        report = mlward.scan([tmp_path / "m.bin"])
        assert report.examined[0].format == "demo-format"
    finally:
        SCANNERS[:] = [s for s in SCANNERS if s.name != "demo-format"]


def test_fork_map_returns_every_result_and_names_the_item_whose_worker_died() -> None:
    from mlward._internal.pipeline import _fork_map

    def work(item: int) -> int:
        if item == 5:
            os._exit(3)  # the process dies on this item only
        if item == 7:
            raise ValueError("a failure inside the worker")
        return item * 2

    out = dict(_fork_map(work, list(range(20)), 3))
    assert out == {i: None if i in (5, 7) else i * 2 for i in range(20)}
    with pytest.raises(ChildProcessError):  # every worker was reaped
        os.waitpid(-1, os.WNOHANG)
