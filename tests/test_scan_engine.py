"""The scan engine: walking, dispatch, supplementary scanners, worker processes."""

from __future__ import annotations

from pathlib import Path

import mlward
from mlward._internal.scanners.interface import SCANNERS
from mlward.settings import Settings


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
        # In this process: the plugin's folder was put on sys.path after the workers' fork
        # server started (tests/test_executors.py covers plugins in worker processes).
        report = mlward.scan([tmp_path / "m.bin"], settings=Settings(executor="inline"))
        assert report.examined[0].format == "demo-format"
    finally:
        SCANNERS[:] = [s for s in SCANNERS if s.name != "demo-format"]
