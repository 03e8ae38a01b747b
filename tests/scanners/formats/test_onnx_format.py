"""ONNX models built with onnx.helper; external data, custom domains, functions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.external_data_helper import set_external_data  # noqa: E402


def model(*, initializers=(), nodes=None, functions=(), opsets=None) -> onnx.ModelProto:
    nodes = nodes or [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=list(initializers))
    return helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", 17)],
                             functions=list(functions), producer_name="mlward-tests")


def external(name: str, location: str) -> TensorProto:
    t = numpy_helper.from_array(np.zeros(2, dtype=np.float32), name)
    set_external_data(t, location=location, offset=0, length=8)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    return t


def save(path: Path, m: onnx.ModelProto) -> Path:
    path.write_bytes(m.SerializeToString())
    return path


def test_benign_onnx_is_clean(tmp_path, scan_path):
    w = numpy_helper.from_array(np.zeros(2, dtype=np.float32), "w")
    add = helper.make_node("Add", ["x", "w"], ["y"], name="add")
    r = scan_path(save(tmp_path / "m.onnx", model(initializers=[w], nodes=[add])))
    assert r.report.findings == ()
    assert "onnx" in r.formats()


def test_benign_external_data_beside_the_model_is_clean(tmp_path, scan_path):
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    r = scan_path(save(tmp_path / "m.onnx", model(initializers=[external("w", "weights.bin")])))
    assert not [f for f in r.report.findings if f.rule_id.startswith("MW23")]


def test_cve_2024_27318_absolute_external_data_path(tmp_path, scan_path):
    # CVE-2024-27318 (and its predecessor CVE-2022-25882): external data read from an
    # absolute path outside the model folder.
    r = scan_path(save(tmp_path / "m.onnx", model(initializers=[external("w", "/etc/passwd")])))
    (f,) = r.by_rule("MW230")
    assert f.evidence == "/etc/passwd" and "absolute" in f.message


def test_cve_2024_27319_dotdot_external_data_path(tmp_path, scan_path):
    # CVE-2024-27319: '..' in an external-data location escapes the model folder.
    r = scan_path(save(tmp_path / "m.onnx",
                       model(initializers=[external("w", "../../../etc/shadow")])))
    assert [f.evidence for f in r.by_rule("MW230")] == ["../../../etc/shadow"]


def test_symlink_escape_is_found(tmp_path, scan_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"\0" * 8)
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(outside, folder / "data")
    r = scan_path(save(folder / "m.onnx", model(initializers=[external("w", "data/secret")])))
    (f,) = r.by_rule("MW230")
    assert "resolves outside" in f.message


def test_external_data_in_subgraph_and_constant_is_found(tmp_path, scan_path):
    const = helper.make_node("Constant", [], ["c"], name="const", value=external("c", "/etc/x"))
    body = helper.make_graph([const], "body", [], [helper.make_tensor_value_info(
        "c", TensorProto.FLOAT, [2])], initializer=[external("b", "../up")])
    cond = helper.make_node("If", ["x"], ["y"], name="if", then_branch=body, else_branch=body)
    r = scan_path(save(tmp_path / "m.onnx", model(nodes=[cond])))
    assert {f.evidence for f in r.by_rule("MW230")} == {"/etc/x", "../up"}


def test_custom_domain_and_local_functions(tmp_path, scan_path):
    fn = helper.make_function("my.fns", "Twice", ["a"], ["b"],
                              [helper.make_node("Add", ["a", "a"], ["b"])],
                              [helper.make_opsetid("", 17)])
    nodes = [helper.make_node("Twice", ["x"], ["t"], domain="my.fns"),
             helper.make_node("Evil", ["t"], ["y"], domain="com.attacker.ops")]
    m = model(nodes=nodes, functions=[fn],
              opsets=[helper.make_opsetid("", 17), helper.make_opsetid("my.fns", 1),
                      helper.make_opsetid("com.attacker.ops", 1)])
    r = scan_path(save(tmp_path / "m.onnx", m))
    assert [f.evidence for f in r.by_rule("MW231")] == ["com.attacker.ops"]
    assert r.by_rule("MW232")


def test_malformed_onnx_is_inconclusive(tmp_path, scan_path):
    data = model().SerializeToString()
    path = tmp_path / "m.onnx"
    path.write_bytes(data[:3] + b"\xff" * 40)
    r = scan_path(path)
    assert "MW001" not in r.rules()
    assert r.by_rule("MW233") and r.report.inconclusive


def test_python_operator_of_onnxruntime_extensions_is_high(tmp_path, scan_path):
    node = helper.make_node("PyOp", ["x"], ["y"], domain="ai.onnx.contrib")
    m = model(nodes=[node], opsets=[helper.make_opsetid("", 17),
                                    helper.make_opsetid("ai.onnx.contrib", 1)])
    (f,) = scan_path(save(tmp_path / "m.onnx", m)).by_rule("MW231")
    assert f.severity.label == "high"


# -- strings that are not UTF-8 (issue 13.7) -------------------------------------------------


@pytest.mark.parametrize("field", [b"DOMX", b"LOCX", b"location", b"NAMEX", b"OPTX", b"TNAME"])
def test_strings_that_are_not_utf8_do_not_stop_the_scan(tmp_path, scan_path, field):
    """protobuf hands such strings over as bytes; the external-data finding still comes."""
    node = helper.make_node("OPTX", ["x"], ["y"], name="NAMEX", domain="DOMX")
    m = model(initializers=[external("TNAME", "/etc/passwdLOCX")], nodes=[node],
              opsets=[helper.make_opsetid("", 17), helper.make_opsetid("DOMX", 1)])
    data = m.SerializeToString()
    assert data.count(field) >= 1
    path = tmp_path / "m.onnx"
    path.write_bytes(data.replace(field, field[:-1] + b"\xff"))
    r = scan_path(path)
    assert "MW001" not in r.rules(), [f.message for f in r.report.findings]
    assert r.by_rule("MW230"), [f.message for f in r.report.findings]


def test_reading_a_model_does_not_import_the_onnx_package(tmp_path):
    # The package's __init__ imports ml_dtypes and its reference implementation (0.7 s per
    # worker); the scanner needs only the generated protobuf classes.
    import subprocess
    import sys

    w = numpy_helper.from_array(np.zeros(2, dtype=np.float32), "w")
    target = save(tmp_path / "m.onnx", model(initializers=[w]))
    code = ("import sys, json; from mlward.cli.main import main; "
            "rc = main(['scan', '-q', '--executor', 'inline', '-f', 'json', "
            f"'-o', {str(tmp_path / 'r.json')!r}, {str(target)!r}]); "
            "print(rc, 'onnx' in sys.modules, 'ml_dtypes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout.split()
    assert out == ["0", "False", "False"]
    import json

    facts = json.loads((tmp_path / "r.json").read_text())["facts"]
    assert [(f["data"]["format"], f["data"]["tensors"]) for f in facts
            if f["kind"] == "model"] == [("onnx", 1)]  # the model was read all the same
