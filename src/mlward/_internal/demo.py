"""A small demo ML project, written with the standard library alone.

The model files follow the real formats byte for byte (a ``torch.save`` zip checkpoint, a
numpy ``.npy``, a zlib-compressed joblib file, a ``.tar.gz`` of arrays) but are assembled
here from pickle opcodes and headers, so neither torch, numpy nor scikit-learn is needed.
One file, ``downloaded/sentiment.pkl``, carries the classic payload: a pickle that calls
``os.system`` when loaded. It is assembled from opcodes too: nothing here (or in the scan)
ever runs it.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

MALICIOUS = "downloaded/sentiment.pkl"
"""The one file of the demo project that carries a payload (relative to its root)."""

PAYLOAD_COMMAND = "echo 'this would have run: mlward demo payload'"


# -- pickle opcodes (protocol 2) ------------------------------------------------------------


def _proto() -> bytes:
    return b"\x80\x02"


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(n: int) -> bytes:
    return b"K" + bytes([n]) if 0 <= n < 256 else b"J" + struct.pack("<i", n)


def _float(x: float) -> bytes:
    return b"G" + struct.pack(">d", x)


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _list(items: list[bytes]) -> bytes:
    return b"](" + b"".join(items) + b"e"


def _dict(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"}(" + b"".join(k + v for k, v in pairs) + b"u"


_EMPTY_ORDERED_DICT = _global("collections", "OrderedDict") + b")R"
_STOP = b"."


def _tensor(key: str, shape: tuple[int, ...]) -> bytes:
    """A float32 tensor the way ``torch.save`` pickles it: a rebuild call on a storage that
    is a persistent reference to member ``data/<key>``."""
    numel = 1
    for n in shape:
        numel *= n
    strides: list[int] = []
    step = 1
    for n in reversed(shape):
        strides.insert(0, step)
        step *= n
    storage = _tuple(_str("storage"), _global("torch", "FloatStorage"), _str(key), _str("cpu"),
                     _int(numel)) + b"Q"
    return (_global("torch._utils", "_rebuild_tensor_v2")
            + _tuple(storage, _int(0), _tuple(*map(_int, shape)), _tuple(*map(_int, strides)),
                     b"\x89", _EMPTY_ORDERED_DICT)
            + b"R")


def _floats(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def torch_checkpoint() -> bytes:
    """A two-layer classifier's state dict in the ``torch.save`` zip format."""
    weights = {"fc.weight": ((2, 3), [0.5, -0.25, 1.0, 0.75, 0.1, -1.5]),
               "fc.bias": ((2,), [0.01, -0.02])}
    pickle = _proto() + _EMPTY_ORDERED_DICT + b"("
    for key, (name, (shape, _)) in enumerate(weights.items()):
        pickle += _str(name) + _tensor(str(key), shape)
    pickle += b"u" + _STOP
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("classifier/data.pkl", pickle)
        zf.writestr("classifier/byteorder", "little")
        for key, (_, values) in enumerate(weights.values()):
            zf.writestr(f"classifier/data/{key}", _floats(values))
        zf.writestr("classifier/version", "3\n")
    return buf.getvalue()


def npy(values: list[float], shape: tuple[int, ...]) -> bytes:
    """A float32 array in the ``.npy`` format (version 1.0), header padded to 64 bytes."""
    dims = "".join(f"{n}," if len(shape) == 1 else f"{n}, " for n in shape).rstrip(" ")
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + _floats(
        values)


def joblib_scaler() -> bytes:
    """A fitted scaler's parameters as ``joblib.dump(..., compress='zlib')`` writes a plain
    dict: a zlib stream of a pickle."""
    pickle = (_proto() + _dict([
        (_str("mean"), _list([_float(0.5), _float(1.25), _float(-0.75)])),
        (_str("scale"), _list([_float(2.0), _float(0.5), _float(1.0)])),
        (_str("with_std"), b"\x88"),
    ]) + _STOP)
    return zlib.compress(pickle)


def malicious_pickle(command: str = PAYLOAD_COMMAND) -> bytes:
    """``os.system(command)`` on load: GLOBAL, one argument, REDUCE."""
    return _proto() + _global("os", "system") + _tuple(_str(command)) + b"R" + _STOP


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_demo_project(root: Path, payload_command: str = PAYLOAD_COMMAND) -> None:
    """Write the demo project under ``root`` (which must exist)."""
    embeddings = npy([0.1 * i for i in range(12)], (4, 3))
    files: dict[str, str | bytes] = {
        "README.md": "# sentiment-demo\n\nA toy project: a classifier, its embeddings and "
                     "scaler, and a model someone downloaded from a forum.\n",
        "train.py": "import torch\n\nstate = torch.load('models/classifier.pt', "
                    "weights_only=True)\n",
        "data/train.csv": "text,label\ngreat movie,1\nterrible plot,0\n",
        "models/classifier.pt": torch_checkpoint(),
        "models/embeddings.npy": embeddings,
        "models/scaler.joblib": joblib_scaler(),
        "models/archive/embeddings-v1.tar.gz": _tar_gz({"embeddings.npy": embeddings}),
        MALICIOUS: malicious_pickle(payload_command),
    }
    write_files(root, files)


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    """Write each file (text as UTF-8) under ``root``, making the folders."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)


NOTEBOOK = "notebooks/explore.ipynb"
"""The demo notebook whose saved output leaks a cloud key (relative to the project root)."""


def leaking_notebook() -> str:
    """A Jupyter notebook whose saved output printed an AWS access key pair: the key is made
    here from a fixed seed (it is no real account's), in the shape the detectors know."""
    import json
    import random

    rng = random.Random(20261204)
    key_id = "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    secret = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                     for _ in range(40))
    cells = [
        {"cell_type": "markdown", "id": "intro", "metadata": {},
         "source": ["# Exploring the reviews\n"]},
        {"cell_type": "code", "id": "connect", "execution_count": 1, "metadata": {},
         "source": ["import os\n", "print(os.environ['AWS_ACCESS_KEY_ID'], "
                    "os.environ['AWS_SECRET_ACCESS_KEY'])\n"],
         "outputs": [{"name": "stdout", "output_type": "stream",
                      "text": [f"aws_access_key_id={key_id} "
                               f"aws_secret_access_key={secret}\n"]}]},
    ]
    return json.dumps({"cells": cells, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}, indent=1)


def build_story_project(root: Path, payload_command: str = PAYLOAD_COMMAND) -> None:
    """The demo project of ``mlward demo``'s walk-through: :func:`build_demo_project`, a
    notebook that leaks a key, and a second data file."""
    build_demo_project(root, payload_command)
    write_files(root, {NOTEBOOK: leaking_notebook(),
                       "data/labels.csv": "label,name\n0,negative\n1,positive\n"})
