"""Pickles and code hidden as base64 or hex in JSON and YAML configs, safetensors metadata and
ONNX metadata (issue 14.6): found, decoded and judged; ordinary encoded values are not."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import marshal
import struct
from pathlib import Path

import numpy as np
import pytest

import mlward
from mlward.findings import Report


def evil_pickle(marker: Path, protocol: int = 2) -> bytes:
    """``os.system("touch MARKER")`` on load, assembled from opcodes."""
    cmd = f"touch {marker}".encode()
    if protocol == 0:
        return b"cos\nsystem\n(S'" + cmd + b"'\ntR."
    body = b"cos\nsystem\n(X" + struct.pack("<I", len(cmd)) + cmd + b"tR."
    return b"\x80" + bytes([protocol]) + body


def _payloads(report: Report) -> list[tuple[str, ...]]:
    """Member paths of the findings naming os.system (the payload judged)."""
    return [f.location.members for f in report.findings
            if f.rule_id == "MW101" and f.evidence and "system" in f.evidence]


def _hidden(report: Report) -> list[str]:
    return [f.message for f in report.findings if f.rule_id == "MW246"]


def _scan(path: Path) -> Report:
    return mlward.scan([path])


def _proto4(marker: Path) -> bytes:
    """The payload framed as protocol 4 writes it (PROTO, FRAME, then the opcodes)."""
    body = evil_pickle(marker, protocol=2)[2:]
    return b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body


ENCODINGS = {
    "base64": lambda d: base64.b64encode(d).decode(),
    "urlsafe": lambda d: base64.urlsafe_b64encode(d).decode(),
    "hex": lambda d: d.hex(),
    "HEX": lambda d: d.hex().upper(),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_pickle_in_json_config(tmp_path, marker, encoding, protocol):
    payload = _proto4(marker) if protocol == 4 else evil_pickle(marker, protocol)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "x", "preprocessor": {
        "state": ENCODINGS[encoding](payload)}}))
    report = _scan(path)
    assert _hidden(report), [f.message for f in report.findings]
    assert _payloads(report)
    assert not marker.exists()


def test_line_wrapped_base64_in_yaml(tmp_path, marker):
    wrapped = base64.encodebytes(evil_pickle(marker) + b"\x00" * 100).decode()
    body = "\n".join("    " + line for line in wrapped.splitlines())
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"name: demo\nsteps:\n  - kind: scaler\n    state: |\n{body}\n"
                    "  - kind: model\n")
    report = _scan(path)
    assert _payloads(report), [f.message for f in report.findings]


def test_base64_with_json_escapes(tmp_path, marker):
    encoded = base64.encodebytes(evil_pickle(marker) * 3).decode()
    text = json.dumps({"blob": encoded}).replace("/", "\\/")
    assert "\\n" in text
    path = tmp_path / "settings.json"
    path.write_text(text)
    assert _payloads(_scan(path))


def test_gzipped_pickle_in_base64(tmp_path, marker):
    path = tmp_path / "config.yml"
    path.write_text("state: " + base64.b64encode(gzip.compress(evil_pickle(marker))).decode()
                    + "\n")
    report = _scan(path)
    assert _hidden(report) and _payloads(report)


def test_marshalled_code_in_base64(tmp_path, marker):
    code = compile(f"__import__('os').system('touch {marker}')", "<x>", "exec")
    path = tmp_path / "hooks.json"
    path.write_text(json.dumps({"on_load": base64.b64encode(marshal.dumps(code)).decode()}))
    report = _scan(path)
    found = [f for f in report.findings if f.rule_id == "MW246"]
    assert found and found[0].severity.label == "critical"
    assert "system" in found[0].details["names"]


def test_pickle_in_safetensors_metadata(tmp_path, marker):
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "model.safetensors"
    st.save_file({"w": np.zeros(2, dtype=np.float32)}, str(path), metadata={
        "format": "pt", "training_state": base64.b64encode(evil_pickle(marker)).decode()})
    report = _scan(path)
    assert _hidden(report)
    assert _payloads(report) == [("[training_state: base64]",)]


def test_pickle_in_onnx_metadata_and_doc_string(tmp_path, marker):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph)
    helper.set_model_props(model, {"sklearn_state": evil_pickle(marker).hex()})
    model.doc_string = "state: " + base64.b64encode(_proto4(marker)).decode()
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    report = _scan(path)
    assert len(_hidden(report)) == 2
    assert sorted(_payloads(report)) == [("[model.doc_string: base64]",),
                                         ("[sklearn_state: hex]",)]
    assert "onnx" in {e.format for e in report.examined}
    del onnx


def test_ordinary_encoded_values_are_not_findings(tmp_path):
    import io
    import zlib

    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + bytes(13)
           + struct.pack(">I", zlib.crc32(b"IHDR" + bytes(13))))
    values = {
        "sha256": hashlib.sha256(b"x").hexdigest(),
        "sha512": base64.b64encode(hashlib.sha512(b"y").digest()).decode(),
        "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
        "png": "data:image/png;base64," + base64.b64encode(png).decode(),
        "uuid": "123e4567-e89b-12d3-a456-426614174000",
        "text": base64.b64encode(b"Just some words, nothing to see here at all.").decode(),
        "path": "/usr/local/lib/python3.11/site-packages/transformers/models/llama",
        "random": base64.b64encode(bytes(range(7, 250, 3))).decode(),
    }
    buf = io.StringIO()
    json.dump(values, buf)
    path = tmp_path / "config.json"
    path.write_text(buf.getvalue())
    report = _scan(path)
    ours = [f.message for f in report.findings if not f.rule_id.startswith("MW4")]  # secrets
    assert not ours
    assert not report.inconclusive


def test_random_digests_and_key_ids_are_not_pickles(tmp_path):
    """Random bytes run a few pickle opcodes to their end (or to a ``STOP`` with more bytes
    after it) about once in 700 32-byte key ids: decoded from text, such a value was taken
    for a truncated pickle and made the whole run inconclusive."""
    import random

    rng = random.Random(20261204)
    values = [rng.randbytes(32).hex() for _ in range(2500)]
    values += [base64.b64encode(rng.randbytes(rng.choice((32, 48, 64)))).decode()
               for _ in range(2500)]
    path = tmp_path / "signatures.json"
    path.write_text(json.dumps([{"keyid": value} for value in values], indent=1))
    report = _scan(path)
    assert not [f for f in report.findings if not f.rule_id.startswith("MW4")]
    assert not report.inconclusive


def test_encoded_payload_cut_short_or_padded_is_still_judged(tmp_path, marker):
    """A value that is a payload followed by junk, or a payload cut before its STOP, still
    runs its import when loaded: both are reported, with the call found."""
    payload = evil_pickle(marker, protocol=2)
    values = {"padded": base64.b64encode(payload + b"junk-after-stop").decode(),
              "cut": payload[:-2].hex()}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    report = _scan(path)
    assert len(_hidden(report)) == 2
    assert sorted(members[0] for members in _payloads(report)) == ["[base64]", "[hex]"]
    assert not marker.exists()
