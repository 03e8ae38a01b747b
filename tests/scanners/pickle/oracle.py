"""What CPython's own unpickler resolves, without importing or running anything.

:class:`Oracle` is the C unpickler (``pickle.Unpickler``) with ``find_class`` and
``persistent_load`` replaced: every global it would import is recorded and answered with a
fresh stand-in class whose instances accept any call, attribute, item or state and do nothing.
``find_class`` never calls the original, so no module named in the data is ever imported.

:func:`resolved` loads a byte string the ways real programs load pickle files and returns the
union of the globals seen: one unpickler reused for back-to-back pickles (its memo carries
over) and a fresh unpickler per pickle, each over a plain ``BytesIO`` (no ``peek``: the C
unpickler reads frames as whole buffers, as ``torch.load`` does) and over a
``BufferedReader`` (with ``peek``, as ``pickle.load(open(...))`` does). Any exception ends a
load, as it would end the real one; what was resolved before it is kept.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import io
import pickle
import resource
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, ClassVar

MAX_PICKLES = 32
"""Back-to-back pickles loaded from one byte string at most."""
MEMORY = 1 << 30
"""Address space the oracle may add (a memo index of 2**32 makes the unpickler allocate it)."""


class Standin:
    """The value of every import and every call: anything done to it does nothing. A class
    ``find_class`` returns notes when it is called (instantiated), and so do its instances."""

    calls: ClassVar[list[tuple[str, str]] | None] = None
    imported: ClassVar[tuple[str, str]] = ("", "")

    def __new__(cls, *args: Any, **kwargs: Any) -> Standin:
        if cls.calls is not None:
            cls.calls.append(cls.imported)
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Standin:
        if self.calls is not None:
            self.calls.append(self.imported)
        return Standin()

    def __getattr__(self, name: str) -> Standin:  # append, extend, add...
        if name.startswith("__"):
            raise AttributeError(name)
        return Standin()

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass


class Oracle(pickle.Unpickler):
    """The C unpickler, recording what ``find_class`` is asked for instead of importing it."""

    def __init__(self, file: BinaryIO, found: list[tuple[str, str]],
                 calls: list[tuple[str, str]] | None = None) -> None:
        super().__init__(file, encoding="latin1")
        self.found = found
        self.calls = calls

    def find_class(self, module: str, name: str) -> type[Standin]:
        self.found.append((module, name))
        return type("Standin", (Standin,), {"calls": self.calls, "imported": (module, name)})

    def persistent_load(self, pid: object) -> Standin:
        return Standin()


class PyOracle(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """The same, over the pure-Python unpickler (``pickle._Unpickler``, which joblib uses)."""

    def __init__(self, file: BinaryIO, found: list[tuple[str, str]]) -> None:
        super().__init__(file, encoding="latin1")
        self.found = found

    find_class = Oracle.find_class
    persistent_load = Oracle.persistent_load


def resolved_by_pickle_py(data: bytes) -> set[tuple[str, str]]:
    """What ``pickle._Unpickler`` resolves loading ``data`` (the first pickle)."""
    found: list[tuple[str, str]] = []
    with contextlib.suppress(Exception):
        PyOracle(io.BytesIO(data), found).load()
    return set(found)


def _streams(data: bytes) -> Iterator[Callable[[], BinaryIO]]:
    yield lambda: io.BytesIO(data)
    yield lambda: io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]


@contextmanager
def _bounded_memory() -> Iterator[None]:
    """Let an absurd memo index fail with MemoryError instead of exhausting the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    limit = used + MEMORY
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def resolved(data: bytes) -> set[tuple[str, str]]:
    """Every (module, name) CPython's unpickler asks for while loading ``data``."""
    return load(data)[0]


def load(data: bytes) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """What CPython's unpickler resolves loading ``data``, and which of those it calls."""
    found: list[tuple[str, str]] = []
    calls: list[tuple[str, str]] = []
    with _bounded_memory(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # STRING's deprecated escapes, as a loader sees them
        for opener in _streams(data):
            reused = Oracle(opener(), found, calls)
            _load_all(lambda u=reused: u)
            stream = opener()
            _load_all(lambda s=stream: Oracle(s, found, calls))
    return set(found), set(calls)


def _load_all(unpickler: Callable[[], Oracle]) -> None:
    for _ in range(MAX_PICKLES):
        try:
            unpickler().load()
        except Exception:  # any failure ends the load, as it would for real
            return


def names(module: str, name: str) -> set[str]:
    """The qualified names a resolved global may be reported under: as written, and as
    ``find_class`` maps Python 2 names for protocols 0 to 2."""
    out = {f"{module}.{name}"}
    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped is not None:
        out.add(".".join(mapped))
    out.add(f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}")
    return out
