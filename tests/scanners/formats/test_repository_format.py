"""Hugging Face-like repositories, and one report across every model format in a folder."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from test_gguf_format import write_gguf
from test_jinja_templates import CHATML_QWEN, cve_2024_34359_payload
from test_keras_formats import keras2_lambda, sequential, v3_dense, v3_model, write_h5, write_keras
from test_onnx_format import external, model, save
from test_tensorflow_format import BENIGN_GRAPH, saved_model

from mlward.cli.main import main

st = pytest.importorskip("safetensors.numpy")


def hf_repo(root, *, auto_map=None, template=CHATML_QWEN):
    root.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["TinyForCausalLM"], "model_type": "tiny", "hidden_size": 8}
    if auto_map:
        config["auto_map"] = auto_map
    (root / "config.json").write_text(json.dumps(config))
    (root / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "chat_template": template}))
    st.save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(root / "model.safetensors"))
    return root


def test_benign_repository_is_not_flagged_high(tmp_path, scan_path):
    r = scan_path(hf_repo(tmp_path / "repo"))
    assert r.high() == []
    assert any(f.startswith("model-repository") for f in r.formats())
    assert {"safetensors", "jinja-template"} <= r.formats()


def test_auto_map_lists_the_code_trust_remote_code_runs(tmp_path, scan_path, marker):
    repo = hf_repo(tmp_path / "repo", auto_map={
        "AutoConfig": "configuration_tiny.TinyConfig",
        "AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM",
        "AutoTokenizer": ["other/repo--tokenization_x.XTokenizer", None]})
    (repo / "configuration_tiny.py").write_text("class TinyConfig: pass\n")
    (repo / "modeling_tiny.py").write_text(f"import os\nos.system('touch {marker}')\n")
    r = scan_path(repo)
    (f,) = r.by_rule("MW244")
    assert f.severity.label == "high"
    assert f.details["files"] == ["configuration_tiny.py", "modeling_tiny.py"]
    assert f.details["remote"] == ["other/repo: tokenization_x.py"]
    assert not marker.exists()


def test_malicious_tokenizer_chat_template(tmp_path, scan_path, marker):
    # CVE-2024-34359 class: the same template attack through a tokenizer_config.json.
    r = scan_path(hf_repo(tmp_path / "repo", template=cve_2024_34359_payload(marker)))
    (f, *_) = r.by_rule("MW241")
    assert f.location.members == ("chat_template",)
    assert f.location.uri.endswith("tokenizer_config.json")


def test_named_templates_and_jinja_file(tmp_path, scan_path):
    repo = hf_repo(tmp_path / "repo", template=[
        {"name": "default", "template": CHATML_QWEN},
        {"name": "tool_use", "template": "{{ cycler.__init__.__globals__.os }}"}])
    (repo / "chat_template.jinja").write_text("{{ ''|attr('__class__') }}")
    r = scan_path(repo)
    where = {(f.location.uri.rsplit("/", 1)[-1], f.location.members) for f in r.by_rule("MW241")}
    assert where == {("tokenizer_config.json", ("chat_template[tool_use]",)),
                     ("chat_template.jinja", ())}


def test_link_outside_repository(tmp_path, scan_path):
    repo = hf_repo(tmp_path / "repo")
    os.symlink("/etc/passwd", repo / "vocab.txt")
    r = scan_path(repo)
    assert [f.evidence for f in r.by_rule("MW245")] == ["/etc/passwd"]


def test_hugging_face_cache_blob_links_are_fine(tmp_path, scan_path):
    cache = tmp_path / "models--org--tiny"
    blobs = cache / "blobs"
    blobs.mkdir(parents=True)
    snapshot = hf_repo(tmp_path / "staging")
    target = cache / "snapshots" / "abc123"
    target.mkdir(parents=True)
    for f in snapshot.iterdir():
        (blobs / f.name).write_bytes(f.read_bytes())
        os.symlink(f"../../blobs/{f.name}", target / f.name)
    assert scan_path(target).by_rule("MW245") == []


def test_one_report_across_all_formats(tmp_path, capsys, marker):
    folder = tmp_path / "models"
    hf_repo(folder / "hf")
    write_h5(folder / "legacy.h5", sequential(keras2_lambda("l", marker)))
    write_keras(folder / "clean.keras", v3_model(v3_dense("d")))
    save(folder / "bad.onnx", model(initializers=[external("w", "/etc/passwd")]))
    write_gguf(folder / "chat.gguf", cve_2024_34359_payload(marker))
    (folder / "savedmodel").mkdir()
    (folder / "savedmodel" / "saved_model.pb").write_bytes(saved_model(BENIGN_GRAPH))
    assert main(["scan", "--format", "json", str(folder)]) == 1
    data = json.loads(capsys.readouterr().out)
    verdicts = {k.rsplit("/", 1)[-1]: v for k, v in data["summary"]["verdicts"].items()}
    assert verdicts["legacy.h5"] == verdicts["bad.onnx"] == verdicts["chat.gguf"] == "dangerous"
    assert verdicts["clean.keras"] == verdicts["model.safetensors"] == "clean"
    assert verdicts["saved_model.pb"] == "clean"
    formats = {e["format"] for e in data["examined"]}
    assert {"keras-hdf5", "keras", "onnx", "gguf", "safetensors", "tf-savedmodel",
            "tf-savedmodel-folder"} <= formats
    assert not marker.exists()


def test_repository_verdict_rolls_up_its_files(tmp_path, marker):
    import mlward
    from mlward.findings import Verdict

    hf_repo(tmp_path / "good")
    bad = hf_repo(tmp_path / "bad")
    write_gguf(bad / "model.gguf", cve_2024_34359_payload(marker))
    verdicts = mlward.scan([tmp_path]).verdicts()
    assert verdicts["good"] == Verdict.CLEAN
    assert verdicts["bad"] == Verdict.DANGEROUS
    assert verdicts["bad/model.gguf"] == Verdict.DANGEROUS
