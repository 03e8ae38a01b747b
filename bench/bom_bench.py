"""ML bill of materials: `mlward bom` beside cdxgen (npm `@cyclonedx/cdxgen`, with its AI
inventory: `-t python -t ai`) on the same generated project.

    python bench/bom_bench.py [--repeat 3] [--write-readme]

Run it with a Python that has mlward's extras and torch, h5py, onnx and gguf (bench/.venv from
bench/setup.sh, which also installs cdxgen into bench/.node); mlward runs from this checkout.

Workload (generated once into bench/out/bom/project): 10 models (three Hugging Face style
folders with safetensors weights, config.json and a model card; two PyTorch checkpoints; a
GGUF; an ONNX; a Keras HDF5; a joblib pickle; a single safetensors file), 3 datasets with
manifests (two of them recorded as training inputs by lineage statements), 200 pinned
dependencies drawn from the shared OSV data, an MLflow launch script and a compose file, and
Python modules and docs up to 1,000 files; some modules load hub models or call OpenAI.

Measured per tool: wall time (best of --repeat runs after one unmeasured run), peak RSS and
CPU (GNU time), components per kind, how many of the 10 models and 3 datasets are listed
(matched by path), the ML fields filled per listed model, and whether the CycloneDX output
passes cyclonedx-python-lib's strict 1.6 schema validation.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _bench import compile_mlward, write_section

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OSV = next((p for p in (REPO.parent / "shared" / "osv", REPO.parents[1] / "shared" / "osv")
            if p.is_dir()), REPO.parent / "shared" / "osv")
"""The shared OSV data beside the checkout (or beside a worktree's folder)."""
OUT = BENCH / "out" / "bom"
PROJECT = OUT / "project"
CDXGEN = BENCH / ".node" / "node_modules" / ".bin" / "cdxgen"
TIME = "/usr/bin/time"
FILES = 1000
MODELS = ["models/hf-0", "models/hf-1", "models/hf-2", "models/ckpt-0.pt", "models/ckpt-1.pt",
          "models/llm.gguf", "models/net.onnx", "models/keras.h5", "models/clf.joblib",
          "models/emb.safetensors"]
DATASETS = ["data/ds0", "data/ds1", "data/ds2"]
CARD = """---
license: apache-2.0
pipeline_tag: text-classification
datasets: [imdb]
tags: [sentiment]
model-index:
- name: hf-{i}
  results:
  - task: {{type: text-classification}}
    dataset: {{name: imdb, type: imdb}}
    metrics: [{{type: accuracy, value: 0.9{i}}}]
---

Sentiment model {i} for the BOM benchmark.

## Limitations

English only.
"""
ML_FIELDS = ["hashes", "licenses", "purl", "modelCard.modelParameters.task",
             "modelCard.modelParameters.architectureFamily",
             "modelCard.modelParameters.modelArchitecture", "modelCard.modelParameters.datasets",
             "modelCard.modelParameters.inputs", "modelCard.quantitativeAnalysis",
             "modelCard.considerations", "parameter count"]


def _safetensors(path: Path, tensors: dict[str, list[int]]) -> None:
    import struct

    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in tensors.items():
        n = 4
        for d in shape:
            n *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def generate() -> None:
    """Write the project (once; delete bench/out/bom to regenerate)."""
    done = OUT / "project.done"
    if done.exists():
        return
    import h5py
    import numpy as np
    import onnx
    import torch
    from gguf import GGUFWriter
    from onnx import TensorProto, helper

    from mlward._internal.provenance import lineage, manifest

    shutil.rmtree(PROJECT, ignore_errors=True)
    (PROJECT / ".git").mkdir(parents=True)
    models = PROJECT / "models"
    for i in range(3):
        folder = models / f"hf-{i}"
        folder.mkdir(parents=True)
        _safetensors(folder / "model.safetensors", {"emb": [64, 32], "head": [32, 2]})
        (folder / "config.json").write_text(json.dumps(
            {"architectures": ["BertForSequenceClassification"], "model_type": "bert"}))
        (folder / "README.md").write_text(CARD.format(i=i))
        (folder / "tokenizer.json").write_text('{"model": {"type": "WordPiece"}}')
    for i in range(2):
        torch.save({"w": torch.zeros(16, 8), "b": torch.zeros(16)}, models / f"ckpt-{i}.pt")
    writer = GGUFWriter(str(models / "llm.gguf"), "llama")
    writer.add_tensor("tok", np.zeros((32, 16), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    weight = helper.make_tensor("W", TensorProto.FLOAT, [4, 3], [0.0] * 12)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [weight])
    onnx.save(helper.make_model(graph, producer_name="bench"), models / "net.onnx")
    with h5py.File(models / "keras.h5", "w") as h:
        h.attrs["model_config"] = json.dumps({"class_name": "Sequential",
                                              "config": {"layers": []}})
        h.create_dataset("dense/kernel", data=np.zeros((8, 4), dtype=np.float32))
    (models / "clf.joblib").write_bytes(pickle.dumps({"coef": [0.1] * 8}, protocol=4))
    _safetensors(models / "emb.safetensors", {"emb": [128, 16]})
    count = 19
    for i in range(3):
        folder = PROJECT / "data" / f"ds{i}"
        folder.mkdir(parents=True)
        for j in range(20):
            (folder / f"part-{j}.csv").write_text(
                "text,label\n" + "".join(f"row {k},{k % 2}\n" for k in range(50)))
        target = PROJECT / "data" / f"ds{i}.manifest.json"
        manifest.create([folder], manifest_file=target).write(target)
        count += 21
    for model, data in (("models/ckpt-0.pt", "ds0"), ("models/hf-0", "ds1")):
        lineage.record(PROJECT / model, [PROJECT / "data" / f"{data}.manifest.json"],
                       params={"lr": 0.001}, run_id=f"run-{data}")
        count += 1
    import deps_bench

    deps_bench.OSV = OSV
    shutil.copy(deps_bench.workload(200), PROJECT / "requirements.txt")
    (PROJECT / "scripts").mkdir()
    (PROJECT / "scripts" / "serve.sh").write_text("mlflow server --host 0.0.0.0\n")
    (PROJECT / "docker-compose.yml").write_text(
        "services:\n  lab:\n    image: jupyter/base-notebook\n    ports: ['8888:8888']\n")
    count += 3
    code = PROJECT / "src" / "app"
    code.mkdir(parents=True)
    k = 0
    while count < FILES:
        if k % 2:
            (PROJECT / "docs").mkdir(exist_ok=True)
            (PROJECT / "docs" / f"page_{k}.md").write_text(f"# Page {k}\n\nText.\n")
        else:
            body = "import os\n\n\ndef f(x):\n    return x + 1\n"
            if k % 50 == 0:
                body = ("from transformers import AutoModel\nimport openai\n\n"
                        f"m = AutoModel.from_pretrained('org/model-{k}')\n")
            (code / f"mod_{k}.py").write_text(body)
        k += 1
        count += 1
    done.write_text("")


def run(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    stats = OUT / "time.txt"
    start = time.perf_counter()
    proc = subprocess.run([TIME, "-f", "%M %U %S", "-o", str(stats), *cmd], cwd=PROJECT,
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=3600)
    wall = time.perf_counter() - start
    rss, user, system = stats.read_text().split()[-3:]
    return {"wall": wall, "rss": int(rss) / 1024, "cpu": float(user) + float(system),
            "code": proc.returncode, "stderr": proc.stderr}


def tools() -> dict[str, tuple[list[str], dict[str, str], Path]]:
    env = {"PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = OUT / "results"
    return {
        "mlward": ([sys.executable, "-m", "mlward", "bom", "--vuln-db", str(OSV), "-q",
                    "--allow-incomplete", "-o", str(out / "mlward.cdx.json"), str(PROJECT)],
                   env, out / "mlward.cdx.json"),
        "mlward (SPDX)": ([sys.executable, "-m", "mlward", "bom", "--vuln-db", str(OSV), "-q",
                           "--allow-incomplete", "-f", "spdx", "-o", str(out / "mlward.spdx.json"),
                           str(PROJECT)], env, out / "mlward.spdx.json"),
        "mlward scan (its content scan alone)": (
            [sys.executable, "-m", "mlward", "scan", "-q", "-f", "json", "-o",
             str(out / "scan.json"), str(PROJECT)], env, out / "scan.json"),
        "cdxgen": ([str(CDXGEN), "-t", "python", "-t", "ai", "--no-install-deps",
                    "--spec-version", "1.6", "-o", str(out / "cdxgen.cdx.json"), str(PROJECT)],
                   {"CDXGEN_DEBUG_MODE": ""}, out / "cdxgen.cdx.json"),
    }


def _has(item: dict[str, Any], path: str) -> bool:
    if path == "parameter count":
        return any("param" in str(p.get("name", "")).lower() for p in item.get("properties", []))
    value: Any = item
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return bool(value)


def analyse_cdx(path: Path) -> dict[str, Any]:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = path.read_text()
    doc = json.loads(text)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    components = doc.get("components", [])
    kinds: dict[str, int] = {}
    for c in components:
        kinds[c["type"]] = kinds.get(c["type"], 0) + 1
    ml = [c for c in components if c["type"] == "machine-learning-model"]

    def blob(c: dict[str, Any]) -> str:
        return json.dumps(c)

    listed_models = [m for m in MODELS if any(f'"{m}' in blob(c) or f"/{m}" in blob(c)
                                              for c in ml)]
    data = [c for c in components if c["type"] == "data"]
    listed_data = [d for d in DATASETS if any(d in blob(c) for c in data)]
    local = [c for c in ml if any(m in blob(c) for m in MODELS)]
    filled = [sum(_has(c, f) for f in ML_FIELDS) for c in local]
    carded = [sum(_has(c, f) for f in ML_FIELDS) for c in local
              if any(f'models/hf-{i}"' in blob(c) or f"models/hf-{i}/" in blob(c)
                     for i in range(3))]
    return {"valid": error is None, "error": str(error)[:120] if error else "",
            "models": len(listed_models), "datasets": len(listed_data),
            "ml_components": len(ml), "libraries": kinds.get("library", 0),
            "services": len(doc.get("services", [])),
            "vulnerabilities": len(doc.get("vulnerabilities", [])),
            "fields": (sum(filled) / len(filled)) if filled else 0.0,
            "card_fields": (sum(carded) / len(carded)) if carded else 0.0,
            "formulation": len(doc.get("formulation", [{}])[0].get("workflows", []))
            if doc.get("formulation") else 0}


def analyse_spdx(path: Path) -> dict[str, Any]:
    import jsonschema

    schema = json.loads((REPO / "tests" / "fixtures" / "schemas" /
                         "spdx-3.0.1.schema.json").read_text())
    doc = json.loads(path.read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    types: dict[str, int] = {}
    for o in doc["@graph"]:
        types[o["type"]] = types.get(o["type"], 0) + 1
    return {"valid": not errors, "ai": types.get("ai_AIPackage", 0),
            "datasets": types.get("dataset_DatasetPackage", 0),
            "packages": types.get("software_Package", 0),
            "vulnerabilities": types.get("security_Vulnerability", 0)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    compile_mlward()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results").mkdir(exist_ok=True)
    generate()
    files = sum(1 for p in PROJECT.rglob("*") if p.is_file() and ".git" not in p.parts)
    load = os.getloadavg()[0]
    rows = []
    for name, (cmd, env, output) in tools().items():
        if name == "cdxgen" and not CDXGEN.exists():
            print("cdxgen not installed (bash bench/setup.sh): skipped")
            continue
        run(cmd, env)  # unmeasured: caches, page cache
        runs = [run(cmd, env) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["wall"])
        result = analyse_spdx(output) if "SPDX" in name else {} if "scan" in name \
            else analyse_cdx(output)
        rows.append((name, best, result))
        print(name, f"{best['wall']:.2f}s", best["code"], result, flush=True)
    lines = [
        "Command: `python bench/bom_bench.py --repeat "
        f"{args.repeat}{' --write-readme' if args.write_readme else ''}` on "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores (load average "
        f"{load:.1f} at the start: the machine is shared); project: "
        f"{files} files, 10 models, 3 datasets, 200 pinned dependencies. cdxgen 12.8.4 runs "
        "as `cdxgen -t python -t ai --no-install-deps --spec-version 1.6`; mlward as "
        "`mlward bom --vuln-db ../shared/osv --allow-incomplete -o FILE PROJECT`.", "",
        "| tool | wall (s) | CPU (s) | peak RSS (MB) | exit | models found (of 10) | "
        "datasets found (of 3) | ML-model components | libraries | services | "
        "vulnerabilities | ML fields per listed model (of 11) | ML fields, the 3 carded models "
        "| training runs | schema-valid |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | --- |"]
    for name, best, r in rows:
        if not r:
            lines.append(f"| {name} | {best['wall']:.2f} | {best['cpu']:.2f} | "
                         f"{best['rss']:.0f} | {best['code']} |" + " - |" * 10)
            continue
        if "SPDX" in name:
            lines.append(f"| {name} | {best['wall']:.2f} | {best['cpu']:.2f} | "
                         f"{best['rss']:.0f} | {best['code']} | {r['ai']} AI packages | "
                         f"{r['datasets']} | - | {r['packages']} packages | - | "
                         f"{r['vulnerabilities']} | - | - | - | "
                         f"{'yes (SPDX 3.0.1 JSON schema)' if r['valid'] else 'no'} |")
            continue
        lines.append(f"| {name} | {best['wall']:.2f} | {best['cpu']:.2f} | {best['rss']:.0f} | "
                     f"{best['code']} | {r['models']} | {r['datasets']} | "
                     f"{r['ml_components']} | {r['libraries']} | {r['services']} | "
                     f"{r['vulnerabilities']} | {r['fields']:.1f} | {r['card_fields']:.1f} | "
                     f"{r['formulation']} | "
                     f"{'yes' if r['valid'] else 'no: ' + r['error']} |")
    lines += ["", "ML fields counted per listed local model: " + ", ".join(ML_FIELDS) + "."]
    table = "\n".join(lines)
    print(table)
    if args.write_readme:
        write_section("bom", table)


if __name__ == "__main__":
    main()
