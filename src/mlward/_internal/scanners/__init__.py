"""Scanners, one module or package per format family.

:func:`load_scanners` imports the built-in families (each registers itself on import) and any
third-party scanner published under the ``mlward.scanners`` entry-point group. The families
in :data:`TEXT_ONLY` are imported with the first file that could be text: a worker that
sees only model weights never loads them.
"""

from __future__ import annotations

import importlib
import os
import sys

from mlward._internal.scanners.interface import (
    DIRECTORY_SCANNERS,
    SCANNERS,
    DirectoryScanner,
    Scanner,
)

# Built-in families. Scanners sort by their ``priority``; among equal priorities, by this
# order (then the order a family defines them), whatever order the families were imported in.
BUILTIN = [
    "mlward._internal.scanners.pickle",
    "mlward._internal.scanners.archive",
    "mlward._internal.scanners.torch",
    "mlward._internal.scanners.numpy",
    "mlward._internal.scanners.keras",
    "mlward._internal.scanners.tensorflow",
    "mlward._internal.scanners.onnx",
    "mlward._internal.scanners.gguf",
    "mlward._internal.scanners.safetensors",
    "mlward._internal.scanners.repository",
    "mlward._internal.scanners.configs",
    "mlward._internal.scanners.deps",
    "mlward._internal.scanners.devtools",
    "mlward._internal.scanners.notebook",
    "mlward._internal.scanners.python",
    "mlward._internal.scanners.secrets.text",
    "mlward._internal.scanners.datasets",
    "mlward._internal.cloud.iac",
]

TEXT_ONLY = frozenset({
    "mlward._internal.scanners.configs",
    "mlward._internal.scanners.deps",
    "mlward._internal.scanners.devtools",
    "mlward._internal.scanners.python",
    "mlward._internal.cloud.iac",
})
"""Families whose every scanner declines a file whose head (:meth:`Source.head`) holds a NUL
byte: each sniff checks that first (``looks_like_text``, or a NUL test of its own; a test
holds them to it). They are imported with the first file whose head holds none, so that the
fork server, and a worker that sees only binary files, never pays for them."""

_loaded = False
_text_loaded = False
_registry: tuple[list[Scanner], list[DirectoryScanner]] = ([], [])
"""The registries as last seen (copies: a scanner registered or removed since makes them
differ from the live lists)."""
_ordered: tuple[list[Scanner], list[DirectoryScanner]] = ([], [])
"""What :func:`load_scanners` made of :data:`_registry`: the scanners sorted, and the copy of
the folder-level ones."""


def load_scanners(*, text: bool = False) -> tuple[list[Scanner], list[DirectoryScanner]]:
    """All registered scanners, most specific first, and the folder-level ones (every work
    unit asks: the answer is kept while the registries stay the same). ``text``: the
    :data:`TEXT_ONLY` families too (once loaded, they stay)."""
    global _loaded, _text_loaded, _registry, _ordered
    if not _loaded:
        for module in BUILTIN:
            if module not in TEXT_ONLY:
                importlib.import_module(module)
        if _plugins_declared():
            from importlib.metadata import entry_points

            for ep in entry_points(group="mlward.scanners"):
                ep.load()
        _loaded = True
    if text and not _text_loaded:
        for module in BUILTIN:
            if module in TEXT_ONLY:
                importlib.import_module(module)
        _text_loaded = True
    # Scanners compare by identity: this is a pointer comparison per scanner.
    if _registry[0] != SCANNERS or _registry[1] != DIRECTORY_SCANNERS:
        _registry = (list(SCANNERS), list(DIRECTORY_SCANNERS))
        _ordered = (sorted(_registry[0], key=_order), _registry[1])
    return _ordered


def text_loaded() -> bool:
    """Whether the :data:`TEXT_ONLY` families are loaded."""
    return _text_loaded


def _order(scanner: Scanner) -> tuple[int, int]:
    """Priority, then the family's place in :data:`BUILTIN` (third-party scanners last)."""
    module = type(scanner).__module__
    for rank, family in enumerate(BUILTIN):
        if module == family or module.startswith(family + "."):
            return scanner.priority, rank
    return scanner.priority, len(BUILTIN)


def _plugins_declared() -> bool:
    """Whether any installed distribution declares an ``mlward.scanners`` entry point.

    A cheap look at each ``*.dist-info/entry_points.txt`` on ``sys.path`` before asking
    ``importlib.metadata``, whose import alone costs more than a small scan (every run of
    ``mlward`` pays it otherwise, and most installs have no plugin).
    """
    for entry in sys.path:
        base = entry or "."
        try:
            # Names, not Path or DirEntry objects: a third less time.
            names = os.listdir(base)  # noqa: PTH208
        except OSError:
            continue
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            path = f"{base}/{name}/entry_points.txt"
            # Most distributions declare no entry point: os.access answers without raising,
            # and os.open/os.read spare a buffered file object for the others.
            if not os.access(path, os.F_OK):
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            text = b""
            try:
                while chunk := os.read(fd, 1 << 16):
                    text += chunk
            except OSError:
                continue
            finally:
                os.close(fd)
            if b"[mlward.scanners]" in text:
                return True
    return False
