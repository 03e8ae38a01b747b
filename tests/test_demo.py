"""``mlward demo``: the walk-through behaves, and its scan finds the one malicious model among
clean ones without running anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlward._internal.demo import MALICIOUS, build_demo_project
from mlward.cli.main import main


def test_demo_flags_the_malicious_file_only(tmp_path: Path, capsys) -> None:
    root = tmp_path / "demo"
    assert main(["demo", "--scan-only", "--keep", str(root), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    verdicts = report["summary"]["verdicts"]
    assert verdicts.pop(MALICIOUS) == "dangerous"
    assert verdicts and set(verdicts.values()) == {"clean"}
    assert report["summary"]["inconclusive"] == 0
    formats = {e["format"] for e in report["examined"]}
    assert {"pytorch-zip", "numpy-npy", "zlib", "tar", "gzip"} <= formats


def test_demo_text_output_names_the_file(capsys) -> None:
    assert main(["demo", "--scan-only"]) == 1
    out = capsys.readouterr().out
    assert "sentiment.pkl" in out
    assert "os.system" in out


def test_the_walk_through_behaves_and_names_the_edit(tmp_path: Path, capsys) -> None:
    root = tmp_path / "story"
    assert main(["demo", "--keep", str(root)]) == 0
    out = capsys.readouterr().out
    assert "UNEXPECTED" not in out
    for shown in ("MW101", "MW401", "first snapshot", "modified  data   data/train.csv",
                  "modified data/train.csv sha256:", "every command behaved as expected"):
        assert shown in out
    assert not (root / "downloaded/sentiment.pkl").exists()  # quarantined by the fix


def test_the_walk_through_reports_a_misbehaving_command(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlward.cli import demo

    monkeypatch.setattr(demo.Story, "_flip_label", lambda self: None)  # no edit to find
    assert main(["demo", "--keep", str(tmp_path / "story")]) == 1
    out = capsys.readouterr().out
    assert "mlward did not behave as expected" in out and "audit diff" in out


def test_demo_never_runs_the_payload(tmp_path: Path, marker: Path, capsys) -> None:
    build_demo_project(tmp_path / "d", payload_command=f"touch {marker}")
    assert main(["scan", "-q", str(tmp_path / "d")]) == 1
    assert "sentiment.pkl" in capsys.readouterr().out
    assert not marker.exists()


@pytest.mark.torch
def test_demo_models_load_with_the_real_libraries(tmp_path: Path) -> None:
    """The hand-assembled files are the real formats: the real loaders accept the benign ones."""
    torch = pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    joblib = pytest.importorskip("joblib")
    build_demo_project(tmp_path)
    state = torch.load(tmp_path / "models/classifier.pt", weights_only=True)
    assert list(state) == ["fc.weight", "fc.bias"]
    assert tuple(state["fc.weight"].shape) == (2, 3)
    assert np.load(tmp_path / "models/embeddings.npy").shape == (4, 3)
    assert joblib.load(tmp_path / "models/scaler.joblib")["with_std"] is True
