"""Scanning never runs what it scans: payloads that would create a marker file never do."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from pickle_payloads import System, by_rule, call, const, header, ref

import mlward
from mlward.cli.main import main


class _Exec:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (self.code,)


def _payloads(marker: Path) -> dict[str, bytes]:
    touch = f"touch {marker}"
    write = f"open({str(marker)!r}, 'w').close()"
    out = {f"system{p}.pkl": pickle.dumps(System(touch), protocol=p) for p in range(6)}
    out["exec.pkl"] = pickle.dumps(_Exec(write), protocol=4)
    out["run.pkl"] = call("subprocess", "run", ["touch", str(marker)])
    out["second.pkl"] = pickle.dumps([1, 2]) + pickle.dumps(System(touch), protocol=2)
    out["garbage_after.pkl"] = pickle.dumps(System(touch), protocol=2)[:-1] + b"\xff\xff"
    out["dotted.pkl"] = header(4) + ref("builtins", "__import__") + const(("os",)) + b"R0" \
        + ref("os", "path.__builtins__.exec") + const((write,)) + b"R."
    return out


def test_control_the_payloads_are_live(tmp_path: Path, marker: Path):
    # Proof that the payloads work: a real loader (in a child process) creates the marker.
    path = tmp_path / "system2.pkl"
    path.write_bytes(_payloads(marker)["system2.pkl"])
    loader = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"
    subprocess.run([sys.executable, "-c", loader, str(path)], check=True, capture_output=True)
    assert marker.exists()


def test_api_scan_never_executes(tmp_path: Path, marker: Path):
    models = tmp_path / "models"
    models.mkdir()
    for name, data in _payloads(marker).items():
        (models / name).write_bytes(data)
    report = mlward.scan([models])
    assert not marker.exists()
    verdicts = report.verdicts()
    assert len(verdicts) == len(_payloads(marker))
    assert {str(v) for v in verdicts.values()} == {"dangerous"}


def test_cli_scan_never_executes(tmp_path: Path, marker: Path, capsys: pytest.CaptureFixture[str]):
    for name, data in _payloads(marker).items():
        (tmp_path / name).write_bytes(data)
    assert main(["scan", str(tmp_path)]) == 1
    assert not marker.exists()
    assert "MW101" in capsys.readouterr().out


def test_joblib_object_array_payload(tmp_path: Path, marker: Path):
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = "benign", System(f"touch {marker}")
    path = tmp_path / "model.joblib"
    joblib.dump({"weights": np.arange(100.0), "objects": arr, "after": np.ones(3)}, path)
    report = mlward.scan([path])
    assert not marker.exists()
    (f,) = by_rule(report, "MW101")
    assert f.evidence == "posix.system"
    assert report.inconclusive == ()


def test_numpy_object_array_payload(tmp_path: Path, marker: Path):
    np = pytest.importorskip("numpy")
    arr = np.array([System(f"touch {marker}")], dtype=object)
    path = tmp_path / "arr.pkl"
    path.write_bytes(pickle.dumps(arr, protocol=5))
    report = mlward.scan([path])
    assert not marker.exists()
    assert {f.evidence for f in by_rule(report, "MW101")} == {"posix.system"}


def test_torch_checkpoint_payload(tmp_path: Path, marker: Path):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2), "x": System(f"touch {marker}")}, buf)
    path = tmp_path / "model.pt"
    path.write_bytes(buf.getvalue())
    report = mlward.scan([path])
    assert not marker.exists()
    assert {f.evidence for f in by_rule(report, "MW101")} == {"posix.system"}
