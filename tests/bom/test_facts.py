"""The facts the BOM reads: model facts from every model scanner, ML tool configs, and the
hub models and AI services code and notebooks use (with MW751 for an unpinned one)."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlward._internal.pipeline import scan
from mlward._internal.scanners.pickle.tensors import torch_tensors
from mlward.settings import Settings

from .project import safetensors_bytes

INLINE = Settings(executor="inline")


def facts(path: Path, kind: str = "model") -> dict[str, Any]:
    report = scan([path], settings=INLINE)
    merged: dict[str, Any] = {}
    for f in report.facts:
        if f.kind == kind:
            merged.update(f.data)
    return merged


def test_torch_checkpoint_tensors_come_from_its_pickle(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"a": torch.zeros(2, 3, dtype=torch.float16),
                "nested": {"b": torch.zeros(5, dtype=torch.int64)},
                "p": torch.nn.Parameter(torch.zeros(7))}, tmp_path / "m.pt")
    data = facts(tmp_path / "m.pt")
    assert data["format"] == "pytorch-zip" and data["framework"] == "pytorch"
    assert data["tensors"] == 3 and data["parameters"] == 6 + 5 + 7
    assert data["dtypes"] == ["float16", "float32", "int64"]
    assert data["shapes"] == {"a": [2, 3], "b": [5], "p": [7]}
    assert data["storages"] == 3


def test_tensor_reader_gives_up_quietly_and_runs_nothing(marker: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return os.system, (f"touch {marker}",)

    assert torch_tensors(io.BytesIO(pickle.dumps({"x": Payload()}))) == []
    assert torch_tensors(io.BytesIO(b"\x80\x02}q\x00(")) is None  # truncated
    assert torch_tensors(io.BytesIO(b"not a pickle")) is None
    assert torch_tensors(io.BytesIO(pickle.dumps(list(range(100)))), max_ops=10) is None
    assert not marker.exists()


def test_safetensors_gguf_onnx_keras_numpy_facts(tmp_path: Path) -> None:
    (tmp_path / "m.safetensors").write_bytes(safetensors_bytes({"w": ("F32", [3, 4])}))
    st = facts(tmp_path / "m.safetensors")
    assert st == {"format": "safetensors", "framework": "pytorch", "tensors": 1,
                  "parameters": 12, "dtypes": ["F32"], "shapes": {"w": [3, 4]},
                  "metadata": {"format": "pt"}}

    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    writer.add_name("tiny")
    writer.add_license("mit")
    writer.add_tensor("tok", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    g = facts(tmp_path / "m.gguf")
    assert g["format"] == "gguf" and g["architecture"] == "llama"
    assert g["name"] == "tiny" and g["license"] == "mit"
    assert g["parameters"] == 32 and g["dtypes"] == ["F32"]

    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    weight = helper.make_tensor("W", TensorProto.FLOAT, [2, 3], [0.0] * 6)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [weight])
    model = helper.make_model(graph, producer_name="unit-test")
    onnx.save(model, tmp_path / "m.onnx")
    o = facts(tmp_path / "m.onnx")
    assert o["format"] == "onnx" and o["framework"] == "unit-test"
    assert o["parameters"] == 6 and o["dtypes"] == ["FLOAT"]
    assert o["inputs"] == ["x"] and o["outputs"] == ["y"]

    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "m.h5", "w") as h:
        h.attrs["model_config"] = json.dumps(
            {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense"}]}})
        h.create_dataset("dense/kernel", data=np.zeros((3, 2), dtype=np.float32))
    k = facts(tmp_path / "m.h5")
    assert k["framework"] == "keras" and k["architecture"] == "Sequential"
    assert k["layers"] == 1 and k["parameters"] == 6

    np.save(tmp_path / "a.npy", np.zeros((7, 3)))
    assert facts(tmp_path / "a.npy", "array") == {"dtype": "<f8", "shape": [7, 3]}


def test_ml_tool_configs_are_facts(tmp_path: Path) -> None:
    (tmp_path / "serve.sh").write_text("ray start --head\ntensorboard --logdir x\n")
    (tmp_path / "jupyter_server_config.py").write_text("c.ServerApp.ip = '127.0.0.1'\n")
    report = scan([tmp_path], settings=INLINE)
    found = {f.location.uri: dict(f.data) for f in report.facts if f.kind == "ml-tool-config"}
    assert found["serve.sh"] == {"config": "script", "tools": ["Ray", "TensorBoard"]}
    assert found["jupyter_server_config.py"]["config"] == "jupyter-config-py"


CODE = '''import anthropic
from openai import AzureOpenAI
import torch, mlflow, boto3
from transformers import AutoModel, pipeline
from huggingface_hub import snapshot_download
m = AutoModel.from_pretrained("org/unpinned")
p = AutoModel.from_pretrained("org/pinned", revision="{commit}")
t = pipeline("fill-mask", model="org/tagged", revision="v1.0")
s = snapshot_download(repo_id="org/snap")
local = AutoModel.from_pretrained("./checkpoints/best")
h = torch.hub.load("owner/repo:{commit}", "net")
h2 = torch.hub.load("owner/repo", "net")
r = mlflow.pyfunc.load_model("runs:/abc123/model")
v = mlflow.pyfunc.load_model("models:/churn/4")
a = mlflow.pyfunc.load_model("models:/churn@champion")
b = boto3.client("bedrock-runtime")
'''


def test_code_model_sources_and_ai_services(tmp_path: Path) -> None:
    commit = "ab" * 20
    (tmp_path / "app.py").write_text(CODE.format(commit=commit))
    report = scan([tmp_path / "app.py"], settings=INLINE)
    sources = {(f.data["provider"], f.data["name"], f.data["revision"], f.data["pinned"])
               for f in report.facts if f.kind == "model-source"}
    assert sources == {
        ("huggingface", "org/unpinned", None, False),
        ("huggingface", "org/pinned", commit, True),
        ("huggingface", "org/tagged", "v1.0", False),
        ("huggingface", "org/snap", None, False),
        ("github", "owner/repo", commit, True),
        ("github", "owner/repo", None, False),
        ("mlflow", "runs:/abc123/model", "abc123", True),
        ("mlflow", "churn", "4", True),
        ("mlflow", "churn", "champion", False),
    }
    services = {f.data["provider"] for f in report.facts if f.kind == "ai-service"}
    assert services == {"Anthropic", "Azure OpenAI", "AWS Bedrock"}
    unpinned = sorted((f.evidence, f.severity.label) for f in report.findings
                      if f.rule_id == "MW751")
    assert unpinned == [("github:owner/repo", "medium"), ("huggingface:org/snap", "medium"),
                        ("huggingface:org/tagged", "low"), ("huggingface:org/unpinned", "medium"),
                        ("mlflow:churn", "low")]


def test_notebook_cells_are_read_too(tmp_path: Path) -> None:
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 1,
                     "source": ["from transformers import AutoModel\n",
                                "m = AutoModel.from_pretrained('org/nb-model')\n"]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "n.ipynb").write_text(json.dumps(nb))
    report = scan([tmp_path / "n.ipynb"], settings=INLINE)
    (finding,) = [f for f in report.findings if f.rule_id == "MW751"]
    assert finding.location.cell == 1 and finding.location.line == 2
