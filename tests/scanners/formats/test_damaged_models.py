"""Damaged model files of every format end as findings or inconclusive skips, never a crash."""

from __future__ import annotations

import random
import time

import pytest
from test_gguf_format import write_gguf
from test_jinja_templates import LLAMA3
from test_keras_formats import dense, sequential, v3_dense, v3_model, write_h5, write_keras
from test_onnx_format import model, save
from test_tensorflow_format import BENIGN_GRAPH, saved_model

st = pytest.importorskip("safetensors.numpy")


def _safetensors(path):
    import numpy as np

    st.save_file({"a": np.zeros((4, 4), dtype=np.float32), "b": np.ones(3, dtype=np.int64)},
                 str(path))
    return path


def _saved_model(path):
    path.write_bytes(saved_model(BENIGN_GRAPH))
    return path


MAKERS = {
    "m.h5": lambda p: write_h5(p, sequential(dense("d"))),
    "m.keras": lambda p: write_keras(p, v3_model(v3_dense("d"))),
    "m.onnx": lambda p: save(p, model()),
    "m.gguf": lambda p: write_gguf(p, LLAMA3),
    "m.safetensors": _safetensors,
    "saved_model.pb": _saved_model,
}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_mutated_files_never_crash_a_scanner(tmp_path, scan_path, name):
    original = MAKERS[name](tmp_path / name).read_bytes()
    rng = random.Random(name)
    folder = tmp_path / "mutants"
    folder.mkdir()
    for i in range(25):
        data = bytearray(original)
        if i % 5 == 0:
            data = data[: rng.randrange(16, len(data))]  # truncated
        else:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(8, len(data))] = rng.randrange(256)
        sub = folder / str(i)
        sub.mkdir()
        (sub / name).write_bytes(bytes(data))
    start = time.monotonic()
    r = scan_path(folder)
    assert time.monotonic() - start < 30
    crashes = [f for f in r.report.findings if f.rule_id == "MW001"]
    assert not crashes, [f.message for f in crashes[:3]]
