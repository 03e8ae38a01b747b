"""The policy: dangerous, safe and unknown names."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlward._internal.scanners.pickle.policy import (
    DANGEROUS_MODULES,
    DANGEROUS_NAMES,
    SAFE_NAMES,
    Kind,
    classify,
)
from mlward.findings import Severity


def _kind(qual: str) -> Kind:
    module, _, name = qual.partition(".")
    return classify(module, name).kind


@pytest.mark.parametrize("qual", [
    "os.system", "posix.system", "nt.system", "subprocess.Popen", "subprocess.check_output",
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.getattr",
    "builtins.__import__", "builtins.open", "builtins.setattr", "builtins.globals",
    "importlib.import_module", "runpy._run_code", "pickle.loads", "_pickle.loads",
    "marshal.loads", "shelve.open", "socket.create_connection", "ctypes.CDLL",
    "webbrowser.open", "pty.spawn", "_posixsubprocess.fork_exec", "shutil.rmtree",
    "torch.load", "torch.hub.load", "numpy.load", "numpy.testing._private.utils.runstring",
    "functools.partial", "operator.attrgetter", "operator.methodcaller", "pkgutil.resolve_name",
])
def test_dangerous(qual: str):
    c = classify(*qual.split(".", 1))
    assert c.kind is Kind.DANGEROUS
    assert c.severity >= Severity.HIGH
    assert c.reason


@pytest.mark.parametrize("qual", [
    "os.path.join",  # anything under a dangerous module
    "subprocess.Popen.__init__",
    "torch.serialization.load",
])
def test_everything_under_a_dangerous_name_is_dangerous(qual: str):
    assert _kind(qual) is Kind.DANGEROUS


@pytest.mark.parametrize(("module", "name"), [
    ("numpy", "os.system"), ("torch.serialization", "pickle.loads"), ("numpy", "os"),
    ("sklearn.base", "copy.deepcopy.__globals__"), ("collections", "abc.sys.modules"),
])
def test_modules_reached_as_attributes(module: str, name: str):
    # numpy imports os, so numpy + "os.system" resolves to os.system itself.
    assert classify(module, name).kind is Kind.DANGEROUS


def test_dotted_name_resolution_prefixes():
    # The module is "torch" but the attribute path reaches torch.hub.
    assert classify("torch", "hub.load").kind is Kind.DANGEROUS
    assert classify("numpy", "testing._private.utils.runstring").kind is Kind.DANGEROUS


@pytest.mark.parametrize(("module", "name"), [
    ("collections", "OrderedDict.__init__.__globals__"),
    ("torch._utils", "_rebuild_tensor_v2.__globals__"),
    ("sklearn.pipeline", "Pipeline.__reduce_ex__"),
])
def test_attribute_paths_into_interpreter_internals(module: str, name: str):
    c = classify(module, name)
    assert c.kind is Kind.DANGEROUS and c.severity == Severity.CRITICAL


@pytest.mark.parametrize("name", [
    "set", "frozenset", "bytearray", "complex", "slice", "range", "list", "dict", "tuple",
])
def test_builtins_containers_and_scalars_are_safe(name: str):
    assert classify("builtins", name).kind is Kind.SAFE


@pytest.mark.parametrize("name", ["print", "__build_class__", "copyright", "license"])
def test_other_builtins_are_unknown(name: str):
    assert classify("builtins", name).kind is Kind.UNKNOWN


@pytest.mark.parametrize("name", [
    "len", "isinstance", "issubclass", "abs", "min", "max", "sum", "sorted", "zip",
    "enumerate", "iter", "next", "map", "repr", "object", "int", "ValueError", "KeyError",
    "OSError", "StopIteration",
])
def test_builtins_that_run_nothing_are_safe(name: str):
    # They compute on their arguments; what those arguments are is judged by its own name.
    assert classify("builtins", name).kind is Kind.SAFE


@pytest.mark.parametrize(("module", "name"), [
    ("collections.abc", "Mapping"), ("collections.abc", "Sequence"),
    ("_collections_abc", "MutableMapping"), ("__future__", "annotations"),
    ("__future__", "division"),
])
def test_abstract_types_and_feature_flags_are_safe(module: str, name: str):
    assert classify(module, name).kind is Kind.SAFE


def test_a_path_through_an_abstract_type_is_still_walked():
    assert classify("collections.abc", "Mapping.__subclasses__").kind is Kind.DANGEROUS


@pytest.mark.parametrize("qual", [
    "logging.FileHandler", "logging.basicConfig", "logging.handlers.RotatingFileHandler",
    "logging.handlers.TimedRotatingFileHandler", "logging.handlers.WatchedFileHandler",
    "logging.handlers.SocketHandler", "logging.handlers.DatagramHandler",
    "logging.handlers.SysLogHandler", "logging.handlers.SMTPHandler",
    "logging.handlers.HTTPHandler", "logging.handlers.QueueListener",
    "logging.handlers.NTEventLogHandler", "http.client.HTTPConnection",
    "http.client.HTTPSConnection", "ftplib.FTP", "smtplib.SMTP", "telnetlib.Telnet",
    "socketserver.TCPServer", "multiprocessing.connection.Client",
    "multiprocessing.connection.Listener", "tempfile.NamedTemporaryFile",
    "zipfile.ZipFile", "tarfile.open", "shelve.open", "dbm.open", "sqlite3.connect", "mmap.mmap",
    "wave.open", "aifc.open", "sunau.open", "mailbox.mbox", "xml.etree.ElementTree.parse",
    "xml.dom.minidom.parse", "xml.sax.parse", "wsgiref.simple_server.make_server",
    "pstats.Stats", "uu.decode", "tokenize.open", "resource.setrlimit", "copyreg.pickle",
    "copyreg.add_extension", "faulthandler.enable", "codecs.register",
])
def test_constructors_that_open_files_or_sockets_are_dangerous(qual: str):
    module, name = qual.rsplit(".", 1)
    c = classify(module, name)
    assert c.kind is Kind.DANGEROUS and c.severity >= Severity.HIGH, qual


@pytest.mark.parametrize(("module", "name"), [
    ("__main__", "MyModel"), ("_models", "Net"), ("my_project.nets", "ResNetish"),
    ("__mp_main__", "Trainer"),
])
def test_classes_from_a_users_modules_are_unknown_not_dangerous(module: str, name: str):
    c = classify(module, name)
    assert c.kind is Kind.UNKNOWN and c.severity == Severity.MEDIUM


@pytest.mark.parametrize(("module", "name"), [
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch", "FloatStorage"), ("torch", "BFloat16Storage"),
    ("torch.nn.modules.linear", "Linear"), ("collections", "OrderedDict"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "dtype"), ("numpy", "ndarray"), ("numpy", "float64"),
    ("sklearn.ensemble._forest", "RandomForestClassifier"), ("sklearn.tree._tree", "Tree"),
    ("xgboost.sklearn", "XGBClassifier"), ("lightgbm.sklearn", "LGBMRegressor"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"), ("_codecs", "encode"),
])
def test_safe(module: str, name: str):
    assert classify(module, name).kind is Kind.SAFE


@pytest.mark.parametrize(("module", "name"), [
    ("__main__", "MyModel"), ("mypackage.models", "Net"), ("torch", "tensor"),
    ("sklearn.utils", "some_function"), ("numpy", "frombuffer"), ("logging", "getLogger"),
])
def test_unknown(module: str, name: str):
    c = classify(module, name)
    assert c.kind is Kind.UNKNOWN and c.severity == Severity.MEDIUM


def test_private_top_level_modules_are_dangerous():
    assert classify("_io", "FileIO").kind is Kind.DANGEROUS
    assert classify("_interpreters", "run_string").kind is Kind.DANGEROUS
    assert classify("_codecs", "encode").kind is Kind.SAFE  # what protocol 2 uses for bytes


def test_no_safe_name_hides_under_a_dangerous_prefix():
    dangerous = set(DANGEROUS_MODULES) | set(DANGEROUS_NAMES)
    for qual in SAFE_NAMES:
        parts = qual.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        assert not prefixes & dangerous, qual
        module, name = qual.rsplit(".", 1)
        assert classify(module, name).kind is Kind.SAFE, qual


def test_safe_classes_in_estimator_packages_exclude_functions():
    assert classify("sklearn.linear_model._logistic", "LogisticRegression").kind is Kind.SAFE
    assert classify("sklearn.linear_model._logistic", "_logistic_regression_path").kind \
        is Kind.UNKNOWN
    assert classify("sklearn.utils._testing", "TempMemmap").kind is Kind.DANGEROUS


def test_a_user_class_is_reported_with_its_module(tmp_path: Path):
    # A class pickled from a user's script: a warning naming the module it needs, not a
    # dangerous name.
    import mlward

    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04\x8c\x08__main__\x8c\x07MyModel\x93)\x81.")
    report = mlward.scan([path])
    (f,) = report.findings
    assert f.rule_id == "MW102" and f.severity == Severity.MEDIUM
    assert "module __main__ is neither the standard library's" in f.message
    assert f.details["module"] == "__main__"
