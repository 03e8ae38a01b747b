"""safetensors: a real file is examined and clean; every header violation is a finding."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

st = pytest.importorskip("safetensors.numpy")


def raw_file(header: object, data: bytes = b"", *, text: str | None = None) -> bytes:
    body = (text if text is not None else json.dumps(header)).encode()
    return struct.pack("<Q", len(body)) + body + data


def test_benign_safetensors_is_clean(tmp_path, scan_path):
    path = tmp_path / "model.safetensors"
    st.save_file({"w": np.zeros((3, 4), dtype=np.float32), "b": np.ones(4, dtype=np.int8)},
                 str(path), metadata={"format": "np"})
    r = scan_path(path)
    assert r.report.findings == ()
    assert "safetensors" in r.formats()


GOOD = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize("name,content,severity", [
    ("length-past-end", struct.pack("<Q", 1 << 40) + b'{"a": 1}', "high"),
    ("offsets-past-end", raw_file({"a": {"dtype": "F32", "shape": [4],
                                         "data_offsets": [0, 16]}}, b"\0" * 8), "high"),
    ("unknown-dtype", raw_file({"a": {"dtype": "Q99", "shape": [2], "data_offsets": [0, 8]}},
                               b"\0" * 8), "medium"),
    ("shape-mismatch", raw_file({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
                                b"\0" * 8), "medium"),
    ("negative-shape", raw_file({"a": {"dtype": "F32", "shape": [-2],
                                       "data_offsets": [0, 8]}}, b"\0" * 8), "medium"),
    ("overlap", raw_file({**GOOD, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
                         b"\0" * 12), "medium"),
    ("gap", raw_file({**GOOD, "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}},
                     b"\0" * 16), "medium"),
    ("trailing-bytes", raw_file(GOOD, b"\0" * 20), "medium"),
    ("bad-json", raw_file(None, b"", text='{"a": {"dtype": '), "medium"),
    ("nan-constant", raw_file(None, b"", text='{"a": NaN}'), "medium"),
    ("deep-json", raw_file(None, b"", text="{" + '"a":[' * 100_000 + "]" * 100_000 + "}"),
     "medium"),
    ("metadata-not-strings", raw_file({"__metadata__": {"x": 1}}), "medium"),
    ("reversed-offsets", raw_file({"a": {"dtype": "F32", "shape": [0],
                                         "data_offsets": [8, 0]}}, b"\0" * 8), "medium"),
])
def test_header_violations_are_findings(tmp_path, scan_path, name, content, severity):
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(content)
    r = scan_path(path)
    found = r.by_rule("MW243")
    assert found, r.report
    assert max(f.severity for f in found).label == severity
    assert "MW001" not in r.rules()


def test_text_with_brace_at_byte_8_is_not_safetensors(tmp_path, scan_path):
    path = tmp_path / "code.js"
    path.write_text('function{"a": 1}\n')
    assert "safetensors" not in scan_path(path).formats()
