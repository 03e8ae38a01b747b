from __future__ import annotations

import json
import pickle
from pathlib import Path

from mlward.cli.main import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "mlward" in capsys.readouterr().out


def test_no_command_is_usage_error():
    assert main([]) == 2


def test_missing_path_is_usage_error(tmp_path: Path, capsys):
    assert main(["scan", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_benign_pickle_passes(tmp_path: Path, capsys):
    (tmp_path / "w.pkl").write_bytes(pickle.dumps({"a": [1, 2.0, "x"]}, protocol=4))
    assert main(["scan", "--format", "json", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["verdicts"] == {str(tmp_path / "w.pkl"): "clean"}
