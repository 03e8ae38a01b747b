"""Damaged files are never passed as clean: a file that starts as a plausible pickle, joblib
or .npy file and cannot be read to its end is inconclusive (exit 2), with anything found
before the damage reported (a payload before the cut still makes it dangerous, exit 1).

Plausible means more than a few bytes: a PROTO header, or a few opcodes that run cleanly
(a 1-byte file holding ``(`` is not a pickle).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
from pickle_payloads import call, evidence, rules, scan_bytes

import mlward
from mlward.cli.main import main

SAMPLE = {"weights": [0.5, 1.5], "name": "layer", "shape": (3, 4), "big": 10**20,
          "raw": b"xyz", "tags": {"a"}, "ok": True}


def _verdict(report: mlward.Report) -> str:
    (v,) = {str(v) for v in report.verdicts().values()}
    return v


def _exit(path: Path) -> int:
    return main(["scan", "-q", str(path)])


@pytest.mark.parametrize("proto", range(6))
def test_every_truncation_of_a_pickle_is_inconclusive(tmp_path: Path, proto: int):
    data = pickle.dumps(SAMPLE, protocol=proto)
    start = 2 if proto >= 2 else 6  # a PROTO header, or a few clean opcodes
    for cut in range(start, len(data)):
        report = scan_bytes(tmp_path, data[:cut])
        assert _verdict(report) == "inconclusive", (cut, data[:cut])
        assert "MW105" in rules(report), cut


@pytest.mark.parametrize("proto", [0, 2, 4])
def test_a_truncated_pickle_exits_2(tmp_path: Path, proto: int):
    data = pickle.dumps(SAMPLE, protocol=proto)
    path = tmp_path / "model.pkl"
    for cut in (len(data) // 3, len(data) - 1):
        path.write_bytes(data[:cut])
        assert _exit(path) == 2


def test_a_payload_before_the_cut_is_still_reported(tmp_path: Path):
    data = call("os", "system", "id")[:-1] + b"\x8c\x05abc"  # REDUCE ran; then cut
    report = scan_bytes(tmp_path, data)
    assert evidence(report, "MW101") == {"os.system"}
    assert report.inconclusive and _verdict(report) == "dangerous"
    assert _exit(tmp_path / "model.pkl") == 1


@pytest.mark.parametrize(("opcode", "width"), [
    (b"\x8e", 8), (b"\x8d", 8), (b"\x96", 8), (b"\x95", 8), (b"B", 4), (b"X", 4), (b"T", 4),
])
def test_a_length_past_the_end_right_after_proto(tmp_path: Path, opcode: bytes, width: int):
    # Nothing before it to recognise the pickle by but the PROTO header: still a pickle.
    size = 2**60 if width == 8 else 2**31 - 1
    data = b"\x80\x04" + opcode + size.to_bytes(width, "little") + b"x" * 100
    report = scan_bytes(tmp_path, data)
    assert "MW105" in rules(report) and _verdict(report) == "inconclusive"
    assert _exit(tmp_path / "model.pkl") == 2


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
def test_every_truncation_of_a_joblib_file_is_inconclusive(tmp_path: Path, compress: object):
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    joblib.dump({"w": np.arange(200.0), "o": np.array(["a", None], dtype=object), "n": 1}, buf,
                compress=compress)
    data = buf.getvalue()
    # Compressed: what the stream's magic needs; zlib (joblib's default, ``compress=3``) from
    # its two-byte header, cut inside its Huffman tables before any byte of output.
    start = 6 if compress == 0 else 2 if compress == 3 else 128
    for cut in range(start, len(data), max(1, len(data) // 80)):
        report = scan_bytes(tmp_path, data[:cut], "model.joblib")
        assert _verdict(report) == "inconclusive", cut


def test_a_truncated_plain_npy_is_inconclusive(tmp_path: Path):
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    np.save(buf, np.arange(100.0).reshape(10, 10))
    data = buf.getvalue()
    header_end = len(data) - 800
    for cut in (header_end, header_end + 1, len(data) - 1):
        report = scan_bytes(tmp_path, data[:cut], "a.npy")
        assert _verdict(report) == "inconclusive", cut
        assert any("truncated .npy" in s.reason for s in report.inconclusive)
    assert _exit(tmp_path / "a.npy") == 2
    complete = scan_bytes(tmp_path, data, "a.npy")
    assert _verdict(complete) == "clean"


@pytest.mark.parametrize("dtype", ["<U3", "|S2", "<M8[ns]", "c16", "?"])
def test_plain_npy_sizes_match_numpy(tmp_path: Path, dtype: str):
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 3), dtype=dtype))
    assert _verdict(scan_bytes(tmp_path, buf.getvalue(), "a.npy")) == "clean"
    assert _verdict(scan_bytes(tmp_path, buf.getvalue()[:-1], "a.npy")) == "inconclusive"


def test_structured_npy_sizes_match_numpy(tmp_path: Path):
    np = pytest.importorskip("numpy")
    dtype = np.dtype({"names": ["a", "b"], "formats": ["<f4", ("u1", (3,))],
                      "offsets": [4, 12], "itemsize": 20})
    buf = io.BytesIO()
    np.save(buf, np.zeros(5, dtype=dtype))
    assert _verdict(scan_bytes(tmp_path, buf.getvalue(), "a.npy")) == "clean"
    assert _verdict(scan_bytes(tmp_path, buf.getvalue()[:-1], "a.npy")) == "inconclusive"


def test_a_truncated_object_npy_is_inconclusive(tmp_path: Path):
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    np.save(buf, np.array([1, "x", None], dtype=object), allow_pickle=True)
    data = buf.getvalue()
    pickle_start = data.index(b"\x80", 10)
    for cut in range(pickle_start + 1, len(data)):
        report = scan_bytes(tmp_path, data[:cut], "a.npy")
        assert _verdict(report) == "inconclusive", cut
        assert "MW105" in rules(report)


def test_a_legacy_torch_checkpoint_short_of_its_pickles_is_inconclusive(tmp_path: Path):
    from mlward._internal.scanners.torch import LEGACY_MAGIC

    magic = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC + b"."
    data = magic + pickle.dumps(1001, protocol=2)  # 2 of the 5 pickles, then nothing
    report = scan_bytes(tmp_path, data, "model.pt")
    assert _verdict(report) == "inconclusive"


def test_text_that_opens_like_zlib_is_text(tmp_path: Path):
    """``x^`` is a valid zlib header; a note of formulas is not a damaged stream."""
    report = scan_bytes(tmp_path, b"x^2+y^2=1\n", "notes.txt")
    assert _verdict(report) != "inconclusive" and not report.findings
