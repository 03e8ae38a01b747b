"""Other model formats: mlward, ModelScan and modelaudit on Keras, TF, ONNX, GGUF, safetensors.

Every sample is generated here into ``bench/out/formats/`` (and reused on later runs): a benign
file and one or more malicious or malformed ones per format, each built in code and never
loaded. Each tool scans each sample on its own, through its CLI, so the tables give detection
and time per file. Measuring (subprocess under GNU time, page cache warmed) is shared with
``pickle_scan.py``.

What counts as "detected": any issue at the tool's own warning level or above (mlward:
medium or above; ModelScan: any issue, since it reports Keras Lambda layers as MEDIUM;
modelaudit: ``warning`` or ``critical``). On a benign sample the same counts as a false alarm.

ModelScan is run twice where possible: as ``pip install modelscan`` installs it (no
TensorFlow, the bench venv), and with TensorFlow (``out/venv-modelscan-tf``, made with
``--setup-modelscan-tf``), since its .keras and SavedModel scanners need TensorFlow.

    bench/.venv/bin/python bench/formats_bench.py [--write-readme]
"""

from __future__ import annotations

import argparse
import base64
import json
import marshal
import os
import shlex
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _bench import compile_mlward, write_section  # bench/ is the script folder, on sys.path
from pickle_scan import TIME, Case, Run, Tool, machine, measure

BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
TF_VENV = BENCH / "out" / "venv-modelscan-tf"
MiB = 1 << 20
LARGE = 256 * MiB
MARKER = "/tmp/mlward-bench-pwned"  # what the payloads would create if they ever ran


# --- samples ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    name: str
    fmt: str
    malicious: bool
    what: str
    make: Callable[[Path], None]
    file: str


def _lambda_b64() -> str:
    code = compile(f"lambda x: __import__('os').system('touch {MARKER}') or x", "<l>", "eval")
    return base64.b64encode(marshal.dumps(code.co_consts[0])).decode()


def _dense(name: str) -> dict[str, Any]:
    return {"class_name": "Dense", "config": {"name": name, "units": 8, "activation": "relu"}}


def _k2_lambda(name: str) -> dict[str, Any]:
    return {"class_name": "Lambda", "config": {"name": name, "function": [_lambda_b64(), None,
                                                                          None],
                                               "function_type": "lambda", "arguments": {}}}


def _h5(config: dict[str, Any]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        import h5py
        import numpy as np

        with h5py.File(path, "w") as h:
            h.attrs["keras_version"] = "2.15.0"
            h.attrs["backend"] = "tensorflow"
            h.attrs["model_config"] = json.dumps(config)
            g = h.create_group("model_weights")
            g.attrs["layer_names"] = [b"d1"]
            g.create_dataset("d1/kernel:0", data=np.zeros((8, 8), dtype=np.float32))
    return make


def _seq(*layers: dict[str, Any]) -> dict[str, Any]:
    return {"class_name": "Sequential", "config": {"name": "seq", "layers": list(layers)}}


def _v3_layer(class_name: str, config: dict[str, Any],
              module: str = "keras.layers") -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config,
            "registered_name": None}


def _v3_model(*layers: dict[str, Any]) -> dict[str, Any]:
    inp = _v3_layer("InputLayer", {"batch_shape": [None, 8], "name": "in"})
    dense = _v3_layer("Dense", {"name": "d", "units": 8, "activation": "relu"})
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "seq", "layers": [inp, dense, *layers]},
            "build_config": {"input_shape": [None, 8]}}


def _keras(config: dict[str, Any]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        import h5py
        import numpy as np

        weights = path.with_suffix(".weights.tmp")
        with h5py.File(weights, "w") as h:
            h.create_group("layers/dense/vars").create_dataset("0", data=np.zeros((8, 8)))
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("metadata.json", json.dumps({"keras_version": "3.8.0"}))
            zf.writestr("config.json", json.dumps(config))
            zf.write(weights, "model.weights.h5")
        weights.unlink()
    return make


# TensorFlow protobuf, encoded by hand with TensorFlow's field numbers (no TensorFlow here).
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _f(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _node(name: str, op: str, *inputs: str) -> bytes:
    return _f(1, name.encode()) + _f(2, op.encode()) + b"".join(_f(3, i.encode()) for i in inputs)


def _str_const(name: str, value: str) -> bytes:
    tensor = _f(1, 7) + _f(8, value.encode())
    return _node(name, "Const") + _f(5, _f(1, b"value") + _f(2, _f(8, tensor)))


def _saved_model(nodes: list[bytes], fn_nodes: list[bytes]) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        (folder / "variables").mkdir(exist_ok=True)
        graph = b"".join(_f(1, n) for n in nodes)
        fn = _f(1, _f(1, b"__inference_serve_42")) + b"".join(_f(3, n) for n in fn_nodes)
        graph += _f(2, _f(1, fn)) + _f(4, _f(1, 1000))
        (folder / "saved_model.pb").write_bytes(_f(1, 1) + _f(2, _f(2, graph)))
        (folder / "variables" / "variables.index").write_bytes(b"\0" * 64)
        (folder / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0" * 256)
    return make


_TF_BASE = [_node("x", "Placeholder"), _node("w", "VarHandleOp"),
            _node("mm", "MatMul", "x", "w"), _node("saver_filename", "Placeholder"),
            _str_const("names", "w"), _node("save", "SaveV2", "saver_filename", "names")]


def _onnx(external: str | None = None, domain: str = "") -> Callable[[Path], None]:
    def make(path: Path) -> None:
        import numpy as np
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        w = numpy_helper.from_array(np.ones(8, dtype=np.float32), "w")
        if external is not None:
            w.ClearField("raw_data")
            w.data_location = TensorProto.EXTERNAL
            for k, v in (("location", external), ("offset", "0"), ("length", "32")):
                w.external_data.add(key=k, value=v)
        node = helper.make_node("Add" if not domain else "Exfil", ["x", "w"], ["y"],
                                domain=domain)
        graph = helper.make_graph([node], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8])],
                                  initializer=[w])
        opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)]
                                                    if domain else [])
        m = helper.make_model(graph, opset_imports=opsets, producer_name="bench")
        if not (external or domain):
            onnx.checker.check_model(m)
        path.write_bytes(m.SerializeToString())
    return make


CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
SSTI = ("{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}"
        "{{ x()._module.__builtins__['__import__']('os').popen('touch " + MARKER + "') }}"
        "{% endif %}{% endfor %}")
SSTI_OBFUSCATED = ("{{ cycler|attr('__in' ~ 'it__')|attr(['__glo', 'bals__']|join) }}")


def _gguf(template: str, tensor_bytes: int = 4096) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        import gguf
        import numpy as np

        w = gguf.GGUFWriter(str(path), "llama")
        w.add_name("bench")
        w.add_chat_template(template)
        w.add_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(1000)])
        per = max(tensor_bytes // 8, 1024)
        for i in range(8):
            w.add_tensor(f"blk.{i}.weight", np.zeros(per // 4, dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return make


def _gguf_raw(path: Path) -> None:
    key = b"general.name"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
                     + struct.pack("<IQ", 8, 1 << 60) + b"x" * 64)


def _safetensors(tensor_bytes: int = 4096) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        import numpy as np
        from safetensors.numpy import save_file

        per = max(tensor_bytes // 8, 1024) // 4
        save_file({f"layer.{i}.weight": np.zeros(per, dtype=np.float32) for i in range(8)},
                  str(path), metadata={"format": "pt"})
    return make


def _st_raw(header: dict[str, Any], data: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        body = json.dumps(header).encode()
        path.write_bytes(struct.pack("<Q", len(body)) + body + data)
    return make


SAMPLES = [
    Sample("keras-h5-benign", "Keras HDF5", False, "Sequential of Dense layers",
           _h5(_seq(_dense("d1"), _dense("d2"))), "model.h5"),
    Sample("keras-h5-lambda", "Keras HDF5", True, "Lambda calling os.system",
           _h5(_seq(_dense("d1"), _k2_lambda("l"))), "model.h5"),
    Sample("keras-h5-nested-lambda", "Keras HDF5", True,
           "Lambda inside a sub-model inside a wrapper",
           _h5(_seq(_dense("d1"), _seq({"class_name": "TimeDistributed",
                                        "config": {"name": "td", "layer": _k2_lambda("l")}}))),
           "model.h5"),
    Sample("keras-v3-benign", ".keras", False, "Sequential, Keras 3 layout",
           _keras(_v3_model()), "model.keras"),
    Sample("keras-v3-lambda", ".keras", True, "Keras 3 __lambda__ bytecode",
           _keras(_v3_model(_v3_layer("Lambda", {"name": "l", "function": {
               "class_name": "__lambda__", "config": {"code": _lambda_b64()}}}))),
           "model.keras"),
    Sample("keras-v3-cve-2025-1550", ".keras", True, "config names subprocess.Popen",
           _keras(_v3_model(_v3_layer("Popen", {"args": ["touch", MARKER]}, "subprocess"))),
           "model.keras"),
    Sample("keras-v3-cve-2025-9906", ".keras", True,
           "Lambda calls keras.config.enable_unsafe_deserialization",
           _keras(_v3_model(_v3_layer("Lambda", {"name": "l", "function": {
               "module": "keras.config", "class_name": "function",
               "config": "enable_unsafe_deserialization", "registered_name": "function"}}))),
           "model.keras"),
    Sample("keras-v3-cve-2026-1462", ".keras", True, "TFSMLayer loads an external SavedModel",
           _keras(_v3_model(_v3_layer("TFSMLayer", {"name": "t",
                                                     "filepath": "/tmp/evil_savedmodel"}))),
           "model.keras"),
    Sample("tf-savedmodel-benign", "TF SavedModel", False, "MatMul, SaveV2 to the saver path",
           _saved_model(_TF_BASE, [_node("relu", "Relu", "x")]), "savedmodel"),
    Sample("tf-savedmodel-pyfunc", "TF SavedModel", True, "EagerPyFunc in a library function",
           _saved_model(_TF_BASE, [_node("py", "EagerPyFunc", "x")]), "savedmodel"),
    Sample("tf-savedmodel-readfile", "TF SavedModel", True, "ReadFile of /etc/passwd",
           _saved_model([*_TF_BASE, _str_const("p", "/etc/passwd"),
                         _node("read", "ReadFile", "p")], []), "savedmodel"),
    Sample("onnx-benign", "ONNX", False, "one Add with an initializer", _onnx(), "model.onnx"),
    Sample("onnx-cve-2024-27318", "ONNX", True, "external data at /etc/passwd",
           _onnx(external="/etc/passwd"), "model.onnx"),
    Sample("onnx-cve-2024-27319", "ONNX", True, "external data at ../../etc/passwd",
           _onnx(external="../../etc/passwd"), "model.onnx"),
    Sample("onnx-custom-domain", "ONNX", True, "operator from a custom domain",
           _onnx(domain="com.attacker.ops"), "model.onnx"),
    Sample("gguf-benign", "GGUF", False, "ChatML chat template", _gguf(CHATML), "model.gguf"),
    Sample("gguf-benign-256M", "GGUF", False, "ChatML template, 256 MiB of tensors",
           _gguf(CHATML, LARGE), "model.gguf"),
    Sample("gguf-cve-2024-34359", "GGUF", True, "published SSTI chat template",
           _gguf(SSTI), "model.gguf"),
    Sample("gguf-ssti-obfuscated", "GGUF", True, "dunder names joined at run time",
           _gguf(SSTI_OBFUSCATED), "model.gguf"),
    Sample("gguf-malformed", "GGUF", True, "string length of 2^60", _gguf_raw, "model.gguf"),
    Sample("safetensors-benign", "safetensors", False, "8 float32 tensors", _safetensors(),
           "model.safetensors"),
    Sample("safetensors-benign-256M", "safetensors", False, "8 tensors, 256 MiB",
           _safetensors(LARGE), "model.safetensors"),
    Sample("safetensors-overlap", "safetensors", True, "two tensors share bytes",
           _st_raw({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                    "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, b"\0" * 24),
           "model.safetensors"),
    Sample("safetensors-past-end", "safetensors", True, "offsets beyond the file",
           _st_raw({"a": {"dtype": "F32", "shape": [1 << 28],
                          "data_offsets": [0, 1 << 30]}}, b"\0" * 16), "model.safetensors"),
]


def make_samples(out: Path) -> list[tuple[Sample, Case]]:
    cases = []
    for s in SAMPLES:
        folder = out / s.name
        path = folder / s.file
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            print(f"generating {s.name}", file=sys.stderr, flush=True)
            s.make(path)
        cases.append((s, Case(s.name, path, s.make, s.what)))
    return cases


def warm_page_cache(path: Path) -> None:
    """Read every file of a sample once so all tools start from the page cache."""
    for p in [path] if path.is_file() else sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(16 * MiB):
                    pass


# --- tools and outcomes -----------------------------------------------------------------

def _mlward(out: str, report: Path) -> str:
    d = json.loads(report.read_text())
    worst = max((f["severity"] for f in d["findings"]), default=None,
                key=["info", "low", "medium", "high", "critical"].index)
    examined = sorted({e["format"] for e in d["examined"]})
    if worst in ("medium", "high", "critical"):
        return f"detected ({worst}: {d['findings'][0]['rule_id']})"
    if d["summary"]["inconclusive"]:
        return "inconclusive"
    return f"clean ({', '.join(examined) or 'not examined'})"


def _modelscan(out: str, report: Path) -> str:
    if not report.exists():
        return "no report"
    d = json.loads(report.read_text())
    issues = d.get("issues", [])
    if issues:
        worst = max((i.get("severity", "?") for i in issues),
                    key=lambda s: ["LOW", "MEDIUM", "HIGH", "CRITICAL"].index(s)
                    if s in ("LOW", "MEDIUM", "HIGH", "CRITICAL") else -1)
        return f"detected ({worst.lower()}: {issues[0].get('operator', '?')})"
    scanned = d.get("summary", {}).get("scanned", {}).get("total_scanned", 0)
    if d.get("errors"):
        return "error"
    return "clean" if scanned else "not scanned"


def _modelaudit(out: str, report: Path) -> str:
    d = json.loads(report.read_text())
    serious = [i for i in d.get("issues", []) if i.get("severity") in ("critical", "warning")]
    if serious:
        worst = "critical" if any(i["severity"] == "critical" for i in serious) else "warning"
        return f"detected ({worst}: {serious[0]['message'][:50]})"
    return "clean" if d.get("files_scanned") else "not scanned"


def _bin(name: str) -> str:
    return str(VENV_BIN / name)


TOOLS = [
    Tool("mlward",
         lambda c, r: [_bin("mlward"), "scan", "-q", "-f", "json", "-o", str(r), str(c.path)],
         _mlward),
    Tool("modelscan",
         lambda c, r: [_bin("modelscan"), "-p", str(c.path), "-r", "json", "-o", str(r)],
         _modelscan),
    Tool("modelscan+tf",
         lambda c, r: [str(TF_VENV / "bin" / "modelscan"), "-p", str(c.path), "-r", "json",
                       "-o", str(r)],
         _modelscan),
    Tool("modelaudit",
         lambda c, r: [_bin("modelaudit"), "scan", "--no-cache", "-f", "json", "-o", str(r),
                       str(c.path)],
         _modelaudit),
]


def setup_modelscan_tf() -> None:
    """ModelScan with TensorFlow, in its own venv under bench/out/ (git-ignored)."""
    if not (TF_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(TF_VENV)], check=True)
    subprocess.run([str(TF_VENV / "bin" / "pip"), "install", "-q", "modelscan",
                    "tensorflow-cpu", "h5py"], check=True)


# --- report -----------------------------------------------------------------------------

def render(cases: list[tuple[Sample, Case]], runs: list[Run], tools: list[Tool],
           command: str) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = [t.name for t in tools]
    tf = ""
    if "modelscan+tf" in names:
        freeze = subprocess.run([str(TF_VENV / "bin" / "pip"), "freeze"], capture_output=True,
                                text=True).stdout
        tf = next((f" (TensorFlow {line.split('==')[1]})" for line in freeze.splitlines()
                   if line.lower().startswith("tensorflow-cpu==")), "")
    lines = [f"Measured {when} on {machine()}.",
             f"Tools: mlward {version('mlward')}, ModelScan {version('modelscan')}{tf}, "
             f"modelaudit {version('modelaudit')}.", "", "Command:", "", "```sh", command, "```",
             "", "Each cell: outcome, then wall-clock seconds for that one file (the tool's "
             "start-up included). **bold** marks a wrong call: a malicious sample not "
             "detected, or a benign one flagged.", "",
             "| sample | format | malicious | what | " + " | ".join(names) + " |",
             "|---|---|---|---|" + "---|" * len(names)]
    by = {(r.case, r.tool): r for r in runs}
    score = {n: [0, 0, 0, 0] for n in names}  # detected, malicious, false alarms, benign
    for sample, _ in cases:
        cells = []
        for n in names:
            r = by.get((sample.name, n))
            if r is None:
                cells.append("–")
                continue
            hit = r.verdict.startswith("detected")
            s = score[n]
            s[1 if sample.malicious else 3] += 1
            if sample.malicious and hit:
                s[0] += 1
            if not sample.malicious and hit:
                s[2] += 1
            wrong = hit != sample.malicious
            text = f"{r.verdict}, {r.wall_s:.2f} s"
            cells.append(f"**{text}**" if wrong else text)
        lines.append(f"| {sample.name} | {sample.fmt} | {'yes' if sample.malicious else 'no'} "
                     f"| {sample.what} | " + " | ".join(cells) + " |")
    lines += ["", "| tool | malicious detected | benign flagged | median s per file |",
              "|---|---:|---:|---:|"]
    for n in names:
        times = sorted(r.wall_s for r in runs if r.tool == n)
        if not times:
            continue
        d, m, fa, b = score[n]
        lines.append(f"| {n} | {d}/{m} | {fa}/{b} | {times[len(times) // 2]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=BENCH / "out" / "formats",
                   help="where samples, logs and results go (default: bench/out/formats)")
    p.add_argument("--tools", default=",".join(t.name for t in TOOLS),
                   help="comma-separated tools (default: all; modelscan+tf only if set up)")
    p.add_argument("--samples", default="", help="comma-separated sample names (default: all)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per run (default: 600)")
    p.add_argument("--setup-modelscan-tf", action="store_true",
                   help="install ModelScan with TensorFlow into bench/out/venv-modelscan-tf")
    p.add_argument("--write-readme", action="store_true",
                   help="replace this benchmark's results in bench/README.md")
    args = p.parse_args(argv)
    compile_mlward()
    if not Path(TIME).exists():
        p.error(f"{TIME} (GNU time) is needed: apt-get install time")
    if args.setup_modelscan_tf:
        setup_modelscan_tf()
    os.environ.setdefault("PROMPTFOO_DISABLE_TELEMETRY", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.tools.split(","))
    tools = [t for t in TOOLS if t.name in wanted
             and (t.name != "modelscan+tf" or (TF_VENV / "bin" / "modelscan").exists())]
    cases = make_samples(args.out)
    if args.samples:
        cases = [(s, c) for s, c in cases if s.name in args.samples.split(",")]
    runs: list[Run] = []
    for sample, case in cases:
        warm_page_cache(case.path)
        for tool in tools:
            run = measure(tool, case, args.out, args.timeout)
            print(f"{sample.name:26} {tool.name:13} {run.wall_s:7.2f} s  {run.verdict}",
                  file=sys.stderr, flush=True)
            runs.append(run)
    if Path(MARKER).exists():
        print(f"WARNING: {MARKER} exists: a tool ran a payload", file=sys.stderr)
    (args.out / "formats_bench.json").write_text(json.dumps([asdict(r) for r in runs],
                                                            indent=1))
    command = shlex.join(["bench/.venv/bin/python", "bench/formats_bench.py",
                          *(argv if argv is not None else sys.argv[1:])])
    section = render(cases, runs, tools, command)
    if args.write_readme:
        write_section("formats_bench", section)
    else:
        print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
