"""GGUF: real files written with the gguf package; hostile headers built by hand."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest
from test_jinja_templates import LLAMA3, cve_2024_34359_payload

gguf = pytest.importorskip("gguf")


def write_gguf(path: Path, template: str | None = None) -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    if template is not None:
        w.add_chat_template(template)
    w.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "a", "b"])
    w.add_array("tokenizer.ggml.scores", [0.0, 0.0, 1.0, 2.0])
    w.add_tensor("tok_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.add_tensor("out.weight", np.ones((8,), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def gguf_string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def test_benign_gguf_is_clean(tmp_path, scan_path):
    r = scan_path(write_gguf(tmp_path / "m.gguf", LLAMA3))
    assert r.report.findings == ()
    assert {"gguf", "jinja-template"} <= r.formats()


def test_cve_2024_34359_gguf_chat_template(tmp_path, scan_path, marker):
    # CVE-2024-34359: a GGUF's tokenizer.chat_template rendered without a sandbox.
    r = scan_path(write_gguf(tmp_path / "m.gguf", cve_2024_34359_payload(marker)))
    escapes = r.by_rule("MW241")
    assert escapes and escapes[0].location.members == ("tokenizer.chat_template",)
    assert not marker.exists()


def test_truncated_tensor_data_is_reported(tmp_path, scan_path):
    path = write_gguf(tmp_path / "m.gguf")
    path.write_bytes(path.read_bytes()[:-40])
    r = scan_path(path)
    assert any("past the end" in f.message for f in r.by_rule("MW240"))


def _header(kv: bytes, n_kv: int = 1, n_tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + kv


@pytest.mark.parametrize("name,data", [
    ("absurd-string-length", _header(gguf_string(b"general.name")
                                     + struct.pack("<IQ", 8, 1 << 60))),
    ("absurd-kv-count", _header(b"", n_kv=1 << 62)),
    ("absurd-tensor-count", _header(b"", n_kv=0, n_tensors=1 << 62)),
    ("absurd-array-length", _header(gguf_string(b"tokenizer.ggml.tokens")
                                    + struct.pack("<IIQ", 9, 8, 1 << 58))),
    ("unknown-type", _header(gguf_string(b"k") + struct.pack("<I", 77))),
    ("truncated", _header(gguf_string(b"general.name"))[:-3]),
    ("nested-arrays", _header(gguf_string(b"k") + struct.pack("<I", 9)
                              + struct.pack("<IQ", 9, 1) * 10)),
    ("bad-alignment", _header(gguf_string(b"general.alignment") + struct.pack("<II", 4, 3))),
])
def test_hostile_headers_end_as_findings_quickly(tmp_path, scan_path, name, data):
    path = tmp_path / f"{name}.gguf"
    path.write_bytes(data)
    start = time.monotonic()
    r = scan_path(path)
    assert time.monotonic() - start < 2
    assert r.by_rule("MW240"), r.report.findings
    assert "MW001" not in r.rules()


def test_template_before_a_damaged_entry_is_still_judged(tmp_path, scan_path, marker):
    kv = (gguf_string(b"tokenizer.chat_template") + struct.pack("<I", 8)
          + gguf_string(b"{{ lipsum.__globals__.os.popen('touch x') }}")
          + gguf_string(b"k") + struct.pack("<I", 99))
    path = tmp_path / "m.gguf"
    path.write_bytes(_header(kv, n_kv=2))
    r = scan_path(path)
    assert {"MW240", "MW241"} <= r.rules()


def test_ggml_type_table_matches_the_gguf_package():
    from mlward._internal.scanners.gguf import GGML_TYPES

    for t, (block, size) in gguf.constants.GGML_QUANT_SIZES.items():
        assert GGML_TYPES.get(int(t)) == (block, size), t
