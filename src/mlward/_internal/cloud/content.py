"""What an object in a bucket is, from its name and its first bytes only.

Buckets are sampled, never downloaded: the live checks read the first :data:`HEAD_BYTES` of
an object with one ranged GET and recognise model files and datasets by content (magic
bytes, the first member of a zip or of a gzipped tar), the name serving only where a format
has no magic (ONNX, TFRecord). Text datasets (CSV, JSON lines) are also searched for personal
data with the secrets scanner's PII patterns, so that a public dataset of customer rows is
told apart from a public dataset of numbers. Nothing here parses further than a header.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import NamedTuple

from mlward._internal.scanners.secrets.pii import SENSITIVE, find_pii
from mlward._internal.scanners.secrets.text import looks_like_text

HEAD_BYTES = 16 << 10
MODEL_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".onnx", ".pkl", ".pickle",
                  ".joblib", ".h5", ".hdf5", ".keras", ".pb", ".gguf", ".tflite", ".msgpack",
                  ".model", ".mar", ".nemo")
DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet", ".arrow", ".feather", ".avro", ".orc",
                 ".tfrecord", ".tfrecords", ".npy", ".npz", ".json", ".txt", ".gz")


class Content(NamedTuple):
    kind: str
    """``model`` or ``dataset``."""
    format: str
    sensitive: tuple[str, ...] = ()
    """Kinds of personal data seen in the first bytes (payment card, IBAN, US SSN)."""


def _zip_member(head: bytes) -> str | None:
    """The name of a zip's first member (its local header sits at offset 0)."""
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return None
    name_len = struct.unpack_from("<H", head, 26)[0]
    return head[30:30 + name_len].decode("utf-8", "replace")


def _zip(key: str, head: bytes) -> Content | None:
    member = _zip_member(head)
    if member is None:
        return None
    if member.endswith(("data.pkl", "/version", "/byteorder")) or "/data/" in member:
        return Content("model", "pytorch-zip")
    if member in ("metadata.json", "config.json", "model.weights.h5"):
        return Content("model", "keras")
    if member.endswith(".npy"):
        return Content("dataset", "numpy-npz")
    if key.lower().endswith(MODEL_SUFFIXES):
        return Content("model", "zip")
    return None


def _gzip(key: str, head: bytes) -> Content | None:
    """A gzipped tar (SageMaker's model.tar.gz) or a gzipped text dataset: the first bytes
    of the stream are inflated (at most a few times :data:`HEAD_BYTES`)."""
    if head[:2] != b"\x1f\x8b":
        return None
    try:
        inner = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4 * HEAD_BYTES)
    except zlib.error:
        return None
    if len(inner) >= 263 and inner[257:262] == b"ustar":
        name = inner[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        if name.lower().endswith(MODEL_SUFFIXES) or "model" in name.lower():
            return Content("model", "model-archive")
        return None
    found = identify(key.removesuffix(".gz"), inner[:HEAD_BYTES])
    return found._replace(format=f"{found.format}+gzip") if found else None


def _text(key: str, head: bytes) -> Content | None:
    if not looks_like_text(head):
        return None
    text = head.decode("utf-8", "replace")
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if len(lines) < 2:
        return None
    fmt = None
    if all(line.lstrip().startswith("{") for line in lines[:-1]):
        fmt = "jsonl"
    else:
        for sep in (",", "\t", ";", "|"):
            counts = {line.count(sep) for line in lines[:-1]}
            if len(counts) == 1 and counts.pop() >= 1:
                fmt = "csv" if sep != "\t" else "tsv"
                break
    if fmt is None:
        return None
    sensitive = tuple(sorted({hit.kind for hit in find_pii(text) if hit.kind in SENSITIVE}))
    return Content("dataset", fmt, sensitive)


def _magic(magic: bytes, kind: str, fmt: str, offset: int = 0) -> Callable[[str, bytes],
                                                                            Content | None]:
    def match(key: str, head: bytes) -> Content | None:
        return Content(kind, fmt) if head[offset:offset + len(magic)] == magic else None
    return match


def _pickle(key: str, head: bytes) -> Content | None:
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return Content("model", "pickle")
    return None


def _safetensors(key: str, head: bytes) -> Content | None:
    if len(head) >= 10 and head[8:10] == b'{"':
        length = struct.unpack_from("<Q", head, 0)[0]
        if 2 <= length <= 100 << 20:
            return Content("model", "safetensors")
    return None


def _by_name(key: str, head: bytes) -> Content | None:
    """Formats without magic bytes, recognised by name (and a plausible first byte)."""
    lower = key.lower()
    if lower.endswith(".onnx") and head[:1] == b"\x08":
        return Content("model", "onnx")
    if lower.endswith("saved_model.pb"):
        return Content("model", "tensorflow")
    if lower.endswith((".tfrecord", ".tfrecords")):
        return Content("dataset", "tfrecord")
    return None


# Tried in order; the first that recognises the bytes decides.
_RECOGNISERS: list[Callable[[str, bytes], Content | None]] = [
    _zip,
    _gzip,
    _pickle,
    _safetensors,
    _magic(b"GGUF", "model", "gguf"),
    _magic(b"\x89HDF\r\n\x1a\n", "model", "hdf5"),
    _magic(b"TFL3", "model", "tflite", offset=4),
    _magic(b"\x93NUMPY", "dataset", "numpy"),
    _magic(b"PAR1", "dataset", "parquet"),
    _magic(b"ARROW1", "dataset", "arrow"),
    _magic(b"Obj\x01", "dataset", "avro"),
    _magic(b"ORC", "dataset", "orc"),
    _by_name,
    _text,
]


def identify(key: str, head: bytes) -> Content | None:
    """The model or dataset format of an object, from its key and first bytes; None for
    anything else (or too little to tell)."""
    if not head:
        return None
    for recognise in _RECOGNISERS:
        found = recognise(key, head)
        if found is not None:
            return found
    return None


def worth_sampling(key: str) -> int:
    """Sampling order of a key: 0 for model-like names, 1 for data-like names, 2 for the
    rest (they are still sampled when the budget allows: a payload need not be named)."""
    lower = key.lower()
    if lower.endswith(MODEL_SUFFIXES) or lower.endswith("model.tar.gz"):
        return 0
    if lower.endswith(DATA_SUFFIXES):
        return 1
    return 2
