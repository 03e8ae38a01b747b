"""A small ML project built in code: the input of the BOM tests."""

from __future__ import annotations

import json
import struct
from pathlib import Path

CARD = """---
license: apache-2.0
pipeline_tag: text-classification
datasets:
- imdb
tags:
- sentiment
co2_eq_emissions:
  emissions: 12.5
  source: estimate
model-index:
- name: tiny-bert
  results:
  - task: {type: text-classification}
    dataset: {name: imdb, type: imdb}
    metrics:
    - {type: accuracy, value: 0.91}
---

A tiny sentiment classifier for the BOM tests.

## Intended uses

Classify short English movie reviews.

## Limitations

English only; short texts.

## Risks

May reflect biases of its training data.
"""


NUMPY_HASH = "ab" * 32
"""A ``--hash`` the requirements file pins for numpy (the BOM carries it)."""


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A safetensors file of zero-filled F32 tensors (written by hand: no numpy needed)."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = 4
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def build(root: Path) -> Path:
    """Write the project under ``root``; returns ``root``."""
    import torch

    from mlward._internal.provenance import lineage, manifest

    models = root / "models"
    (models / "bert").mkdir(parents=True)
    torch.save({"linear.weight": torch.zeros(4, 3), "linear.bias": torch.zeros(4)},
               models / "clf.pt")
    (models / "bert" / "model.safetensors").write_bytes(safetensors_bytes(
        {"embeddings": ("F32", [10, 8]), "classifier": ("F32", [8, 2])}))
    (models / "bert" / "config.json").write_text(json.dumps(
        {"architectures": ["BertForSequenceClassification"], "model_type": "bert"}))
    (models / "bert" / "README.md").write_text(CARD)
    data = root / "data" / "train"
    data.mkdir(parents=True)
    (data / "train.csv").write_text("text,label,contact\n"
                                    "great film,1,alice.smith@gmail.com\n"
                                    "dull,0,none\n")
    (data / "extra.jsonl").write_text('{"text": "ok", "label": 1}\n')
    m = manifest.create([data], manifest_file=root / "data" / "train.manifest.json")
    m.write(root / "data" / "train.manifest.json")
    lineage.record(models / "clf.pt", [root / "data" / "train.manifest.json"],
                   params={"lr": 0.01, "epochs": 3}, run_id="run-1")
    (root / "requirements.txt").write_text(
        f"mlflow==2.0.0\nnumpy==1.26.4 --hash=sha256:{NUMPY_HASH}\n")
    (root / "scripts").mkdir()
    (root / "scripts" / "serve.sh").write_text(
        "#!/bin/sh\nmlflow server --host 0.0.0.0 --port 5000\n")
    (root / "train.py").write_text(
        "import openai\n"
        "from transformers import AutoModel\n"
        "base = AutoModel.from_pretrained('google/bert-tiny')\n"
        "pinned = AutoModel.from_pretrained('org/pinned', "
        "revision='0123456789abcdef0123456789abcdef01234567')\n")
    return root
