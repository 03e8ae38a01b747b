"""Fuzzing every scanner with mutations of built-in seeds of every format (issue 13.7).

Each seed is a small, valid file of one format (most carry an ``os.system`` payload aimed at
a marker folder); each mutation flips bits, overwrites bytes and length fields with edge
values, cuts, inserts, deletes or splices. The seed of the random generator is fixed, so a
failure reproduces. The run fails on any internal error (MW001), on any payload run (a file
in the marker folder) and on any file whose scan takes longer than its budget.

Files are scanned one by one through the library with the inline executor (fast), then all
together once through the process executor (crash isolation, the path users take).
"""

from __future__ import annotations

import base64
import bz2
import faulthandler
import gzip
import io
import json
import lzma
import random
import signal
import struct
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import mlward
from builders import field, tar_bytes, zip_bytes
from mlward.findings import Report
from mlward.settings import Settings

SEED = 1304
MUTANTS_PER_SEED = 40
BUDGET = 20.0
"""Seconds one mutated file may take (the slowest take well under one)."""
INLINE = Settings(executor="inline")


# -- seeds ----------------------------------------------------------------------------------


def _payload(markers: Path, protocol: int = 2) -> bytes:
    cmd = f"touch {markers}/pwned".encode()
    if protocol == 0:
        return b"cos\nsystem\n(S'" + cmd + b"'\ntR."
    return (b"\x80" + bytes([protocol]) + b"cos\nsystem\n(X" + struct.pack("<I", len(cmd))
            + cmd + b"tR.")


def _saved_model() -> bytes:
    node = field(1, b"p") + field(2, b"PyFunc") + field(3, b"x")
    tensor = field(1, 7) + field(8, b"/etc/passwd")  # DT_STRING, string_val
    const = (field(1, b"c") + field(2, b"Const")
             + field(5, field(1, b"value") + field(2, field(8, tensor))))
    read = field(1, b"r") + field(2, b"ReadFile") + field(3, b"c")
    graph = field(1, node) + field(1, const) + field(1, read) + field(4, field(1, 1000))
    return field(1, 1) + field(2, field(2, graph))


def _gguf(template: str) -> bytes:
    def s(v: bytes) -> bytes:
        return struct.pack("<Q", len(v)) + v

    kv = (s(b"general.architecture") + struct.pack("<I", 8) + s(b"llama")
          + s(b"tokenizer.chat_template") + struct.pack("<I", 8) + s(template.encode())
          + s(b"tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + s(b"a") + s(b"b"))
    tensor = s(b"w") + struct.pack("<I", 1) + struct.pack("<Q", 4) + struct.pack("<IQ", 0, 0)
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, 3) + kv + tensor
    return head + bytes(-len(head) % 32) + bytes(16)


def _safetensors(markers: Path) -> bytes:
    header = json.dumps({"__metadata__": {"format": "pt", "state": base64.b64encode(
        _payload(markers)).decode()}, "w": {"dtype": "F32", "shape": [2],
                                            "data_offsets": [0, 8]}}).encode()
    return struct.pack("<Q", len(header)) + header + bytes(8)


def _npy_object(markers: Path) -> bytes:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + _payload(markers)


def _h5(path: Path, markers: Path) -> bytes | None:
    try:
        import h5py
        import numpy as np
    except ImportError:
        return None
    import marshal

    code = compile(f"lambda x: __import__('os').system('touch {markers}/pwned')", "<k>", "eval")
    lam = {"class_name": "Lambda", "config": {"name": "l", "function_type": "lambda",
                                              "function": [base64.b64encode(marshal.dumps(
                                                  code.co_consts[0])).decode(), None, None]}}
    with h5py.File(path, "w") as h:
        h.attrs["model_config"] = json.dumps({"class_name": "Sequential",
                                              "config": {"layers": [lam]}})
        h.attrs.create("sizes", data=np.arange(6, dtype=np.int64))
        h.create_dataset("w", data=np.zeros((4, 4), dtype=np.float32))
    return path.read_bytes()


def _onnx(markers: Path) -> bytes | None:
    try:
        import numpy as np
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    t = numpy_helper.from_array(np.zeros(2, dtype=np.float32), "w")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "8")):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("PyOp", ["x"], ["y"], domain="ai.onnx.contrib")],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
                              initializer=[t])
    model = helper.make_model(graph)
    helper.set_model_props(model, {"state": _payload(markers).hex()})
    return bytes(model.SerializeToString())


def seeds(tmp: Path, markers: Path) -> dict[str, bytes]:
    """One small file per format, by the name that format is sniffed under."""
    p2, p0 = _payload(markers), _payload(markers, 0)
    template = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
    out = {
        "model.pkl": p2, "proto0.pkl": p0,
        "model.pt": zip_bytes({"archive/data.pkl": p2, "archive/data/0": bytes(16),
                          "archive/version": b"3\n", "archive/byteorder": b"little"}),
        "legacy.pt": b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
        + b".\x80\x02M\xe9\x03." + p2,
        "old.tar": tar_bytes({"sys_info": b"\x80\x02}q\x00.", "pickle": p2,
                         "storages": b"\x80\x02K\x00.", "tensors": b"\x80\x02K\x00."}),
        "arr.npy": _npy_object(markers),
        "arrs.npz": zip_bytes({"a.npy": _npy_object(markers)}, zipfile.ZIP_DEFLATED),
        "bundle.zip": zip_bytes({"x/m.pkl": p2, "notes.txt": b"hello"}, zipfile.ZIP_DEFLATED),
        "bundle.tar.gz": tar_bytes({"m.pkl": p2}, "w:gz"),
        "m.pkl.bz2": bz2.compress(p2), "m.pkl.xz": lzma.compress(p2),
        "m.pkl.gz": gzip.compress(p2, mtime=0),
        "nested.zip": zip_bytes({"inner.tar.gz": tar_bytes({"z.zip": zip_bytes({"m.pkl": p2})},
                                                          "w:gz")}),
        "m.keras": zip_bytes({"config.json": json.dumps({"class_name": "Sequential", "module":
                                                    "os", "config": {"name": "system"}}).encode(),
                         "metadata.json": b"{}", "model.weights.h5": b"\x89HDF\r\n\x1a\n"}),
        "saved_model.pb": _saved_model(),
        "model.gguf": _gguf(template),
        "model.safetensors": _safetensors(markers),
        "tokenizer_config.json": json.dumps({"chat_template": template,
                                             "state": base64.b64encode(p2).decode()}).encode(),
        "chat_template.jinja": template.encode(),
        "config.yaml": b"name: x\nstate: |\n  " + base64.encodebytes(p2).replace(b"\n", b"\n  ")
        + b"\n",
        "nb.ipynb": json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
            {"cell_type": "code", "metadata": {}, "execution_count": 1, "outputs": [],
             "source": ["import pickle\n", "pickle.loads(open('m.pkl','rb').read())\n"]}]}
                               ).encode(),
        "train.py": b"import torch\nm = torch.load('m.pt')\n",
    }
    h5 = _h5(tmp / "seed.h5", markers)
    if h5 is not None:
        out["model.h5"] = h5
    onnx_bytes = _onnx(markers)
    if onnx_bytes is not None:
        out["model.onnx"] = onnx_bytes
    try:
        import py7zr

        buf = io.BytesIO()
        with py7zr.SevenZipFile(buf, "w") as z:
            z.writestr(p2, "m.pkl")
        out["bundle.7z"] = buf.getvalue()
    except ImportError:
        pass
    return out


# -- mutations ------------------------------------------------------------------------------

_EDGES = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
          (1 << 63) - 1, 1 << 63, (1 << 64) - 1]


def mutate(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """One to four random edits of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            out += bytes([rng.randrange(256)])
        op = rng.randrange(8)
        at = rng.randrange(len(out))
        if op == 0:
            out[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[at] = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif op == 2:
            width, fmt = rng.choice(((2, "<H"), (4, "<I"), (8, "<Q")))
            value = rng.choice(_EDGES) & ((1 << (8 * width)) - 1)
            out[at:at + width] = struct.pack(fmt, value)
        elif op == 3:
            del out[rng.randrange(1, len(out) + 1):]
        elif op == 4:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 5:
            end = min(len(out), at + rng.randint(1, 64))
            out[at:at] = out[at:end] * rng.randint(1, 8)
        elif op == 6:
            del out[at:at + rng.randint(1, 32)]
        else:
            other = rng.choice(others)
            start = rng.randrange(len(other))
            out[at:at] = other[start:start + rng.randint(1, 64)]
    return bytes(out)


def mutants(tmp: Path, markers: Path) -> Iterator[Path]:
    rng = random.Random(SEED)
    base = seeds(tmp, markers)
    others = list(base.values())
    for name, data in sorted(base.items()):
        for i in range(MUTANTS_PER_SEED):
            folder = tmp / "corpus" / f"{name}-{i:03d}"
            folder.mkdir(parents=True)
            path = folder / name
            path.write_bytes(mutate(data, rng, others))
            yield path


# -- the run ----------------------------------------------------------------------------------


class _OverBudget(Exception):
    pass


@contextmanager
def _budget(seconds: float) -> Iterator[None]:
    """Interrupt a scan that runs past its budget. An inline scan stuck in native code (a
    library that loops forever) cannot be interrupted: past twice the budget the test
    process exits with the stacks printed, which fails the run as surely."""
    def expire(signum: int, frame: object) -> None:
        raise _OverBudget

    previous: Callable[..., object] | int | None = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(2 * seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _crashes(report: Report) -> list[str]:
    return [f"{f.location}: {f.message}" for f in report.findings if f.rule_id == "MW001"]


@pytest.mark.slow
def test_mutated_seeds_of_every_format(tmp_path: Path, capfd: pytest.CaptureFixture[str]
                                       ) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    failures: list[str] = []
    slowest = (0.0, "")
    paths = list(mutants(tmp_path, markers))
    for path in paths:
        started = time.monotonic()
        try:
            with capfd.disabled(), _budget(BUDGET):  # stacks of a native hang reach the log
                report = mlward.scan([path], settings=INLINE)
        except _OverBudget:
            failures.append(f"{path.parent.name}: over its {BUDGET:g} s budget")
            continue
        took = time.monotonic() - started
        slowest = max(slowest, (took, path.parent.name))
        failures.extend(f"{path.parent.name}: {c}" for c in _crashes(report))
    assert not failures, "\n".join(failures[:20])
    assert not any(markers.iterdir()), "a payload ran"
    # Once through worker processes, as users run it: crash isolation, the same verdicts.
    report = mlward.scan([tmp_path / "corpus"], settings=Settings(executor="process",
                                                                 root=str(tmp_path)))
    assert not _crashes(report), "\n".join(_crashes(report)[:20])
    assert report.stats["files"] == len(paths)
    assert not any(markers.iterdir()), "a payload ran"
    print(f"{len(paths)} mutants; slowest {slowest[0]:.2f} s ({slowest[1]})")
