"""TensorFlow SavedModel and frozen graphs, encoded here with TensorFlow's field numbers.

The protobuf bytes are written by a tiny wire-format encoder in this file, independent of the
scanner's schema, with the field numbers of TensorFlow's .proto files (saved_model.proto,
meta_graph.proto, graph.proto, function.proto, node_def.proto, attr_value.proto, tensor.proto).
"""

from __future__ import annotations

import json

import pytest

from builders import field

pytest.importorskip("google.protobuf")


def node(name: str, op: str, inputs: tuple[str, ...] = (), attrs: dict[str, bytes] | None = None
         ) -> bytes:  # NodeDef: name 1, op 2, input 3, attr 5 (map entry: key 1, value 2)
    out = field(1, name.encode()) + field(2, op.encode())
    out += b"".join(field(3, i.encode()) for i in inputs)
    for key, value in (attrs or {}).items():
        out += field(5, field(1, key.encode()) + field(2, value))
    return out


def string_const(name: str, value: str) -> bytes:
    # AttrValue.tensor (8) -> TensorProto.dtype (1) = DT_STRING (7), string_val (8)
    tensor = field(1, 7) + field(8, value.encode())
    return node(name, "Const", attrs={"value": field(8, tensor), "dtype": field(6, 7)})


def graph(*nodes: bytes, functions: tuple[tuple[str, tuple[bytes, ...]], ...] = ()) -> bytes:
    # GraphDef: node 1, library 2 -> FunctionDefLibrary.function 1 -> FunctionDef:
    # signature 1 (OpDef.name 1), node_def 3
    out = b"".join(field(1, n) for n in nodes)
    if functions:
        lib = b"".join(field(1, field(1, field(1, fname.encode()))
                             + b"".join(field(3, n) for n in fnodes))
                       for fname, fnodes in functions)
        out += field(2, lib)
    return out + field(4, field(1, 1000))  # versions.producer


def saved_model(graph_def: bytes) -> bytes:
    # SavedModel: saved_model_schema_version 1, meta_graphs 2 -> MetaGraphDef.graph_def 2
    return field(1, 1) + field(2, field(2, graph_def))


BENIGN_GRAPH = graph(
    node("x", "Placeholder"), node("w", "VariableV2"), node("mm", "MatMul", ("x", "w")),
    node("saver_filename", "Placeholder"), string_const("tensor_names", "w"),
    node("save", "SaveV2", ("saver_filename", "tensor_names")),
    node("restore", "RestoreV2", ("saver_filename", "tensor_names")),
    functions=(("__inference_call_12", (node("relu", "Relu", ("x",)),)),))


def test_benign_saved_model_is_clean(tmp_path, scan_path):
    path = tmp_path / "saved_model.pb"
    path.write_bytes(saved_model(BENIGN_GRAPH))
    r = scan_path(path)
    assert r.report.findings == ()
    assert "tf-savedmodel" in r.formats()


def test_pyfunc_in_function_library_is_critical(tmp_path, scan_path):
    g = graph(node("x", "Placeholder"), functions=(
        ("__inference_serve_7", (node("py", "EagerPyFunc", ("x",),
                                      {"token": field(2, b"pyfunc_0")}),)),))
    path = tmp_path / "saved_model.pb"
    path.write_bytes(saved_model(g))
    (f,) = scan_path(path).by_rule("MW220")
    assert f.severity.label == "critical"
    assert f.details == {"op": "EagerPyFunc", "node": "py", "function": "__inference_serve_7"}


def test_file_ops_name_op_node_and_path(tmp_path, scan_path):
    g = graph(string_const("path", "/etc/passwd"), node("read", "ReadFile", ("path:0",)),
              node("write", "WriteFile", ("out", "read")), node("ls", "MatchingFiles", ("p",)))
    path = tmp_path / "saved_model.pb"
    path.write_bytes(saved_model(g))
    r = scan_path(path)
    found = {(f.details["op"], f.evidence) for f in r.by_rule("MW221")}
    assert found == {("ReadFile", "/etc/passwd"), ("WriteFile", "WriteFile"),
                     ("MatchingFiles", "MatchingFiles")}


def test_save_to_absolute_path_is_flagged_and_placeholder_is_not(tmp_path, scan_path):
    g = graph(string_const("prefix", "/home/victim/.ssh/authorized_keys"),
              string_const("names", "w"), node("save", "SaveV2", ("prefix", "names")))
    path = tmp_path / "saved_model.pb"
    path.write_bytes(saved_model(g))
    r = scan_path(path)
    assert [f.evidence for f in r.by_rule("MW223")] == ["/home/victim/.ssh/authorized_keys"]


def test_network_op_in_frozen_graph(tmp_path, scan_path):
    path = tmp_path / "frozen_graph.pb"
    path.write_bytes(graph(node("input", "Placeholder"),
                           node("rpc", "Rpc", ("addr", "method", "req"))))
    r = scan_path(path)
    assert "tf-graphdef" in r.formats()
    assert [f.evidence for f in r.by_rule("MW222")] == ["Rpc"]


def test_malformed_saved_model_is_inconclusive(tmp_path, scan_path):
    path = tmp_path / "saved_model.pb"
    path.write_bytes(saved_model(BENIGN_GRAPH)[:-9] + b"\xff\xff")
    r = scan_path(path)
    assert r.by_rule("MW224") and r.report.inconclusive
    assert "MW001" not in r.rules()


def test_deeply_nested_protobuf_is_bounded(tmp_path, scan_path):
    inner = b""
    for _ in range(2000):  # FunctionDefLibrary inside GraphDef inside ... as unknown fields
        inner = field(2, field(1, field(3, inner)))
    path = tmp_path / "saved_model.pb"
    path.write_bytes(saved_model(inner))
    r = scan_path(path)
    assert "MW001" not in r.rules()
    assert r.by_rule("MW224") or "tf-savedmodel" in r.formats()


def test_keras_metadata_lambda_in_savedmodel(tmp_path, scan_path, marker):
    # keras_metadata.pb (Keras 2 SavedModel): SavedMetadata.nodes 1 -> SavedObject
    # node_path 3, metadata 5 (the layer's config as JSON).
    from test_keras_formats import keras2_lambda

    layer = {"name": "l", **keras2_lambda("l", marker)}
    nodes = (field(1, field(2, 0) + field(3, b"root") + field(5, b'{"class_name": "Sequential"}'))
             + field(1, field(2, 1) + field(3, b"root.layer-0")
                     + field(5, json.dumps(layer).encode())))
    path = tmp_path / "keras_metadata.pb"
    path.write_bytes(nodes)
    r = scan_path(path)
    (f,) = r.by_rule("MW210")
    assert f.severity.label == "critical" and "root.layer-0" in f.details["config_path"]
    assert not marker.exists()


# -- recognised by protobuf structure, never read as text (issue 14.10) ---------------------

PYFUNC_GRAPH = graph(node("x", "Placeholder"), node("p", "PyFunc", ("x",)))


@pytest.mark.parametrize("layout", ["no-version", "version-0", "version-2", "version-last",
                                    "two-meta-graphs"])
@pytest.mark.parametrize("name", ["saved_model.pb", "model.bin"])
def test_minimal_saved_model_is_parsed_and_judged(tmp_path, scan_path, layout, name):
    meta = field(2, field(2, PYFUNC_GRAPH))
    data = {"no-version": meta, "version-0": field(1, 0) + meta,
            "version-2": field(1, 2) + meta, "version-last": meta + field(1, 1),
            "two-meta-graphs": field(2, field(2, BENIGN_GRAPH)) + meta}[layout]
    path = tmp_path / name
    path.write_bytes(data)
    r = scan_path(path)
    assert "tf-savedmodel" in r.formats(), r.formats()
    assert [f.evidence for f in r.by_rule("MW220")] == ["PyFunc"]
    assert "text" not in r.formats()


def test_text_like_saved_model_is_not_read_as_text(tmp_path, scan_path):
    """Every byte below 0x80 and no NUL: the text scanner would take it, and pass it."""
    data = field(2, field(2, field(1, node("p", "PyFunc"))))
    assert b"\x00" not in data and data.decode("utf-8")
    path = tmp_path / "saved_model.pb"
    path.write_bytes(data)
    r = scan_path(path)
    assert [f.evidence for f in r.by_rule("MW220")] == ["PyFunc"]
    assert r.formats() == {"tf-savedmodel"}


def test_saved_model_name_that_does_not_parse_is_inconclusive(tmp_path, scan_path):
    path = tmp_path / "saved_model.pb"
    path.write_bytes(b"this is not a protobuf at all \xff\xff\xff\xff\xff\xff\xff\xff\xff")
    r = scan_path(path)
    assert r.by_rule("MW224") and r.report.inconclusive


def test_frozen_graph_whose_first_node_field_is_not_its_name(tmp_path, scan_path):
    """NodeDef fields in another order (op first), names that are not printable."""
    first = field(2, b"PyFunc") + field(1, "\u00e9t\u00e9".encode())
    path = tmp_path / "frozen.pb"
    path.write_bytes(field(1, first) + field(3, 27))
    r = scan_path(path)
    assert "tf-graphdef" in r.formats()
    assert [f.evidence for f in r.by_rule("MW220")] == ["PyFunc"]


def test_saved_model_in_text_format(tmp_path, scan_path):
    """saved_model.pbtxt: TensorFlow loads it when saved_model.pb is absent."""
    path = tmp_path / "saved_model.pbtxt"
    path.write_text('saved_model_schema_version: 1\nmeta_graphs {\n  meta_info_def { tags: '
                    '"serve" }\n  graph_def {\n    node { name: "p" op: "PyFunc" input: "x" '
                    'attr { key: "token" value { s: "f" } } }\n    versions { producer: 1 }\n'
                    '  }\n}\n')
    r = scan_path(path)
    assert [f.evidence for f in r.by_rule("MW220")] == ["PyFunc"]


def test_random_binary_is_not_taken_for_a_saved_model(tmp_path, scan_path):
    import random

    rng = random.Random(5)
    for i in range(200):
        path = tmp_path / f"blob{i}.bin"
        path.write_bytes(bytes([0x12]) + bytes(rng.randrange(256) for _ in range(3000)))
    r = scan_path(tmp_path)
    assert "tf-savedmodel" not in r.formats()
