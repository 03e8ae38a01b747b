"""Bytes a pickle hands a deserializer are scanned as what that deserializer would load.

``pickle.loads(b"...")``, ``torch.load(io.BytesIO(b"..."))``, ``numpy.load(...)`` and
``joblib.load(...)`` keep their own finding (a deserializer is dangerous by name); the bytes
they are given are scanned too (a nested pickle as a pickle, other data by content), and what
is inside is reported at a location naming the loader and the offset of its call.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import pytest
from pickle_payloads import System, by_rule, const, header, ref, scan_bytes

import mlward


class _Loads:
    """Pickles as ``pickle.loads(data)`` (the pickler picks how to write the bytes)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[object, tuple[bytes]]:
        return pickle.loads, (self.data,)


def _bytes(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def _load_bytesio(module: str, name: str, data: bytes) -> bytes:
    """A protocol-4 pickle calling ``module.name(io.BytesIO(data))``."""
    return (header(4) + ref(module, name) + ref("io", "BytesIO") + _bytes(data) + b"\x85R"
            + b"\x85R.")


def _nested(report: mlward.Report) -> set[tuple[str, str]]:
    """(outer member, evidence) of findings inside data handed to a loader."""
    return {(next(m for m in f.location.members if m.startswith("<")), f.evidence or "")
            for f in report.findings if any(m.startswith("<") for m in f.location.members)}


@pytest.mark.parametrize("proto", [2, 3, 4, 5])
def test_pickle_loads_of_bytes_is_scanned(tmp_path: Path, proto: int, marker: Path):
    inner = pickle.dumps(System(f"touch {marker}"), protocol=proto)
    report = scan_bytes(tmp_path, pickle.dumps(_Loads(inner), protocol=proto))
    loads = "pickle.loads" if proto < 3 else "_pickle.loads"  # fix_imports below protocol 3
    assert {f.evidence for f in by_rule(report, "MW101")} == {loads, "posix.system"}
    ((member, evidence),) = _nested(report)
    assert member.startswith(f"<{loads} argument, offset ") and evidence == "posix.system"
    assert not marker.exists()


def test_a_long_protocol_2_string_made_bytes_is_scanned(tmp_path: Path):
    # Protocols 0 to 2 write bytes as _codecs.encode(text, "latin1"); over 1 KiB the text is
    # not kept as a value but found again in the stream.
    inner = pickle.dumps([b"x" * 3000, System("id")], protocol=2)
    data = pickle.dumps(_Loads(inner), protocol=2)
    report = scan_bytes(tmp_path, data)
    assert ("posix.system" in {e for _, e in _nested(report)})


def test_torch_load_of_a_bytesio_is_scanned_by_content(tmp_path: Path):
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2), "x": System("id")}, buf)
    report = scan_bytes(tmp_path, _load_bytesio("torch", "load", buf.getvalue()))
    assert "torch.load" in {f.evidence for f in by_rule(report, "MW101")}
    assert "posix.system" in {e for _, e in _nested(report)}
    assert "pytorch-zip" in {e.format for e in report.examined}


def test_numpy_load_of_a_bytesio_is_scanned_by_content(tmp_path: Path):
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    np.save(buf, np.array([System("id")], dtype=object), allow_pickle=True)
    report = scan_bytes(tmp_path, _load_bytesio("numpy", "load", buf.getvalue()))
    assert "posix.system" in {e for _, e in _nested(report)}


def test_joblib_load_of_a_bytesio_is_scanned_by_content(tmp_path: Path):
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    joblib.dump({"w": np.arange(10.0), "x": System("id")}, buf, compress=3)
    report = scan_bytes(tmp_path, _load_bytesio("joblib", "load", buf.getvalue()))
    assert "posix.system" in {e for _, e in _nested(report)}


def test_bytes_from_the_memo_are_scanned_once(tmp_path: Path):
    inner = pickle.dumps(System("id"), protocol=4)
    body = (ref("pickle", "loads") + _bytes(inner) + b"\x94\x85R0"
            + ref("pickle", "loads") + b"h\x00\x85R.")
    report = scan_bytes(tmp_path, header(4) + body)
    assert len([f for f in by_rule(report, "MW101") if f.evidence == "posix.system"]) == 1


def test_benign_nested_bytes_add_nothing(tmp_path: Path):
    report = scan_bytes(tmp_path, pickle.dumps(_Loads(pickle.dumps([1, 2])), protocol=4))
    assert {f.evidence for f in report.findings} == {"_pickle.loads"}
    assert report.inconclusive == ()


def test_nesting_deeper_than_the_limit_is_inconclusive(tmp_path: Path):
    data = pickle.dumps([1])
    for _ in range(10):
        data = pickle.dumps(_Loads(data), protocol=4)
    report = scan_bytes(tmp_path, data)
    assert any("nested deeper" in s.reason for s in report.inconclusive)


def test_a_string_is_not_bytes(tmp_path: Path):
    # pickle.loads of a str fails in CPython: nothing nested to scan.
    inner = pickle.dumps(System("id"), protocol=0).decode("latin-1")
    data = header(4) + ref("pickle", "loads") + const(inner) + b"\x85R."
    report = scan_bytes(tmp_path, data)
    assert _nested(report) == set()
