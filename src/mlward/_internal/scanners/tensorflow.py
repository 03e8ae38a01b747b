"""TensorFlow SavedModel (saved_model.pb) and frozen GraphDef (.pb) files, read without TensorFlow.

The protobuf schema is the small subset of TensorFlow's ``saved_model.proto``, ``graph.proto``,
``function.proto``, ``node_def.proto``, ``attr_value.proto`` and ``tensor.proto`` a verdict
needs, declared here as descriptors and compiled at import by the protobuf runtime (the
``tensorflow`` extra: ``protobuf``). Field numbers are TensorFlow's; every field not declared is
kept by protobuf as unknown and ignored. Why not tensorboard's compiled protos: tensorboard
is a large install with a web server's dependencies, for six messages.

A Keras 2 SavedModel's ``keras_metadata.pb`` holds each layer's config as JSON; those configs
are judged like a Keras model config (Lambda layers, foreign modules).

Every node of every graph and of every function in each graph's library is listed, and ops
that run Python, touch files or reach the network are reported with the op, the node and the
function it sits in. Save/Restore ops are part of every SavedModel, so they are reported only
when their file name is a constant absolute or climbing path.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any, NamedTuple

from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.sources import Source
from mlward.errors import MissingExtra
from mlward.findings import Location, Severity
from mlward.rules import TF_FILE_OP, TF_MALFORMED, TF_NETWORK_OP, TF_PYTHON_OP, TF_SAVE_PATH

KERAS_METADATA = "keras_metadata.pb"
SAVED_MODEL = "saved_model.pb"
SAVED_MODEL_TEXT = "saved_model.pbtxt"
"""The names TensorFlow's SavedModel loader reads (the text form when the binary is absent)."""
MAX_PROTO_BYTES = (2 << 30) - 1
"""The protobuf wire format's own limit for one message."""

PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
FILE_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "MatchingFilesDataset", "ImmutableConst",
    "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "TextLineReader",
    "TextLineReaderV2", "TFRecordReader", "TFRecordReaderV2", "WholeFileReader",
    "WholeFileReaderV2", "LMDBReader", "TFRecordDataset", "TFRecordDatasetV2",
    "TextLineDataset", "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2",
    "SaveDataset", "SaveDatasetV2", "LoadDataset", "DatasetToTFRecord",
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "LoadAndRemapMatrix",
    "GenerateVocabRemapping", "ExperimentalMatchingFilesDataset", "SnapshotDataset",
    "SnapshotDatasetV2",
})
NETWORK_OPS = frozenset({
    "Rpc", "TryRpc", "RpcCall", "RpcClient", "RpcServer", "RpcServerStart",
    "RpcServerRegister", "RpcCheckStatus", "RpcGetValue", "DebugIdentity", "DebugIdentityV2",
    "DebugNanCount", "DebugNumericSummary", "DebugNumericSummaryV2", "DataServiceDataset",
    "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
    "RegisterDataset", "RegisterDatasetV2",
})
# Ops whose file-name input (by position) is judged when it is a constant.
PATH_INPUTS = {
    "Save": (0,), "SaveV2": (0,), "SaveSlices": (0,), "Restore": (0,), "RestoreV2": (0,),
    "RestoreSlice": (0,), "MergeV2Checkpoints": (0, 1), "InitializeTableFromTextFile": (1,),
    "InitializeTableFromTextFileV2": (1,), "ReadFile": (0,), "WriteFile": (0,),
}


@cache
def _messages() -> dict[str, Any]:
    """The message classes, built once from descriptors declared in code."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="mlward_tf_subset.proto",
                                             package="mlward.tf", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> Any:
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            msg.field.add(name=fname, number=number, type=ftype, label=label,
                          type_name=type_name or None)
        return msg

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    attr_map = (".mlward.tf.NodeDef.AttrEntry",)
    message("SavedModel", ("meta_graphs", 2, F.TYPE_MESSAGE, rep, ".mlward.tf.MetaGraphDef"))
    message("MetaGraphDef", ("graph_def", 2, F.TYPE_MESSAGE, opt, ".mlward.tf.GraphDef"))
    message("GraphDef", ("node", 1, F.TYPE_MESSAGE, rep, ".mlward.tf.NodeDef"),
            ("library", 2, F.TYPE_MESSAGE, opt, ".mlward.tf.FunctionDefLibrary"))
    message("FunctionDefLibrary",
            ("function", 1, F.TYPE_MESSAGE, rep, ".mlward.tf.FunctionDef"))
    message("FunctionDef", ("signature", 1, F.TYPE_MESSAGE, opt, ".mlward.tf.OpDef"),
            ("node_def", 3, F.TYPE_MESSAGE, rep, ".mlward.tf.NodeDef"))
    message("OpDef", ("name", 1, F.TYPE_STRING, opt, ""))
    node = message("NodeDef", ("name", 1, F.TYPE_STRING, opt, ""),
                   ("op", 2, F.TYPE_STRING, opt, ""), ("input", 3, F.TYPE_STRING, rep, ""),
                   ("attr", 5, F.TYPE_MESSAGE, rep, attr_map[0]))
    entry = node.nested_type.add(name="AttrEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=opt,
                    type_name=".mlward.tf.AttrValue")
    message("AttrValue", ("list", 1, F.TYPE_MESSAGE, opt, ".mlward.tf.ListValue"),
            ("s", 2, F.TYPE_BYTES, opt, ""),
            ("tensor", 8, F.TYPE_MESSAGE, opt, ".mlward.tf.TensorProto"))
    message("ListValue", ("s", 2, F.TYPE_BYTES, rep, ""),
            ("tensor", 8, F.TYPE_MESSAGE, rep, ".mlward.tf.TensorProto"))
    message("TensorProto", ("string_val", 8, F.TYPE_BYTES, rep, ""))
    # Keras 2 SavedModels: keras_metadata.pb holds each layer's config as JSON.
    message("SavedMetadata", ("nodes", 1, F.TYPE_MESSAGE, rep, ".mlward.tf.SavedObject"))
    message("SavedObject", ("node_path", 3, F.TYPE_STRING, opt, ""),
            ("metadata", 5, F.TYPE_STRING, opt, ""))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"mlward.tf.{name}"))
            for name in ("SavedModel", "GraphDef", "SavedMetadata")}


class OpHit(NamedTuple):
    op: str
    node: str
    function: str | None
    path: str | None = None
    """A constant file name the op uses, where one is known."""


def _graph_nodes(graph: Any) -> Iterator[tuple[Any, str | None, dict[str, Any]]]:
    """(node, function name or None, constants by node name) for a graph and its library."""
    yield from ((n, None, _constants(graph.node)) for n in graph.node)
    for fn in graph.library.function:
        consts = _constants(fn.node_def)
        for n in fn.node_def:
            yield n, fn.signature.name, consts


def _constants(nodes: Any) -> dict[str, Any]:
    return {n.name: n for n in nodes if n.op == "Const"}


def _const_strings(node: Any) -> list[str]:
    value = node.attr.get("value") if node is not None else None
    if value is None:
        return []
    return [s.decode("utf-8", "replace") for s in value.tensor.string_val]


def find_ops(graph: Any) -> Iterator[OpHit]:
    """Ops in ``graph`` (and its function library) that need a person to look at them."""
    for node, function, consts in _graph_nodes(graph):
        op = node.op
        paths: list[str] = []
        for index in PATH_INPUTS.get(op, ()):
            if index < len(node.input):
                ref = node.input[index].lstrip("^").split(":", 1)[0]
                paths.extend(_const_strings(consts.get(ref)))
        if op in ("PrintV2", "Print") and "output_stream" in node.attr:
            stream = node.attr["output_stream"].s.decode("utf-8", "replace")
            if stream.startswith("file://"):
                paths.append(stream)
        if op in PYTHON_OPS or op in FILE_OPS or op in NETWORK_OPS or paths:
            if not paths:
                yield OpHit(op, node.name, function)
            for p in paths:
                yield OpHit(op, node.name, function, p)


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """The varint at ``pos`` and the position after it; None when cut short or overlong."""
    value = shift = 0
    while pos < len(data) and shift < 64:
        b = data[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7
    return None


def _wire_fields(data: bytes, size: int) -> list[tuple[int, int, int, int]] | None:
    """The top-level fields of the protobuf message in ``data`` (the head of a ``size``-byte
    message) as (number, wire type, value offset, length); None when the bytes are not
    protobuf wire format. A field running past the head ends the list."""
    fields: list[tuple[int, int, int, int]] = []
    pos = 0
    while pos < len(data):
        key = _varint(data, pos)
        if key is None:
            return fields or None
        number, wire = key[0] >> 3, key[0] & 7
        pos = key[1]
        if number == 0:
            return None
        if wire == 0:
            value = _varint(data, pos)
            if value is None:
                return fields
            fields.append((number, wire, pos, 0))
            pos = value[1]
        elif wire == 2:
            length = _varint(data, pos)
            if length is None or length[1] + length[0] > size:
                return None
            fields.append((number, wire, length[1], length[0]))
            pos = length[1] + length[0]
        else:
            return None  # TensorFlow's messages here use varints and length-delimited only
    return fields


def _first_is(data: bytes, fields: list[tuple[int, int, int, int]], number: int,
              inner: range) -> bool:
    """Whether the first field ``number`` (a message) starts with a length-delimited field
    whose number is in ``inner`` (or is empty, or starts past the head)."""
    for n, _, start, length in fields:
        if n == number:
            if length == 0 or start >= len(data):
                return True
            key = _varint(data, start)
            return key is not None and key[0] >> 3 in inner and key[0] & 7 == 2
    return True


def structure(head: bytes, size: int) -> str | None:
    """``SavedModel`` or ``GraphDef`` when ``head`` reads as the start of that message by
    its wire structure (field numbers and types, lengths within the file, and the first
    meta graph or node starting with one of its own fields), else None."""
    if not head or head[0] not in (0x08, 0x0A, 0x12, 0x1A, 0x20):
        return None
    fields = _wire_fields(head, size)
    if not fields:
        return None
    kinds = {(n, w) for n, w, _, _ in fields}
    if (2, 2) in kinds and kinds <= {(1, 0), (2, 2)} and _first_is(head, fields, 2, _META):
        return "SavedModel"
    if kinds <= {(1, 2), (2, 2), (3, 0), (4, 2)} and _first_is(head, fields, 1, _NODE):
        return "GraphDef"
    return None


_META = range(1, 10)
"""MetaGraphDef's fields (meta_info_def, graph_def, saver_def, ... object_graph_def)."""
_NODE = range(1, 8)
"""NodeDef's fields (name, op, input, device, attr, debug info, type)."""


def _path_escapes(path: str) -> bool:
    plain = path.removeprefix("file://")
    return plain.startswith(("/", "\\")) or ".." in plain.replace("\\", "/").split("/") or (
        len(plain) > 1 and plain[1] == ":")


def report_ops(graph: Any, loc: Location, ctx: ScanContext, graph_label: str) -> None:
    for hit in find_ops(graph):
        where = f"node {hit.node!r}" + (f" in function {hit.function!r}" if hit.function else
                                         f" in {graph_label}")
        details = {"op": hit.op, "node": hit.node, "function": hit.function}
        if hit.op in PYTHON_OPS:
            ctx.add(TF_PYTHON_OP.finding(loc, f"{hit.op} op at {where}", evidence=hit.op,
                                         details=details))
        elif hit.op in NETWORK_OPS:
            ctx.add(TF_NETWORK_OP.finding(loc, f"{hit.op} op at {where}", evidence=hit.op,
                                          details=details))
        elif hit.op not in FILE_OPS and hit.op in PATH_INPUTS:  # Save/Restore: escaping paths
            if hit.path is not None and _path_escapes(hit.path):
                ctx.add(TF_SAVE_PATH.finding(loc, f"{hit.op} op at {where} uses {hit.path!r}",
                                             evidence=hit.path, details=details))
        else:
            severity = Severity.CRITICAL if hit.path and _path_escapes(hit.path) else None
            suffix = f" on {hit.path!r}" if hit.path else ""
            ctx.add(TF_FILE_OP.finding(loc, f"{hit.op} op at {where}{suffix}",
                                       evidence=hit.path or hit.op, severity=severity,
                                       details=details))


class TensorFlowScanner(Scanner):
    """saved_model.pb (SavedModel), saved_model.pbtxt, and frozen GraphDef .pb files.

    Recognised by name where TensorFlow's loader fixes it (``saved_model.pb``,
    ``saved_model.pbtxt``, ``keras_metadata.pb``) and otherwise by protobuf structure
    (:func:`structure`); never left to the text scanner.
    """

    name = "tensorflow"
    priority = 90
    covers = frozenset({"text"})  # a protobuf is not a config file, whatever its bytes

    def sniff(self, source: Source) -> bool:
        if source.name in (SAVED_MODEL, SAVED_MODEL_TEXT):
            return True
        head = source.head()
        if source.name == KERAS_METADATA and head[:1] == b"\x0a":
            return True
        kind = structure(head, source.size if source.size is not None else len(head))
        return kind == "SavedModel" or (kind == "GraphDef"
                                        and source.name.lower().endswith(".pb"))

    def scan(self, source: Source, ctx: ScanContext) -> None:
        loc = source.location
        try:
            messages = _messages()
            from google.protobuf import text_format
            from google.protobuf.message import DecodeError
        except ImportError:
            ctx.skip(loc, MissingExtra("protobuf", "tensorflow").diagnostics(),
                     inconclusive=True)
            return
        if source.size is not None and source.size > MAX_PROTO_BYTES:
            ctx.skip(loc, "larger than a protobuf message can be (2 GiB)", inconclusive=True)
            return
        with source.open() as f:
            data = f.read(MAX_PROTO_BYTES + 1)
        if source.name == KERAS_METADATA:
            kind = "SavedMetadata"
        elif source.name in (SAVED_MODEL, SAVED_MODEL_TEXT):
            kind = "SavedModel"
        else:
            kind = structure(data[:4096], len(data)) or "GraphDef"
        try:
            if source.name == SAVED_MODEL_TEXT:
                msg = messages[kind]()
                text_format.Parse(data.decode("utf-8"), msg, allow_unknown_field=True)
            else:
                msg = messages[kind].FromString(data)
        except (DecodeError, text_format.ParseError, UnicodeDecodeError, RecursionError,
                ValueError) as exc:
            ctx.add(TF_MALFORMED.finding(loc, f"protobuf does not parse: {exc}"))
            ctx.skip(loc, "TensorFlow protobuf does not parse", inconclusive=True)
            return
        del data
        ctx.examined(loc, {"SavedModel": "tf-savedmodel", "GraphDef": "tf-graphdef",
                           "SavedMetadata": "keras-savedmodel-metadata"}[kind])
        if kind == "SavedModel":
            for i, meta in enumerate(msg.meta_graphs):
                report_ops(meta.graph_def, loc, ctx, f"meta graph {i}")
        elif kind == "GraphDef":
            report_ops(msg, loc, ctx, "the graph")
        else:
            from mlward._internal.scanners.keras import report_config

            for node in msg.nodes:
                if node.metadata:
                    report_config(node.metadata, loc, ctx, node.node_path or "metadata")
