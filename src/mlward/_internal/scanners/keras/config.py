"""Judging a Keras model config (the JSON in an HDF5 ``model_config`` or a .keras ``config.json``).

The config is walked as plain JSON at every depth (sub-models, wrappers such as
TimeDistributed or Bidirectional, functional graphs, compile configs), never deserialised.
What Keras would do with it decides what is flagged:

- Lambda layers with marshalled bytecode (Keras 2 lists, Keras 3 ``__lambda__`` objects): the
  bytecode is decoded far enough to list the names it uses (see :mod:`.bytecode`).
- ``module`` / ``registered_name`` references outside the Keras and TensorFlow namespaces:
  Keras imports them (CVE-2025-1550).
- Keras functions that undo safe loading when named in a config (CVE-2025-8747, CVE-2025-9906)
  and layers that load external files (TFSMLayer, CVE-2026-1462; vocabulary paths).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlward._internal.scanners.keras.bytecode import code_names
from mlward.errors import FormatError
from mlward.findings import Severity
from mlward.rules import KERAS_EXTERNAL_LOAD, KERAS_FOREIGN_OBJECT, KERAS_GADGET, KERAS_LAMBDA, Rule

MAX_DEPTH = 500
MAX_CODE_B64 = 16 << 20

KERAS_NAMESPACES = frozenset({"keras", "tf_keras", "tensorflow", "tf", "keras_hub", "keras_nlp",
                              "keras_cv", "keras_rs", "tensorflow_addons"})
# Top-level modules whose callables run commands, code, or reach files and the network.
DANGEROUS_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "builtins", "__builtin__", "sys", "shutil", "socket",
    "importlib", "runpy", "pickle", "marshal", "ctypes", "code", "codeop", "pty", "webbrowser",
    "requests", "urllib", "urllib3", "http", "ftplib", "smtplib", "telnetlib", "asyncio",
    "multiprocessing", "pathlib", "io", "tempfile", "platform", "signal", "operator",
    "functools", "types", "inspect", "dill", "cloudpickle", "joblib", "torch", "numpy",
})
# Names in marshalled bytecode that mean the code runs commands or code, or touches files.
DANGEROUS_CODE_NAMES = frozenset({
    "os", "system", "popen", "subprocess", "Popen", "run", "call", "check_call", "check_output",
    "exec", "eval", "compile", "__import__", "import_module", "open", "builtins", "__builtins__",
    "getattr", "globals", "socket", "urlopen", "remove", "unlink", "rmtree", "spawn", "execv",
    "execve", "fork", "loads", "load", "pickle", "marshal", "ctypes", "shutil", "requests",
})
# Keras functions that, named in a config, download files, load other models or turn
# safe_mode off.
KERAS_GADGETS = frozenset({
    "get_file", "load_model", "load_weights", "enable_unsafe_deserialization",
    "set_global_attribute", "model_from_json", "model_from_config", "deserialize_keras_object",
    "TFSMLayer", "load_img", "save_model",
})
LOOKUP_LAYERS = frozenset({"StringLookup", "IntegerLookup", "TextVectorization", "Hashing"})


@dataclass(frozen=True)
class ConfigIssue:
    rule: Rule
    message: str
    evidence: str
    path: str
    severity: Severity | None = None
    details: dict[str, Any] = field(default_factory=dict)


def analyse_config(config: Any) -> list[ConfigIssue]:
    """Everything in a parsed config that makes loading it unsafe."""
    issues: list[ConfigIssue] = []
    for path, node in _walk(config):
        if isinstance(node, dict):
            issues.extend(_check_object(node, path))
    return issues


def _walk(root: Any) -> Iterator[tuple[str, Any]]:
    """Every value with a JSON path, iteratively (no recursion limit to hit)."""
    stack: list[tuple[str, Any, int]] = [("$", root, 0)]
    while stack:
        path, node, depth = stack.pop()
        yield path, node
        if depth >= MAX_DEPTH:
            raise FormatError(f"config nested deeper than {MAX_DEPTH} levels at {path}")
        if isinstance(node, dict):
            stack.extend((f"{path}.{k}", v, depth + 1) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", v, depth + 1) for i, v in reversed(list(enumerate(node))))


def _check_object(obj: dict[str, Any], path: str) -> Iterator[ConfigIssue]:
    class_name = obj.get("class_name")
    config = obj.get("config")
    layer = config.get("name") if isinstance(config, dict) else None
    where = f" {layer!r}" if isinstance(layer, str) else ""
    module = obj.get("module")
    if isinstance(module, str):
        yield from _check_module(module, str(class_name), path)
    registered = obj.get("registered_name")
    if isinstance(registered, str) and ">" in registered:
        package = registered.split(">", 1)[0]
        yield from _check_module(package, registered.split(">", 1)[1], path)
    if class_name == "function" and isinstance(config, str) and config in KERAS_GADGETS:
        yield ConfigIssue(KERAS_GADGET, f"config calls {module}.{config}",
                          f"{module}.{config}", path)
    if class_name == "__lambda__" and isinstance(config, dict):
        yield _lambda_issue(_code_of(config.get("code")), path, "")
    if _is_lambda(class_name) and isinstance(config, dict):
        yield from _legacy_lambda(config, path, where)
    if class_name == "TFSMLayer" and isinstance(config, dict):
        filepath = config.get("filepath")
        yield ConfigIssue(KERAS_EXTERNAL_LOAD,
                          f"TFSMLayer{where} loads the external SavedModel {filepath!r}",
                          str(filepath), path)
    if class_name in LOOKUP_LAYERS and isinstance(config, dict):
        vocabulary = config.get("vocabulary")
        if isinstance(vocabulary, str):
            yield ConfigIssue(KERAS_EXTERNAL_LOAD,
                              f"{class_name}{where} reads its vocabulary from {vocabulary!r}",
                              vocabulary, path, severity=_path_severity(vocabulary))


def _check_module(module: str, name: str, path: str) -> Iterator[ConfigIssue]:
    top = module.split(".", 1)[0]
    if top in KERAS_NAMESPACES:
        return
    dangerous = top in DANGEROUS_MODULES
    yield ConfigIssue(
        KERAS_FOREIGN_OBJECT,
        f"config names {module}.{name}, outside Keras"
        + ("; Keras would import and call it" if dangerous else " (custom code)"),
        f"{module}.{name}", path, severity=Severity.CRITICAL if dangerous else Severity.MEDIUM)


def _is_lambda(class_name: object) -> bool:
    """``Lambda``, also written with its module (``keras.layers.Lambda``) or registered
    package (``keras>Lambda``)."""
    return isinstance(class_name, str) and re.split(r"[.>]", class_name)[-1] == "Lambda"


def _code_of(value: Any) -> Any:
    """The code string in a dumped function: the string itself, or the first item of the
    ``[code, defaults, closure]`` list that ``func_dump`` writes."""
    return value[0] if isinstance(value, (list, tuple)) and value else value


def _legacy_lambda(config: dict[str, Any], path: str, where: str) -> Iterator[ConfigIssue]:
    """``function``, ``output_shape`` and ``mask`` of a Lambda layer: code (a string, or a
    ``[code, defaults, closure]`` list) whatever ``<key>_type`` says or whether it is there,
    as long as it decodes to a code object; a function name when the type says so. Objects
    (Keras 3 ``__lambda__``) are judged where the walk meets them."""
    for key in ("function", "output_shape", "mask"):
        value, kind = config.get(key), config.get(f"{key}_type")
        if kind == "function" and isinstance(value, str):
            yield from _check_module(str(config.get("module", "__main__")), value, path)
            continue
        code = _code_of(value)
        if kind == "lambda" or (isinstance(code, str) and _decodes_to_code(code)):
            yield _lambda_issue(code, path, where)


def _decode(code: str) -> bytes:
    """The bytes Keras' ``func_load`` unmarshals: base64, or when the string is not base64,
    its raw-unicode-escape encoding."""
    try:
        return base64.b64decode(code.encode("ascii"))
    except (UnicodeEncodeError, binascii.Error):
        return code.encode("raw_unicode_escape")


def _decodes_to_code(code: str) -> bool:
    if len(code) > MAX_CODE_B64:
        return True
    try:
        code_names(_decode(code))
    except (ValueError, FormatError):
        return False
    return True


def _lambda_issue(code: Any, path: str, where: str) -> ConfigIssue:
    if not isinstance(code, str) or len(code) > MAX_CODE_B64:
        return ConfigIssue(KERAS_LAMBDA, f"Lambda layer{where} carries code mlward could not "
                           "decode", "", path)
    try:
        names = code_names(_decode(code))
    except (ValueError, FormatError):
        return ConfigIssue(KERAS_LAMBDA, f"Lambda layer{where} carries code mlward could not "
                           "decode", code[:60], path)
    used = list(dict.fromkeys(names.names))
    strings = list(dict.fromkeys(names.strings))
    dangerous = bool(DANGEROUS_CODE_NAMES.intersection(used + strings))
    shown = ", ".join(used[:20]) or "no global names"
    return ConfigIssue(
        KERAS_LAMBDA, f"Lambda layer{where} carries Python bytecode using: {shown}",
        ".".join(used[:8]), path, severity=Severity.CRITICAL if dangerous else None,
        details={"names": used[:200], "strings": [s[:200] for s in strings[:50]],
                 "bytecode_layout": names.layout})


def _path_severity(path: str) -> Severity:
    escapes = path.startswith(("/", "\\")) or ".." in path or "://" in path or ":\\" in path
    return Severity.HIGH if escapes else Severity.MEDIUM
