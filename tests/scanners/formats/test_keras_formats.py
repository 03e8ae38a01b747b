"""Keras HDF5 and .keras archives, built with h5py and zipfile (Keras itself is not needed)."""

from __future__ import annotations

import base64
import contextlib
import json
import marshal
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")


def dense(name: str, units: int = 4) -> dict:
    return {"class_name": "Dense", "config": {"name": name, "trainable": True, "units": units,
                                              "activation": "relu", "use_bias": True}}


def lambda_code(marker: Path) -> str:
    """Base64 of the marshalled code of a lambda that would create ``marker`` if it ran."""
    source = f"lambda x: __import__('os').system('touch {marker}') or x"
    code = compile(source, "<keras>", "eval").co_consts[0]
    return base64.b64encode(marshal.dumps(code)).decode()


def keras2_lambda(name: str, marker: Path) -> dict:
    return {"class_name": "Lambda", "config": {
        "name": name, "function": [lambda_code(marker), None, None],
        "function_type": "lambda", "module": "__main__", "output_shape": None,
        "output_shape_type": "raw", "arguments": {}}}


def sequential(*layers: dict, name: str = "sequential") -> dict:
    return {"class_name": "Sequential", "config": {"name": name, "layers": list(layers)}}


def write_h5(path: Path, config: dict) -> Path:
    with h5py.File(path, "w") as h:
        h.attrs["keras_version"] = "2.15.0"
        h.attrs["backend"] = "tensorflow"
        h.attrs["model_config"] = json.dumps(config)
        weights = h.create_group("model_weights")
        weights.attrs["layer_names"] = [b"dense"]
        weights.create_dataset("dense/kernel:0", data=np.zeros((4, 4), dtype=np.float32))
    return path


# -- HDF5 ---------------------------------------------------------------------------------


def test_benign_h5_model_not_flagged_high(tmp_path, scan_path):
    r = scan_path(write_h5(tmp_path / "m.h5", sequential(dense("d1"), dense("d2"))))
    assert r.high() == []
    assert "keras-hdf5" in r.formats()


def test_lambda_in_h5_reports_the_names_it_uses(tmp_path, scan_path, marker):
    # CVE-2025-9905: HDF5 files ignore safe_mode, so a Lambda runs on load.
    r = scan_path(write_h5(tmp_path / "m.h5", sequential(dense("d"), keras2_lambda("l", marker))))
    (f,) = r.by_rule("MW210")
    assert f.severity.label == "critical"
    assert {"__import__", "system"} <= set(f.details["names"])
    assert "os" in f.details["strings"]
    assert not marker.exists()


def test_lambda_nested_in_submodel_and_wrapper_is_found(tmp_path, scan_path, marker):
    inner = sequential(dense("d"), {"class_name": "TimeDistributed", "config": {
        "name": "td", "layer": keras2_lambda("deep", marker)}}, name="inner")
    functional = {"class_name": "Functional", "config": {
        "name": "outer", "layers": [{"class_name": "InputLayer", "config": {"name": "in"}},
                                    {**inner, "name": "inner",
                                     "inbound_nodes": [[["in", 0, 0, {}]]]}],
        "input_layers": [["in", 0, 0]], "output_layers": [["inner", 0, 0]]}}
    r = scan_path(write_h5(tmp_path / "m.h5", functional))
    (f,) = r.by_rule("MW210")
    assert "'deep'" in f.message
    assert "layers[1]" in f.details["config_path"]


def test_undecodable_lambda_is_still_flagged(tmp_path, scan_path):
    layer = {"class_name": "Lambda", "config": {"name": "l", "function": ["!!notbase64",
                                                                          None, None],
                                                "function_type": "lambda"}}
    r = scan_path(write_h5(tmp_path / "m.h5", sequential(layer)))
    assert r.by_rule("MW210")
    assert "MW001" not in r.rules()


def test_h5_external_link_and_storage_are_reported(tmp_path, scan_path):
    path = write_h5(tmp_path / "m.h5", sequential(dense("d")))
    with h5py.File(path, "a") as h:
        h["leak"] = h5py.ExternalLink("/etc/passwd", "/x")
        h.create_dataset("ext", shape=(4,), dtype="u1", external=[("/etc/hostname", 0, 4)])
    r = scan_path(path)
    evidence = {f.evidence for f in r.by_rule("MW215")}
    assert {"/etc/passwd", "/etc/hostname"} <= evidence


def test_h5_with_broken_config_is_inconclusive(tmp_path, scan_path):
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as h:
        h.attrs["model_config"] = '{"class_name": '
    r = scan_path(path)
    assert r.by_rule("MW214")
    assert r.report.inconclusive


def test_truncated_h5_is_a_finding_not_a_crash(tmp_path, scan_path):
    path = write_h5(tmp_path / "m.h5", sequential(dense("d")))
    path.write_bytes(path.read_bytes()[:600])
    r = scan_path(path)
    assert "MW001" not in r.rules()
    assert r.by_rule("MW214")


# -- .keras -------------------------------------------------------------------------------


def v3_dense(name: str) -> dict:
    return {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
            "config": {"name": name, "units": 4, "activation": "relu",
                       "kernel_initializer": {"module": "keras.initializers",
                                              "class_name": "GlorotUniform",
                                              "config": {"seed": None},
                                              "registered_name": None}},
            "build_config": {"input_shape": [None, 4]}}


def v3_model(*layers: dict) -> dict:
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "sequential", "trainable": True,
                       "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                 "config": {"name": "float32"}, "registered_name": None},
                       "layers": [{"module": "keras.layers", "class_name": "InputLayer",
                                   "registered_name": None,
                                   "config": {"batch_shape": [None, 4], "name": "input"}},
                                  *layers]},
            "build_config": {"input_shape": [None, 4]},
            "compile_config": {"optimizer": {"module": "keras.optimizers", "class_name": "Adam",
                                             "config": {"learning_rate": 0.001},
                                             "registered_name": None},
                               "loss": "mse"}}


def write_keras(path: Path, config: dict, extra: dict[str, bytes] | None = None) -> Path:
    weights = path.parent / "w.tmp.h5"
    with h5py.File(weights, "w") as h:
        h.create_group("layers/dense/vars").create_dataset("0", data=np.zeros((4, 4)))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.8.0",
                                                 "date_saved": "2026-01-01@00:00:00"}))
        zf.writestr("config.json", json.dumps(config))
        zf.write(weights, "model.weights.h5")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    weights.unlink()
    return path


def test_benign_keras_archive_is_clean(tmp_path, scan_path):
    r = scan_path(write_keras(tmp_path / "m.keras", v3_model(v3_dense("d1"), v3_dense("d2"))))
    assert r.report.findings == ()
    assert {"keras", "hdf5"} <= r.formats()


def test_cve_2025_1550_config_names_module_function(tmp_path, scan_path, marker):
    # CVE-2025-1550: config.json names arbitrary modules/functions that Keras < 3.9 imports and
    # calls even with safe_mode=True; the published technique is a "layer" that is
    # subprocess.run, given its arguments through the layer graph's inbound nodes.
    layer = {"module": "subprocess", "class_name": "run", "registered_name": None,
             "config": {}, "inbound_nodes": [{"args": [["touch", str(marker)]], "kwargs": {}}]}
    r = scan_path(write_keras(tmp_path / "m.keras", v3_model(layer)))
    (f,) = r.by_rule("MW211")
    assert f.severity.label == "critical"
    assert f.evidence == "subprocess.run"
    assert f.location.members == ("config.json",)
    assert not marker.exists()


def test_cve_2025_9906_enable_unsafe_deserialization_gadget(tmp_path, scan_path):
    # CVE-2025-9906: a Lambda whose function is keras.config.enable_unsafe_deserialization
    # turns safe_mode off from inside config.json.
    layer = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
             "config": {"name": "off", "function": {
                 "module": "keras.config", "class_name": "function",
                 "config": "enable_unsafe_deserialization", "registered_name": "function"}}}
    r = scan_path(write_keras(tmp_path / "m.keras", v3_model(layer)))
    assert [f.evidence for f in r.by_rule("MW212")] == [
        "keras.config.enable_unsafe_deserialization"]


def test_cve_2025_9906_second_stage_load_model_gadget(tmp_path, scan_path):
    # CVE-2025-9906, second stage of the published chain: a Lambda whose function is
    # keras.models.load_model, called with safe_mode=False on another archive.
    layer = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
             "config": {"name": "unsafe", "function": {
                 "module": "keras.models", "class_name": "function", "config": "load_model",
                 "registered_name": "function"}, "arguments": {"safe_mode": False}},
             "inbound_nodes": [{"args": [], "kwargs": {"inputs": "/tmp/other.keras"}}]}
    r = scan_path(write_keras(tmp_path / "m.keras", v3_model(layer)))
    assert [f.evidence for f in r.by_rule("MW212")] == ["keras.models.load_model"]


def test_cve_2025_8747_get_file_gadget(tmp_path, scan_path):
    # CVE-2025-8747: keras.utils.get_file named in a config downloads to any path.
    layer = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
             "config": {"name": "dl", "function": {"module": "keras.utils",
                                                   "class_name": "function",
                                                   "config": "get_file",
                                                   "registered_name": "function"},
                        "arguments": {"origin": "http://127.0.0.1/x", "fname": "/tmp/x"}}}
    r = scan_path(write_keras(tmp_path / "m.keras", v3_model(layer)))
    assert r.by_rule("MW212")


def test_cve_2026_1462_tfsmlayer_external_savedmodel(tmp_path, scan_path):
    # CVE-2026-1462: TFSMLayer loads an attacker-chosen SavedModel despite safe_mode.
    layer = {"module": "keras.layers", "class_name": "TFSMLayer", "registered_name": None,
             "config": {"name": "tfsm", "filepath": "/tmp/evil_savedmodel",
                        "call_endpoint": "serve"}}
    r = scan_path(write_keras(tmp_path / "m.keras", v3_model(layer)))
    (f,) = r.by_rule("MW213")
    assert f.evidence == "/tmp/evil_savedmodel"


def test_keras3_lambda_bytecode_in_archive(tmp_path, scan_path, marker):
    layer = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
             "config": {"name": "lam", "function": {"class_name": "__lambda__", "config": {
                 "code": lambda_code(marker), "defaults": None, "closure": None}}}}
    r = scan_path(write_keras(tmp_path / "m.keras", v3_model(layer)))
    (f,) = r.by_rule("MW210")
    assert f.severity.label == "critical" and "system" in f.details["names"]
    assert not marker.exists()


def test_custom_object_from_user_package_is_medium(tmp_path, scan_path):
    layer = {"module": "my_project.layers", "class_name": "Attention",
             "registered_name": "my_project>Attention", "config": {"name": "att"}}
    r = scan_path(write_keras(tmp_path / "m.keras", v3_model(layer)))
    assert {f.severity.label for f in r.by_rule("MW211")} == {"medium"}


def test_keras_archive_members_are_checked_and_scanned(tmp_path, scan_path, marker):
    class Payload:
        def __reduce__(self):
            return (__import__("os").system, (f"touch {marker}",))

    path = write_keras(tmp_path / "m.keras", v3_model(v3_dense("d")), {
        "../../escape.txt": b"x", "assets/obj.pkl": pickle.dumps(Payload())})
    r = scan_path(path)
    assert r.by_rule("MW252")  # zip-slip member name, through the archive helpers
    assert any(f.location.members == ("assets/obj.pkl",) and f.severity.label in
               ("high", "critical") for f in r.report.findings)
    assert not marker.exists()


def test_keras_config_nested_too_deep_is_inconclusive(tmp_path, scan_path):
    deep: dict = {"x": 1}
    for _ in range(600):
        deep = {"config": deep}
    r = scan_path(write_keras(tmp_path / "m.keras", deep))
    assert r.by_rule("MW214")
    assert r.report.inconclusive


# -- marshalled code ------------------------------------------------------------------------


def _m_str(s: str) -> bytes:
    return b"z" + bytes([len(s)]) + s.encode()


def _m_tuple(*items: bytes) -> bytes:
    return b")" + bytes([len(items)]) + b"".join(items)


def test_bytecode_names_from_a_python_3_8_layout():
    # A code object as CPython 3.8-3.10 marshals it (6 int fields, lnotab at the end): not
    # loadable by this interpreter's marshal, still readable here.
    from mlward._internal.scanners.keras.bytecode import code_names

    data = (b"c" + b"\x01\x00\x00\x00" * 6 + b"s\x04\x00\x00\x00\x74\x00\x53\x00"
            + _m_tuple(b"N", _m_str("id")) + _m_tuple(_m_str("os"), _m_str("system"))
            + _m_tuple(_m_str("x")) + _m_tuple() + _m_tuple() + _m_str("<keras>")
            + _m_str("<lambda>") + b"\x01\x00\x00\x00" + b"s\x00\x00\x00\x00")
    names = code_names(data)
    assert names.layout == "3.8-3.10"
    assert names.names == ["os", "system"] and names.strings == ["id"]


def test_bytecode_reader_survives_mutations():
    import random

    from mlward._internal.scanners.keras.bytecode import code_names
    from mlward.errors import FormatError

    code = compile("lambda x: [y.upper() for y in x] + list(map(str, x))", "<k>", "eval")
    data = marshal.dumps(code.co_consts[0])
    rng = random.Random(7)
    for _ in range(2000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        with contextlib.suppress(FormatError):
            code_names(bytes(mutated))


# -- Lambda layers in every encoding Keras accepts (issue 14.9) ----------------------------


def _code_bytes(marker: Path) -> bytes:
    source = f"lambda x: __import__('os').system('touch {marker}') or x"
    return marshal.dumps(compile(source, "<keras>", "eval").co_consts[0])


def _encodings(marker: Path) -> dict[str, object]:
    """Every shape of the ``function`` value that Keras' ``func_load`` turns into code."""
    b64 = base64.b64encode(_code_bytes(marker)).decode()
    wrapped = base64.encodebytes(_code_bytes(marker)).decode()  # func_dump's own: newlines
    raw = _code_bytes(marker).decode("latin-1")  # not base64: func_load falls back to it
    return {"string": b64, "list": [b64, None, None], "newlines": wrapped,
            "raw-unicode": raw, "raw-unicode-list": [raw, None, None],
            "keras3-dict": {"class_name": "__lambda__",
                            "config": {"code": b64, "defaults": None, "closure": None}},
            "keras3-dict-list": {"class_name": "__lambda__",
                                 "config": {"code": [b64, None, None]}}}


def _lambda_layer(function: object, *, function_type: str | None, key: str = "function",
                  class_name: str = "Lambda") -> dict:
    config: dict = {"name": "lam", key: function}
    if function_type is not None:
        config[f"{key}_type"] = function_type
    if key != "function":
        config["function"] = "identity"
    return {"class_name": class_name, "config": config}


_ENCODINGS = ["string", "list", "newlines", "raw-unicode", "raw-unicode-list", "keras3-dict",
              "keras3-dict-list"]


def _assert_code_found(r, marker: Path) -> None:
    found = r.by_rule("MW210")
    assert found, [f.message for f in r.report.findings]
    assert any(f.severity.label == "critical" and "system" in f.details.get("names", ())
               for f in found), [(f.message, f.details) for f in found]
    assert not marker.exists()


@pytest.mark.parametrize("encoding", _ENCODINGS)
@pytest.mark.parametrize("function_type", ["lambda", None])
def test_lambda_in_every_encoding_in_h5(tmp_path, scan_path, marker, encoding,
                                        function_type):
    layer = _lambda_layer(_encodings(marker)[encoding], function_type=function_type)
    r = scan_path(write_h5(tmp_path / "m.h5", sequential(dense("d"), layer)))
    _assert_code_found(r, marker)


@pytest.mark.parametrize("encoding", _ENCODINGS)
def test_lambda_in_every_encoding_in_keras_archive(tmp_path, scan_path, marker, encoding):
    layer = {"module": "keras.layers", "registered_name": None,
             **_lambda_layer(_encodings(marker)[encoding], function_type=None)}
    r = scan_path(write_keras(tmp_path / "m.keras", v3_model(layer)))
    _assert_code_found(r, marker)


@pytest.mark.parametrize("key", ["output_shape", "mask"])
def test_lambda_code_in_output_shape_and_mask(tmp_path, scan_path, marker, key):
    layer = _lambda_layer(_encodings(marker)["list"], function_type=None, key=key)
    r = scan_path(write_h5(tmp_path / "m.h5", sequential(layer)))
    _assert_code_found(r, marker)


def test_lambda_class_named_with_its_module_path(tmp_path, scan_path, marker):
    layer = _lambda_layer(_encodings(marker)["string"], function_type=None,
                          class_name="keras.layers.Lambda")
    r = scan_path(write_h5(tmp_path / "m.h5", sequential(layer)))
    _assert_code_found(r, marker)


def test_lambda_deep_in_functional_submodels_and_wrappers(tmp_path, scan_path, marker):
    lam = _lambda_layer(_encodings(marker)["list"], function_type=None)
    inner = {"class_name": "Functional", "config": {"name": "inner", "layers": [
        {"class_name": "TimeDistributed", "config": {"name": "td", "layer": {
            "class_name": "Bidirectional", "config": {"name": "bi", "layer": lam}}}}]}}
    outer = {"class_name": "Functional", "config": {"name": "outer", "layers": [
        dense("d"), {"class_name": "Sequential", "config": {"name": "s", "layers": [inner]}}]}}
    for path in (write_h5(tmp_path / "m.h5", outer),
                 write_keras(tmp_path / "m.keras", outer)):
        _assert_code_found(scan_path(path), marker)


def test_lambda_in_training_config_attribute(tmp_path, scan_path, marker):
    path = write_h5(tmp_path / "m.h5", sequential(dense("d")))
    with h5py.File(path, "a") as h:
        h.attrs["training_config"] = json.dumps({"loss": _lambda_layer(
            _encodings(marker)["list"], function_type=None)}).encode()
    _assert_code_found(scan_path(path), marker)


def test_named_function_lambda_type_is_not_code(tmp_path, scan_path):
    layer = _lambda_layer("relu", function_type="function")
    layer["config"]["module"] = "keras.activations"
    r = scan_path(write_h5(tmp_path / "m.h5", sequential(layer)))
    assert not r.by_rule("MW210")


# -- HDF5 structures that would hang the HDF5 library (issue 13.7) ----------------------------


def _zero_free_space_of_global_heap(data: bytearray) -> bytearray:
    """Set the size of the free-space object (index 0) of the first global heap collection
    to 0: libhdf5's parser then never moves past it."""
    import struct

    at = data.find(b"GCOL")
    size = struct.unpack_from("<Q", data, at + 8)[0]
    pos = at + 16
    while pos + 16 <= at + size:
        idx = struct.unpack_from("<H", data, pos)[0]
        length = struct.unpack_from("<Q", data, pos + 8)[0]
        if idx == 0:
            data[pos + 8:pos + 16] = bytes(8)
            return data
        pos += 16 + -(-length // 8) * 8
    raise AssertionError("no free space object")


def test_global_heap_that_would_hang_libhdf5(tmp_path):
    import mlward
    from mlward.settings import Settings

    path = write_h5(tmp_path / "m.h5", sequential(dense("d")))
    path.write_bytes(bytes(_zero_free_space_of_global_heap(bytearray(path.read_bytes()))))
    report = mlward.scan([path], settings=Settings(timeout=30))  # a hung worker is killed
    assert "MW001" not in {f.rule_id for f in report.findings}
    assert any(f.rule_id == "MW214" and "global heap" in f.message for f in report.findings)
    assert report.inconclusive
