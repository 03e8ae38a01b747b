"""``mlward notebook clean``: strip outputs and/or redact secrets and personal data in place.

The original is kept as a backup beside it; the new notebook is validated with nbformat
before an atomic replace, so a failure never leaves a half-written or invalid notebook.
Cell sources are redacted only when asked (``sources=True``): redacting code can break it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlward._internal.io import atomic_write_bytes, atomic_write_text
from mlward._internal.scanners.notebook.read import MAX_NOTEBOOK_BYTES
from mlward._internal.scanners.secrets.detect import redact_secrets
from mlward._internal.scanners.secrets.report import find_pii
from mlward.errors import MissingExtra, MlwardError

MAX_DEPTH = 64


class CleanError(MlwardError):
    """A notebook that cannot be cleaned (unreadable, or the result would not validate)."""


@dataclass(frozen=True)
class CleanResult:
    path: Path
    backup: Path | None
    outputs_removed: int
    secrets_redacted: int
    pii_redacted: int
    upgraded_from: int | None
    """The nbformat major version the notebook was upgraded from (cleaning writes v4)."""

    @property
    def changed(self) -> bool:
        return bool(self.outputs_removed or self.secrets_redacted or self.pii_redacted
                    or self.upgraded_from)


@dataclass
class _Counts:
    outputs: int = 0
    secrets: int = 0
    pii: int = 0


def clean_notebook(path: Path, *, strip_outputs: bool, redact: bool, sources: bool = False,
                   backup: bool = True) -> CleanResult:
    """Clean one notebook in place; returns what was done. Raises :class:`CleanError`."""
    try:
        import nbformat as _nbformat
    except ImportError:
        raise MissingExtra("nbformat", "notebook") from None
    nbformat: Any = _nbformat  # partially typed library
    original = path.read_bytes()
    if len(original) > MAX_NOTEBOOK_BYTES:
        raise CleanError(f"{path}: larger than {MAX_NOTEBOOK_BYTES} bytes")
    try:
        nb = nbformat.reads(original.decode("utf-8-sig"), as_version=nbformat.NO_CONVERT)
        major = int(nb.get("nbformat", 0))
        if major < 4:
            nb = nbformat.convert(nb, 4)
    except Exception as exc:  # nbformat raises many types on broken input
        raise CleanError(f"{path}: not a readable notebook ({type(exc).__name__}: {exc})") \
            from None
    counts = _Counts()
    if strip_outputs:
        _strip(nb, counts)
    if redact:
        _redact(nb, counts, sources=sources)
    result = CleanResult(path, None, counts.outputs, counts.secrets, counts.pii,
                         major if major < 4 else None)
    if not result.changed:
        return result
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        raise CleanError(f"{path}: the cleaned notebook would not be valid ({exc.message}); "
                         "left unchanged") from None
    text = nbformat.writes(nb)
    mode = path.stat().st_mode & 0o777
    saved = None
    if backup:
        saved = _free_backup_path(path)
        atomic_write_bytes(saved, original, mode=0o600)
    atomic_write_text(path, text, mode=mode)
    return CleanResult(path, saved, counts.outputs, counts.secrets, counts.pii,
                       result.upgraded_from)


def _free_backup_path(path: Path) -> Path:
    candidate = path.with_name(path.name + ".bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak{n}")
        n += 1
    return candidate


def _strip(nb: Any, counts: _Counts) -> None:
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            counts.outputs += len(cell.get("outputs", []))
            cell["outputs"] = []
            cell["execution_count"] = None
    widgets = nb.metadata.pop("widgets", None)
    if widgets:
        counts.outputs += 1


def _redact(nb: Any, counts: _Counts, *, sources: bool) -> None:
    def redactor(syntax: str) -> Callable[[str], str]:
        """Read as the scan reads it: cell sources as code, metadata as config, the rest
        (outputs, markdown, attachments) as text."""
        def redact(value: str) -> str:
            new, n = redact_secrets(value, label=True, syntax=syntax)
            counts.secrets += n
            for hit in find_pii(new):
                new = new.replace(hit.value, f"[REDACTED:{hit.kind}]")
                counts.pii += 1
            return new
        return redact

    text, config = redactor("text"), redactor("config")
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            _walk_strings(out, text)
        if sources:
            code = cell.get("cell_type") == "code"
            cell["source"] = _text_value(cell.get("source", ""),
                                         redactor("code") if code else text)
            if "attachments" in cell:
                _walk_strings(cell["attachments"], text)
        _walk_strings(cell.get("metadata", {}), config)
    _walk_strings(nb.metadata, config)


def _text_value(value: Any, fix: Callable[[str], str]) -> Any:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        joined = "".join(value)
        new = fix(joined)
        return value if new == joined else new
    return fix(value) if isinstance(value, str) else value


def _walk_strings(node: Any, fix: Callable[[str], str], depth: int = 0) -> None:
    """Apply ``fix`` to every string (and list-of-lines text) inside dicts and lists."""
    if depth > MAX_DEPTH:
        return
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, str) or (isinstance(value, list) and value
                                      and all(isinstance(v, str) for v in value)):
            node[key] = _text_value(value, fix)
        elif isinstance(value, (dict, list)):
            _walk_strings(value, fix, depth + 1)
