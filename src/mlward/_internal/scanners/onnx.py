"""ONNX models: external-data paths, custom operator domains and model-local functions.

The model is parsed with the onnx package, ``load_external_data=False``, so nothing outside
the file is opened (onnx's own path checks run only when external data is loaded, and they
were the subject of CVE-2024-27318/27319). Every tensor that can carry external data is
visited: initializers and sparse initializers of the main graph, of subgraphs (If/Loop/Scan
bodies) and of functions, and tensors held in node attributes (Constant values). Metadata
and doc strings are searched for pickles or code hidden as base64 or hex (:mod:`.encoded`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from mlward._internal.scanners.facts import model_fact
from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.sources import Source
from mlward.errors import MissingExtra
from mlward.findings import Location, Severity
from mlward.rules import ONNX_CUSTOM_DOMAIN, ONNX_EXTERNAL_PATH, ONNX_LOCAL_FUNCTION, ONNX_MALFORMED

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training",
                              "ai.onnx.preview.training", "com.microsoft",
                              "com.microsoft.nchwc", "com.microsoft.experimental"})
# onnxruntime-extensions: PyOp and friends run Python functions registered by the host.
PYTHON_OP_DOMAIN = "ai.onnx.contrib"
MAX_GRAPH_DEPTH = 64
# ModelProto starts with ir_version (field 1, varint); real models have versions 3 to 13.
_IR_VERSIONS = range(3, 32)
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


def text(value: str | bytes) -> str:
    """A protobuf string field as text: protobuf hands over a string that is not valid UTF-8
    as bytes (onnx declares them proto2 strings), which must not stop the checks."""
    return value if isinstance(value, str) else value.decode("utf-8", "backslashreplace")


def _tensors(graph: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(where, TensorProto) for every tensor in a graph and its subgraphs."""
    if depth > MAX_GRAPH_DEPTH:
        return
    for t in graph.initializer:
        yield f"initializer {text(t.name)!r}", t
    for s in graph.sparse_initializer:
        yield f"sparse initializer {text(s.values.name)!r}", s.values
        yield f"sparse initializer {text(s.indices.name)!r}", s.indices
    for node in graph.node:
        yield from _node_tensors(node, depth)


def _node_tensors(node: Any, depth: int) -> Iterator[tuple[str, Any]]:
    for attr in node.attribute:
        where = f"node {text(node.name or node.op_type)!r} attribute {text(attr.name)!r}"
        if attr.HasField("t"):
            yield where, attr.t
        for t in attr.tensors:
            yield where, t
        if attr.HasField("g"):
            yield from _tensors(attr.g, depth + 1)
        for g in attr.graphs:
            yield from _tensors(g, depth + 1)


def _nodes(graph: Any, depth: int = 0) -> Iterator[Any]:
    if depth > MAX_GRAPH_DEPTH:
        return
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _nodes(attr.g, depth + 1)
            for g in attr.graphs:
                yield from _nodes(g, depth + 1)


def external_path_problem(location: str, model_dir: Path | None) -> str | None:
    """Why an external-data ``location`` escapes the model's folder, or None."""
    if not location:
        return "empty location"
    if "\x00" in location:
        return "location contains a NUL byte"
    if (PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute()
            or PureWindowsPath(location).drive or location.startswith(("/", "\\"))):
        return "absolute path"
    if ".." in location.replace("\\", "/").split("/"):
        return "path climbs out with '..'"
    if model_dir is not None:
        base = model_dir.resolve()
        target = Path(os.path.realpath(base / location))
        if not target.is_relative_to(base):
            return f"resolves outside the model folder (to {target})"
    return None



@functools.cache
def onnx_proto() -> Any:
    """ONNX's generated protobuf classes (``onnx.onnx_ml_pb2``), without running the onnx
    package's ``__init__``: that imports ml_dtypes, the helper and the reference
    implementation, 0.7 s per worker process, none of which reading a model needs. The
    generated module only needs protobuf; registering its descriptors next to a later
    ``import onnx`` is allowed (the same file, byte for byte)."""
    if "onnx" in sys.modules:
        from onnx import onnx_ml_pb2

        return onnx_ml_pb2
    spec = importlib.util.find_spec("onnx")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("onnx is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "onnx_ml_pb2.py"
    module_spec = importlib.util.spec_from_file_location("_mlward_onnx_ml_pb2", path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # e.g. a protobuf runtime older than the generated code
        raise ImportError(f"onnx's protobuf classes do not load: {exc}") from None
    return module

class ONNXScanner(Scanner):
    name = "onnx"
    priority = 80

    def sniff(self, source: Source) -> bool:
        head = source.head(3)
        if len(head) < 3 or head[0] != 0x08 or head[1] not in _IR_VERSIONS:
            return False
        # Next field: producer_name (2), producer_version (3), domain (4), model_version (5),
        # doc_string (6), graph (7), opset_import (8): length-delimited or varint.
        return head[2] in (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42)

    def scan(self, source: Source, ctx: ScanContext) -> None:
        loc = source.location
        try:
            proto = onnx_proto()
            from google.protobuf.message import DecodeError
        except ImportError:
            ctx.skip(loc, MissingExtra("onnx", "onnx").diagnostics(), inconclusive=True)
            return
        try:
            with source.open() as f:
                model = proto.ModelProto()
                model.ParseFromString(f.read())
        except (DecodeError, ValueError, RecursionError) as exc:
            ctx.add(ONNX_MALFORMED.finding(loc, f"ONNX protobuf does not parse: {exc}"))
            ctx.skip(loc, "ONNX protobuf does not parse", inconclusive=True)
            return
        ctx.examined(loc, self.name)
        graph = model.graph
        model_fact(ctx, loc, self.name, framework=model.producer_name or None,
                   tensors=[(t.name, proto.TensorProto.DataType.Name(t.data_type), t.dims)
                            for t in graph.initializer],
                   opsets={o.domain or "ai.onnx": o.version for o in model.opset_import},
                   inputs=[i.name for i in graph.input][:64],
                   outputs=[o.name for o in graph.output][:64])
        model_dir = source.fs_path.parent if source.fs_path is not None else None
        self._check_external(model, model_dir, loc, ctx)
        self._check_domains(model, loc, ctx)
        self._check_metadata(model, loc, ctx)

    @staticmethod
    def _check_metadata(model: Any, loc: Location, ctx: ScanContext) -> None:
        """Metadata and doc strings that hide a pickle or code as base64 or hex (a
        converter's saved state is a favourite place)."""
        from mlward._internal.scanners.encoded import report_encoded

        for prop in model.metadata_props:
            key = text(prop.key)
            report_encoded(text(prop.value), loc, ctx, f"metadata value {key!r}", key)
        for owner, doc in (("model", model.doc_string), ("graph", model.graph.doc_string)):
            if doc:
                report_encoded(text(doc), loc, ctx, f"the {owner} doc string",
                               f"{owner}.doc_string")

    @staticmethod
    def _check_external(model: Any, model_dir: Path | None, loc: Location,
                        ctx: ScanContext) -> None:
        tensors = list(_tensors(model.graph))
        for fn in model.functions:
            for node in fn.node:
                tensors.extend(_node_tensors(node, 0))
        for where, t in tensors:
            if t.data_location != _EXTERNAL:
                continue
            entries = {text(e.key): text(e.value) for e in t.external_data}
            target = entries.get("location", "")
            problem = external_path_problem(target, model_dir)
            if problem:
                ctx.add(ONNX_EXTERNAL_PATH.finding(
                    loc, f"{where} reads external data from {target!r}: {problem}",
                    evidence=target))

    @staticmethod
    def _check_domains(model: Any, loc: Location, ctx: ScanContext) -> None:
        local = {(text(fn.domain), text(fn.name)) for fn in model.functions}
        custom: dict[str, set[str]] = {}
        nodes = list(_nodes(model.graph))
        for fn in model.functions:
            nodes.extend(fn.node)
        for node in nodes:
            domain, op = text(node.domain), text(node.op_type)
            if domain not in STANDARD_DOMAINS and (domain, op) not in local:
                custom.setdefault(domain, set()).add(op)
        for domain, ops in sorted(custom.items()):
            python = domain == PYTHON_OP_DOMAIN and any(op.startswith("Py") for op in ops)
            ctx.add(ONNX_CUSTOM_DOMAIN.finding(
                loc, f"operators from the custom domain {domain!r}: {', '.join(sorted(ops))}"
                + (" (Python operators: the runtime calls Python code)" if python else ""),
                evidence=domain, details={"ops": sorted(ops)},
                severity=Severity.HIGH if python else None))
        if model.functions:
            names = sorted(f"{d}.{n}" if d else n for d, n in local)
            ctx.add(ONNX_LOCAL_FUNCTION.finding(
                loc, f"{len(names)} model-local function(s): {', '.join(names[:20])}",
                evidence=", ".join(names[:20])))
