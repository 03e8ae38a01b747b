"""Deferred imports: keep start-up cheap by loading heavy machinery on first use.

Every ``mlward`` run imports the package, the scanners and the command it runs; what a run
may never need (cryptography, database drivers, the advisory index) loads when first used.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, AnyStr


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that imports ``package.<where[name]>`` the first
    time ``name`` is asked for."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(name)

    return __getattr__


def lazy_module(name: str) -> ModuleType:
    """``name``, imported on first attribute access (stdlib ``LazyLoader``)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


class _Pattern:
    """A regular expression compiled when first used: each attribute asked for (``search``,
    ``sub``...) is then kept on the instance, so that later uses cost what the compiled
    pattern's own do."""

    def __init__(self, pattern: str | bytes, flags: int) -> None:
        self._source: tuple[Any, int] = (pattern, flags)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not a pattern's (and never _source: no recursion)
            raise AttributeError(name)
        value = getattr(re.compile(*self._source), name)  # re caches the compiled pattern
        setattr(self, name, value)
        return value

    def __repr__(self) -> str:
        return f"lazy_pattern({self._source[0]!r}, {self._source[1]})"


if TYPE_CHECKING:
    def lazy_pattern(pattern: AnyStr, flags: int = 0) -> re.Pattern[AnyStr]: ...
else:
    def lazy_pattern(pattern, flags=0):
        """``re.compile(pattern, flags)``, done when the pattern is first used: compiling
        costs tens to hundreds of microseconds per pattern, which every run pays at import
        for patterns most runs never use (a module's redaction or dataset patterns)."""
        return _Pattern(pattern, flags)
