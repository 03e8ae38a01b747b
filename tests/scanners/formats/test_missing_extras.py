"""Without an optional dependency a file is inconclusive with the install hint, never a crash."""

from __future__ import annotations

import sys

import pytest
from test_gguf_format import write_gguf
from test_jinja_templates import LLAMA3
from test_keras_formats import dense, sequential, write_h5
from test_onnx_format import model, save
from test_tensorflow_format import BENIGN_GRAPH, saved_model

import mlward
from conftest import Scanned
from mlward.settings import Settings

INLINE = Settings(executor="inline")  # for tests that change this process's modules

def _saved_model(path):
    path.write_bytes(saved_model(BENIGN_GRAPH))
    return path


@pytest.mark.parametrize("module,extra,name,make", [
    ("h5py", "keras", "m.h5", lambda p: write_h5(p, sequential(dense("d")))),
    ("onnx", "onnx", "m.onnx", lambda p: save(p, model())),
    ("jinja2", "templates", "m.gguf", lambda p: write_gguf(p, LLAMA3)),
    ("google.protobuf", "tensorflow", "saved_model.pb", _saved_model),
])
def test_missing_extra_is_inconclusive_with_hint(tmp_path, scan_path, monkeypatch, module,
                                                 extra, name, make):
    path = make(tmp_path / name)
    from mlward._internal.scanners import onnx, tensorflow

    tensorflow._messages.cache_clear()
    onnx.onnx_proto.cache_clear()  # the protobuf classes are loaded once per process
    for mod in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    r = Scanned(mlward.scan([path], settings=INLINE))
    tensorflow._messages.cache_clear()
    onnx.onnx_proto.cache_clear()
    assert "MW001" not in r.rules()
    assert any(f"mlward[{extra}]" in s.reason and s.inconclusive for s in r.report.skipped)
