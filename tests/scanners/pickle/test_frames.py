"""Frames whose declared length disagrees with the opcodes inside them (MW107).

CPython's loaders read such frames differently: ``pickle.loads`` (and ``pickle.load`` over a
buffered file, for small frames) lets bytes run on; the C unpickler over a file without
``peek`` (a ``BytesIO``, as ``torch.load`` passes it) reads a frame into its buffer and, when
a read runs past the buffer's end, drops the rest and reads after the frame
(``_Unpickler_ReadImpl``); the pure-Python unpickler (joblib's) stops. The machine follows the
first disagreement both ways and reports it; each sample below is checked against CPython.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from oracle import resolved, resolved_by_pickle_py
from pickle_payloads import by_rule, const, evidence, scan_bytes, verdict

from mlward._internal.engine import Engine
from mlward._internal.scanners.pickle import scan_pickle_stream
from mlward.findings import Location, Severity
from mlward.settings import Settings


def frame(body: bytes, length: int | None = None) -> bytes:
    return b"\x95" + struct.pack("<Q", len(body) if length is None else length) + body


def _straddle() -> bytes:
    """A BINUNICODE whose 4-byte length runs 1 byte past the end of its frame.

    Read on (pickle.loads), the length is 6 and the string swallows the next 6 bytes; read
    as a file without peek reads it, the 3 length bytes inside the frame are dropped, the
    length is 0, and the 3 bytes the other reading swallowed run: POP, BINGET 0 ("os"). The
    STACK_GLOBAL that follows imports os.system in that reading only.
    """
    memo = b"".join(const(name) + b"q" + bytes([i]) + b"0"
                    for i, name in enumerate(["os", "system", "collections"]))
    inside = memo + b"h\x02" + b"X\x06\x00\x00"
    after = b"\x00" + b"\x00\x00\x00" + b"0h\x00" + b"h\x01\x93" + b")R."
    return b"\x80\x04" + frame(inside) + after


def test_an_argument_running_past_its_frame_is_read_both_ways(tmp_path: Path):
    data = _straddle()
    assert ("os", "system") in resolved(data)
    report = scan_bytes(tmp_path, data)
    assert "os.system" in evidence(report, "MW101")
    (f,) = by_rule(report, "MW107")
    assert f.severity == Severity.MEDIUM and "past the end of its FRAME" in f.message
    assert data[f.location.offset] == ord("X")
    assert report.inconclusive == ()
    assert verdict(report) == "dangerous"


def test_a_line_running_past_its_frame_is_read_both_ways(tmp_path: Path):
    # GLOBAL's module line starts inside the frame ("x") and ends after it: read on, the
    # module is "xos"; read as a file without peek reads it, the line starts after the frame.
    data = b"\x80\x04" + frame(b"cx") + b"os\nsystem\n(S'id'\ntR."
    assert {("os", "system"), ("xos", "system")} <= resolved(data)
    report = scan_bytes(tmp_path, data)
    assert "os.system" in evidence(report, "MW101")
    assert "xos.system" in evidence(report, "MW102")
    assert by_rule(report, "MW107")


def test_a_frame_inside_a_frame(tmp_path: Path):
    # The C unpickler reads on (the inner frame fits in the outer's buffer); pickle.py
    # refuses it, having run nothing of the inner frame's payload.
    payload = b"cos\nsystem\n(S'id'\ntR."
    data = b"\x80\x04" + frame(frame(payload) + b"")
    assert ("os", "system") in resolved(data)
    report = scan_bytes(tmp_path, data)
    assert evidence(report, "MW101") == {"os.system"}
    (f,) = by_rule(report, "MW107")
    assert "FRAME inside a frame" in f.message


def test_a_frame_longer_than_the_file(tmp_path: Path):
    # The C unpickler refuses the FRAME; pickle.py (joblib's) reads what there is, and this
    # pickle is complete inside: it runs.
    payload = b"cos\nsystem\n(S'id'\ntR."
    data = b"\x80\x04" + frame(payload, 4096)
    assert resolved(data) == set()
    assert ("os", "system") in resolved_by_pickle_py(data)
    report = scan_bytes(tmp_path, data)
    assert evidence(report, "MW101") == {"os.system"}
    assert "claims 4096 bytes" in by_rule(report, "MW107")[0].message


def test_a_frame_running_on_past_stop(tmp_path: Path):
    # The first pickle's frame ends 2 bytes into the second. pickle.load over a buffered file
    # starts the next pickle after STOP and reads "(V" + "cos" as a string; a new Unpickler
    # over a BytesIO starts after the frame, at a pickle importing os.system.
    first = const(1) + b"."
    data = b"\x80\x04" + frame(first + b"(V") + b"cos\nsystem\n(S'id'\ntR."
    assert ("os", "system") in resolved(data)
    report = scan_bytes(tmp_path, data)
    assert "os.system" in evidence(report, "MW101")
    assert "past STOP" in by_rule(report, "MW107")[0].message


def test_a_second_disagreement_is_inconclusive():
    data = _straddle()[:-3] + b"\x95" + struct.pack("<Q", 3) + b"j\x00\x00" + b"\x00\x00)R."
    ctx = Engine(Settings())
    result = scan_pickle_stream(io.BytesIO(data), Location("s"), ctx)
    assert not result.complete
    assert any("a second time" in s.reason for s in ctx.skipped if s.inconclusive)
    assert "MW107" in {f.rule_id for f in ctx.findings}


def test_a_joblib_array_inside_a_frame_is_inconclusive(tmp_path: Path):
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    joblib.dump({"a": np.arange(4, dtype="u1"), "x": 1}, buf)
    data = bytearray(buf.getvalue())
    assert data[2] == 0x95
    length = struct.unpack_from("<Q", data, 3)[0]
    data[3:11] = struct.pack("<Q", length + 20)  # the frame now covers the array's bytes
    report = scan_bytes(tmp_path, bytes(data), "model.joblib")
    assert "a joblib array inside a FRAME" in by_rule(report, "MW107")[0].message
    assert report.inconclusive


def test_real_frames_agree(tmp_path: Path):
    import pickle

    data = pickle.dumps([{"k": i, "v": "x" * (i % 50)} for i in range(30000)], protocol=5)
    assert data.count(b"\x95") > 5
    report = scan_bytes(tmp_path, data)
    assert report.findings == () and report.inconclusive == ()
