"""Which names a pickle may import: dangerous, safe, or unknown.

Loading a pickle calls what it imports, so an import is judged by what the name can do once
called with arguments the file chooses. Three classes:

- **dangerous**: the name runs code or commands, starts processes, reaches files or the
  network (constructors that open a file, socket or thread included: logging's handlers,
  ``http.client``, the XML parsers given a file name), loads native code, imports modules,
  evaluates code strings (directly or through one of the standard library's indirect
  evaluators), changes process state or deserializes nested data. A whole module is
  dangerous when most of what it exports is (``os``: any name under it), and so is every
  attribute path under a dangerous name (``os.path.join`` is under ``os``).
- **safe**: what real ML files contain: the rebuild helpers of torch and numpy, the
  containers and scalars of ``builtins`` and ``collections``, and scikit-learn estimators.
  Curated from files that the tests save with those libraries.
- **unknown**: everything else, reported by name (medium) so a person can vet it: a class
  from a module that is neither the standard library's nor listed here (``__main__``, a
  user's package) is this, unless its path reaches a dangerous module or interpreter
  internals (``__main__.os.system``, ``__main__.Model.__init__.__globals__``).

Dangerous is checked first, so nothing under a dangerous prefix can be made safe. A dotted
attribute path is also checked from each of its parts, since a module reached as an
attribute of another is the same module (``numpy`` + ``os.system`` is ``os.system``). Beyond
the tables: an attribute path through interpreter internals (``__globals__``,
``__subclasses__``...) is dangerous wherever it starts; so is a private top-level module of
the interpreter (``_io``, ``_posixsubprocess``: the C halves of public modules, and CPython's
test modules) unless it is on the safe list. Builtins that only compute on their arguments
(``len``, ``sorted``, exception classes), ``collections.abc`` types and ``__future__``
features are safe: what they call belongs to classes judged by their own names. Another
builtin is unknown (``print``).
"""

from __future__ import annotations

import builtins
import enum
import sys
from typing import NamedTuple

from mlward._internal.scanners.pickle.machine import TYPE_LOOKUPS
from mlward.findings import Severity


class Kind(enum.Enum):
    SAFE = "safe"
    UNKNOWN = "unknown"
    DANGEROUS = "dangerous"


class Classification(NamedTuple):
    kind: Kind
    severity: Severity
    reason: str


# Reasons, one per kind of harm; the severity says how directly the harm follows from a call.
_EXEC = (Severity.CRITICAL, "runs code or commands")
_PROC = (Severity.CRITICAL, "starts processes")
_EVAL = (Severity.CRITICAL, "evaluates code strings (an indirect evaluator)")
_IMPORT = (Severity.CRITICAL, "imports modules or loads code by name")
_NATIVE = (Severity.CRITICAL, "loads native code or touches raw memory")
_DESER = (Severity.CRITICAL, "deserializes nested data (itself able to run code)")
_ATTR = (Severity.HIGH, "reaches arbitrary attributes or calls (a gadget for code execution)")
_FILE = (Severity.HIGH, "reads or writes files")
_NET = (Severity.HIGH, "opens network connections")
_SYS = (Severity.HIGH, "changes interpreter or process state")
_READ = (Severity.HIGH, "reads files or URLs")
_OPENS = (Severity.HIGH, "opens files, sockets or threads when it is constructed")

# Dangerous modules and names: the entry and everything under it (submodules, attributes).
DANGEROUS_MODULES: dict[str, tuple[Severity, str]] = {
    # Processes and commands.
    "os": _EXEC, "posix": _EXEC, "nt": _EXEC, "subprocess": _PROC, "_posixsubprocess": _PROC,
    "pty": _PROC, "commands": _PROC, "popen2": _PROC, "multiprocessing": _PROC,
    "_winapi": _PROC, "concurrent": _PROC, "asyncio": _PROC, "_thread": _PROC,
    "threading": _PROC, "ensurepip": _PROC, "venv": _PROC, "distutils": _PROC,
    "setuptools": _PROC, "pip": _PROC, "platform": _PROC, "uuid._get_command_stdout": _PROC,
    "uuid._popen": _PROC, "_osx_support": _PROC, "_aix_support": _PROC, "webbrowser": _PROC,
    "antigravity": _PROC, "mailcap": _PROC, "imaplib": _PROC,  # IMAP4_stream runs a command
    # Code evaluation: the debuggers, profilers and REPL helpers whose run()/runctx()/
    # runsource()/runcode() take a code string (the published picklescan bypasses), and
    # modules that build code or classes (types.CodeType, ast, dis).
    "code": _EVAL, "codeop": _EVAL, "pdb": _EVAL, "bdb": _EVAL, "cProfile": _EVAL,
    "profile": _EVAL, "timeit": _EVAL, "trace": _EVAL, "doctest": _EVAL, "pydoc": _EVAL,
    "idlelib": _EVAL, "lib2to3": _EVAL, "rlcompleter": _EVAL, "types": _EVAL, "new": _EVAL,
    "ast": _EVAL, "dis": _EVAL, "unittest": _EVAL, "test": _EVAL, "logging.config": _EVAL,
    "_xxsubinterpreters": _EVAL, "_interpreters": _EVAL, "tkinter": _EVAL, "_tkinter": _EVAL,
    "turtle": _EVAL,
    # Importing by name.
    "runpy": _IMPORT, "importlib": _IMPORT, "imp": _IMPORT, "pkgutil": _IMPORT,
    "zipimport": _IMPORT, "site": _IMPORT, "sitecustomize": _IMPORT,
    "usercustomize": _IMPORT, "sysconfig": _IMPORT,
    # Native code and raw memory.
    "ctypes": _NATIVE, "_ctypes": _NATIVE, "cffi": _NATIVE, "mmap": _NATIVE,
    # Interpreter state.
    "sys": _SYS, "signal": _SYS, "readline": _SYS, "atexit": _SYS,
    # Attribute and call gadgets: with a safe-looking callable these reach anything.
    "operator": _ATTR, "_operator": _ATTR, "functools": _ATTR, "_functools": _ATTR,
    "weakref": _ATTR, "inspect": _ATTR, "gc": _ATTR,
    # Nested deserializers: the payload sits in an argument.
    "pickle": _DESER, "_pickle": _DESER, "cPickle": _DESER, "pickletools": _DESER,
    "shelve": _DESER, "marshal": _DESER, "dill": _DESER, "cloudpickle": _DESER,
    "jsonpickle": _DESER, "yaml": _DESER,
    # ML libraries: their loaders (which unpickle again), code generators, native
    # extensions, and the modules with published bypasses (torch.utils.*, numpy.f2py).
    "joblib.load": _DESER, "joblib.numpy_pickle.load": _DESER,
    "joblib.numpy_pickle.NumpyUnpickler": _DESER, "joblib.numpy_pickle_compat": _DESER,
    "joblib.numpy_pickle_utils": _FILE, "joblib.parallel": _PROC, "joblib.Parallel": _PROC,
    "joblib.memory": _FILE, "joblib.Memory": _FILE, "joblib.externals": _DESER,
    "joblib._memmapping_reducer": _FILE, "joblib.pool": _PROC, "joblib.executor": _PROC,
    "joblib._parallel_backends": _PROC,
    "torch.load": _DESER, "torch.serialization.load": _DESER,
    "torch.serialization._load": _DESER, "torch.serialization._legacy_load": _DESER,
    "torch.hub": _DESER,
    "torch.package": _DESER, "torch.jit": _DESER, "torch.storage._load_from_bytes": _DESER,
    "torch.utils.data.datapipes": _DESER, "torch.utils._config_module": _DESER,
    "torch.fx": _EVAL, "torch._dynamo": _EVAL, "torch._inductor": _EVAL,
    "torch.compile": _EVAL, "torch.testing": _EVAL, "torch.utils.benchmark": _EVAL,
    "torch.utils.bottleneck": _EVAL, "torch.utils.collect_env": _PROC,
    "torch.multiprocessing": _PROC, "torch.utils.cpp_extension": _NATIVE,
    "torch.ops": _NATIVE, "torch.classes": _NATIVE, "torch._C": _NATIVE,
    "torch.distributed": _NET, "torch.backends": _SYS,
    "numpy.load": _DESER, "numpy.lib.npyio": _DESER, "numpy.lib._npyio_impl": _DESER,
    "numpy.lib.format": _DESER, "numpy.lib._format_impl": _DESER, "numpy.testing": _EVAL,
    "numpy.f2py": _PROC, "numpy.distutils": _PROC, "numpy.ctypeslib": _NATIVE,
    "numpy.fromfile": _FILE, "numpy.memmap": _FILE, "numpy.loadtxt": _FILE,
    "numpy.genfromtxt": _FILE, "numpy.save": _FILE, "numpy.savez": _FILE,
    "numpy.savetxt": _FILE, "numpy.tofile": _FILE, "numpy.DataSource": _NET,
    "numpy.lib._datasource": _NET, "sklearn.utils._testing": _EVAL,
    "keras.models": _DESER, "keras.saving": _DESER, "keras.src.saving": _DESER,
    "keras.utils": _NET,  # get_file downloads
    "tensorflow": (Severity.HIGH, "tensorflow ops read and write files and run Python"),
    "mlflow.projects": _PROC, "mlflow.pyfunc": _DESER, "mlflow.pytorch": _DESER,
    "mlflow.sklearn": _DESER, "pandas.io": _READ, "pandas.read_pickle": _DESER,
    **{f"pandas.read_{kind}": _READ for kind in (
        "csv", "table", "fwf", "json", "html", "xml", "excel", "parquet", "orc", "feather",
        "hdf", "sql", "sql_query", "sql_table", "sas", "spss", "stata", "clipboard")},
    # Files.
    "io": _FILE, "_io": _FILE, "codecs.open": _FILE, "fileinput": _FILE, "pathlib": _FILE,
    "shutil": _FILE, "tempfile": _FILE, "glob": _FILE, "zipfile": _FILE, "tarfile": _FILE,
    "gzip": _FILE, "bz2": _FILE, "lzma": _FILE, "dbm": _FILE, "sqlite3": _FILE,
    "posixpath": _FILE, "ntpath": _FILE, "genericpath": _FILE, "linecache": _FILE,
    "filecmp": _FILE, "netrc": _FILE, "mimetypes": _FILE, "tabnanny": _FILE,
    "py_compile": _FILE, "compileall": _FILE, "zipapp": _FILE,
    # Network.
    "socket": _NET, "_socket": _NET, "ssl": _NET, "socketserver": _NET, "http": _NET,
    "httplib": _NET, "urllib": _NET, "urllib2": _NET, "urllib3": _NET, "requests": _NET,
    "httpx": _NET, "aiohttp": _NET, "ftplib": _NET, "smtplib": _NET, "smtpd": _NET,
    "poplib": _NET, "nntplib": _NET, "telnetlib": _NET, "xmlrpc": _NET, "xmlrpclib": _NET,
    "SimpleXMLRPCServer": _NET, "asyncore": _NET, "asynchat": _NET, "selectors": _NET,
    "select": _NET,
    # Security scanners: a pickle that reaches them means to switch them off.
    "fickling": _SYS, "picklescan": _SYS, "modelscan": _SYS, "modelaudit": _SYS,
    "mlward": _SYS,
    # Constructors that open files, sockets or threads: logging's handlers, the audio and
    # mailbox readers, the standard library's parsers given a file name.
    "logging.FileHandler": _OPENS, "logging.basicConfig": _OPENS, "logging.handlers": _OPENS,
    "wave": _FILE, "aifc": _FILE, "sunau": _FILE, "chunk": _FILE, "mailbox": _FILE,
    "uu": _FILE, "binhex": _FILE, "tokenize.open": _READ, "imghdr": _READ, "sndhdr": _READ,
    "modulefinder": _READ, "pyclbr": _READ, "pstats": _DESER,
    "xml.etree.ElementTree.parse": _READ, "xml.etree.ElementTree.iterparse": _READ,
    "xml.etree.ElementTree.ElementTree": _READ, "xml.etree.ElementInclude": _READ,
    "xml.etree.cElementTree": _READ, "xml.dom.minidom.parse": _READ, "xml.dom.pulldom": _READ,
    "xml.sax": _READ, "wsgiref": _NET,
    # Process state: resource limits, signals and tracing hooks, the pickle registries, codec
    # search functions, the terminal.
    "resource": _SYS, "syslog": _SYS, "faulthandler": _SYS, "tracemalloc": _SYS,
    "cgitb": _SYS, "gettext.install": _SYS, "copyreg.pickle": _SYS,
    "copyreg.add_extension": _SYS, "copyreg.remove_extension": _SYS,
    "copyreg.clear_extension_cache": _SYS, "copyreg.constructor": _SYS, "codecs.register": _SYS,
    "fcntl": _SYS, "termios": _SYS, "tty": _SYS, "curses": _SYS, "getpass": _SYS,
    # Third-party: remote shells, cloud storage, databases, process runners, REPLs and
    # debuggers, expression evaluators, and the C halves of dangerous libraries.
    "paramiko": _NET, "fabric": _PROC, "invoke": _PROC, "boto3": _NET, "botocore": _NET,
    "fsspec": _NET, "s3fs": _NET, "gcsfs": _NET, "smart_open": _NET, "redis": _NET,
    "pymongo": _NET, "psycopg2": _NET, "git": _PROC, "docker": _PROC, "sh": _PROC,
    "plumbum": _PROC, "pexpect": _PROC, "IPython": _EVAL, "jinja2": _EVAL, "pydevd": _EVAL,
    "debugpy": _EVAL, "_pydevd_bundle": _EVAL, "_pydev_bundle": _EVAL,
    "numexpr.evaluate": _EVAL, "sympy.sympify": _EVAL, "sympy.parsing": _EVAL,
    "pandas.eval": _EVAL, "asteval": _EVAL, "_cffi_backend": _NATIVE, "_yaml": _DESER,
}

# builtins is not dangerous as a whole (its containers are what data is made of): its
# dangerous names one by one.
DANGEROUS_NAMES: dict[str, tuple[Severity, str]] = {
    "builtins.eval": _EVAL, "builtins.exec": _EVAL, "builtins.compile": _EVAL,
    "builtins.execfile": _EVAL, "builtins.input": _SYS, "builtins.breakpoint": _EVAL,
    "builtins.help": _EVAL, "builtins.open": _FILE, "builtins.file": _FILE,
    "builtins.getattr": _ATTR, "builtins.setattr": _ATTR, "builtins.delattr": _ATTR,
    "builtins.globals": _ATTR, "builtins.locals": _ATTR, "builtins.vars": _ATTR,
    "builtins.type": _EVAL, "builtins.super": _ATTR, "builtins.apply": _ATTR,
    "builtins.memoryview": _NATIVE, "builtins.exit": _SYS, "builtins.quit": _SYS,
    "builtins.reload": _IMPORT, "builtins.__import__": _IMPORT,
    "builtins.classmethod": _ATTR, "builtins.staticmethod": _ATTR, "builtins.property": _ATTR,
}

# Names real ML files import, all of them constructors of plain data.
SAFE_NAMES: frozenset[str] = frozenset({
    # builtins: containers and scalars only.
    "builtins.set", "builtins.frozenset", "builtins.bytearray", "builtins.bytes",
    "builtins.complex", "builtins.slice", "builtins.range", "builtins.list", "builtins.dict",
    "builtins.tuple", "builtins.int", "builtins.float", "builtins.bool", "builtins.str",
    "builtins.Ellipsis", "builtins.NotImplemented",
    # builtins that compute on their arguments and run nothing else (what they call on
    # their arguments belongs to classes the pickle imports, judged by name themselves).
    *(f"builtins.{name}" for name in (
        "abs", "aiter", "all", "anext", "any", "ascii", "bin", "callable", "chr", "dir",
        "divmod", "enumerate", "filter", "format", "hasattr", "hash", "hex", "id", "isinstance",
        "issubclass", "iter", "len", "map", "max", "min", "next", "oct", "ord", "pow", "repr",
        "reversed", "round", "sorted", "sum", "zip")),
    # Exception classes: constructing one stores its arguments.
    *(f"builtins.{name}" for name, value in vars(builtins).items()
      if isinstance(value, type) and issubclass(value, BaseException)),
    # The base class copyreg._reconstructor names in protocol 0-1 pickles of plain objects.
    "builtins.object",
    # Protocol 0-2 helpers of the pickle module itself.
    "copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__",
    "_codecs.encode", "codecs.encode",
    # collections and friends.
    "collections.OrderedDict", "collections.defaultdict", "collections.Counter",
    "collections.deque", "datetime.datetime", "datetime.date",
    "datetime.time", "datetime.timedelta", "datetime.timezone", "decimal.Decimal",
    "fractions.Fraction", "uuid.UUID", "enum.Enum",
    # numpy reconstructors, scalar types and random generator state.
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.ndarray",
    "numpy.dtype", "numpy.core.multiarray.dtype", "numpy._core.multiarray.dtype",
    "numpy.ma.core._mareconstruct", "numpy.ma.core.MaskedArray", "numpy.ma.MaskedArray",
    "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer",
    "numpy.random._pickle.__randomstate_ctor", "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor", "numpy.random.mtrand.RandomState",
    "numpy.random._generator.Generator", "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64", "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._philox.Philox", "numpy.random._sfc64.SFC64",
    "numpy.random.bit_generator.SeedSequence",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
    *(f"numpy.{t}" for t in (
        "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64", "longdouble", "complex64", "complex128",
        "clongdouble", "str_", "bytes_", "void", "datetime64", "timedelta64", "intc",
        "uintc", "intp", "uintp", "object_")),
    # torch checkpoint rebuild helpers, storages and dtypes.
    "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3", "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state", "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._tensor._rebuild_from_type_v2", "torch.serialization._get_layout", "torch.Size",
    "torch.device", "torch.dtype",
    "torch.Tensor", "torch.nn.parameter.Parameter", "torch.storage.UntypedStorage",
    "torch.storage.TypedStorage", "torch.per_tensor_affine", "torch.strided",
    "torch.sparse_coo", "torch.contiguous_format", "torch.channels_last",
    "torch.preserve_format", "torch.float16", "torch.float32", "torch.float64",
    "torch.bfloat16", "torch.int8", "torch.int16", "torch.int32", "torch.int64",
    "torch.uint8", "torch.bool", "torch.complex64", "torch.complex128",
    # Joblib's array wrapper: it only carries shape and dtype (the array bytes follow).
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    # pandas DataFrames and Series (``to_pickle``): the containers, their dtypes, arrays and
    # block managers, and the unpickle helpers pandas and pyarrow name for them. Listed one by
    # one: other pandas classes have side effects when built (ExcelWriter and HDFStore open
    # files), so no prefix of pandas is safe.
    *(f"{module}.{name}" for module in ("pandas", "pandas.core.api") for name in (
        "DataFrame", "Series", "Index", "RangeIndex", "MultiIndex", "DatetimeIndex",
        "TimedeltaIndex", "PeriodIndex", "CategoricalIndex", "IntervalIndex", "Categorical",
        "CategoricalDtype", "DatetimeTZDtype", "PeriodDtype", "IntervalDtype", "SparseDtype",
        "StringDtype", "ArrowDtype", "BooleanDtype", "Int8Dtype", "Int16Dtype", "Int32Dtype",
        "Int64Dtype", "UInt8Dtype", "UInt16Dtype", "UInt32Dtype", "UInt64Dtype",
        "Float32Dtype", "Float64Dtype", "Timestamp", "Timedelta", "Period", "Interval")),
    "pandas.core.frame.DataFrame", "pandas.core.series.Series",
    "pandas.core.indexes.base.Index", "pandas.core.indexes.range.RangeIndex",
    "pandas.core.indexes.multi.MultiIndex", "pandas.core.indexes.datetimes.DatetimeIndex",
    "pandas.core.indexes.base._new_Index",
    *(f"{module}.{name}" for module in ("pandas.arrays", "pandas.core.arrays") for name in (
        "DatetimeArray", "TimedeltaArray", "PeriodArray", "IntegerArray", "FloatingArray",
        "BooleanArray", "StringArray", "ArrowStringArray", "ArrowExtensionArray",
        "IntervalArray", "SparseArray", "NumpyExtensionArray", "PandasArray", "Categorical")),
    "pandas.core.internals.managers.BlockManager",
    "pandas.core.internals.managers.SingleBlockManager",
    "pandas.core.internals.blocks.new_block", "pandas._libs.internals._unpickle_block",
    "pandas._libs.arrays.__pyx_unpickle_NDArrayBacked",
    "pandas._libs.tslibs.timestamps._unpickle_timestamp",
    "pandas._libs.tslibs.timedeltas._timedelta_unpickle",
    "pandas._libs.tslibs.nattype._nat_unpickle", "pandas._libs.tslibs.nattype.__nat_unpickle",
    "pyarrow.lib._restore_array", "pyarrow.lib.type_for_alias", "pyarrow.lib.py_buffer",
    "pandas.NA", "pandas._libs.missing.NA", "pyarrow.lib.NA", "pyarrow.NA",
    # scipy sparse matrices (lower-case class names).
    "scipy.sparse._csr.csr_matrix", "scipy.sparse._csc.csc_matrix",
    "scipy.sparse._coo.coo_matrix", "scipy.sparse._csr.csr_array",
    "scipy.sparse._csc.csc_array", "scipy.sparse._coo.coo_array",
})

# Module prefixes whose CamelCase names (classes) are safe to construct: torch modules and
# storages, estimators and their helper objects. Functions in them stay unknown.
SAFE_CLASS_PREFIXES: tuple[str, ...] = (
    "torch.nn.modules.", "sklearn.", "xgboost.sklearn.", "xgboost.core.",
    "lightgbm.sklearn.", "lightgbm.basic.", "scipy.sparse.",
)
SAFE_TORCH_STORAGES = "Storage"

# Attribute names that escape into interpreter internals from any object.
_DUNDER_GADGETS = frozenset({
    "__globals__", "__builtins__", "__dict__", "__class__", "__subclasses__", "__bases__",
    "__mro__", "__code__", "__closure__", "__getattribute__", "__getattr__", "__import__",
    "__loader__", "__spec__", "__self__", "__func__", "__reduce__", "__reduce_ex__",
    "__setstate__", "__init__", "__new__", "__call__", "__module__", "__base__",
})


def classify(module: str, name: str) -> Classification:
    """Classify the reference ``module.name`` (``name`` may be a dotted attribute path)."""
    qual = f"{module}.{name}"
    if qual in TYPE_LOOKUPS:
        return Classification(Kind.SAFE, Severity.INFO,
                              "looks up a type by name; the type it returns is judged instead")
    attrs = name.split(".")
    hit = _dangerous_prefix(qual.split("."))
    for start in range(len(attrs)):  # a module reached as an attribute: numpy + os.system
        hit = hit or _dangerous_prefix(attrs[start:])
    if hit is not None:
        return Classification(Kind.DANGEROUS, hit[0], hit[1])
    if any(a in _DUNDER_GADGETS for a in attrs):
        return Classification(Kind.DANGEROUS, Severity.CRITICAL,
                              "walks interpreter internals through an attribute path")
    if module in _INERT_MODULES and len(attrs) == 1:
        return Classification(Kind.SAFE, Severity.INFO, "an abstract type or a feature flag")
    if _private_internal(module) and qual not in SAFE_NAMES:
        return Classification(Kind.DANGEROUS, Severity.HIGH,
                              "a private interpreter module (C internals behind the public API)")
    if module == "builtins" and qual not in SAFE_NAMES:
        return Classification(Kind.UNKNOWN, Severity.MEDIUM,
                              "a builtin outside the containers and scalars real data uses")
    if qual in SAFE_NAMES or _safe_class(module, attrs):
        return Classification(Kind.SAFE, Severity.INFO, "constructs plain data")
    return Classification(Kind.UNKNOWN, Severity.MEDIUM, "not on the list of known-safe names")


_INERT_MODULES = frozenset({"collections.abc", "_collections_abc", "__future__"})
"""Modules whose every name runs nothing: abstract base classes (instantiating one fails),
``__future__`` feature flags (not callable)."""


def _private_internal(module: str) -> bool:
    """A private top-level module of the interpreter (``_io``, ``_posixsubprocess``): the C
    half of a public module, or one of CPython's test modules. A user's own private module
    (``_models``) is not one: it is unknown, like any module mlward does not know."""
    top = module.partition(".")[0]
    return top[:1] == "_" and top[:2] != "__" and (
        top in sys.stdlib_module_names or top.startswith(("_test", "_xx")))


def is_known_module(module: str) -> bool:
    """Whether ``module`` is the standard library's or one the policy lists: a name from
    any other comes from the program that wrote the file (``__main__``, a user package)."""
    top = module.partition(".")[0]
    return top in sys.stdlib_module_names or top in _KNOWN_TOPS


def _dangerous_prefix(parts: list[str]) -> tuple[Severity, str] | None:
    """The dangerous entry that the dotted path ``parts`` starts with, if any."""
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        hit = DANGEROUS_MODULES.get(prefix) or DANGEROUS_NAMES.get(prefix)
        if hit is not None:
            return hit
    return None


def _safe_class(module: str, attrs: list[str]) -> bool:
    if len(attrs) != 1 or not attrs[0][:1].isupper():
        return False
    if module == "torch" and attrs[0].endswith(SAFE_TORCH_STORAGES):
        return True
    return any(f"{module}.".startswith(p) for p in SAFE_CLASS_PREFIXES)


_KNOWN_TOPS = frozenset(
    name.partition(".")[0]
    for name in (*DANGEROUS_MODULES, *DANGEROUS_NAMES, *SAFE_NAMES, *SAFE_CLASS_PREFIXES))
