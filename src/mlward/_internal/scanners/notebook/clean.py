"""``mlward notebook clean``: strip outputs and/or redact secrets and personal data in place.

What is redacted is what the notebook scanner reports: each part (an output, a cell's metadata,
the notebook's metadata, a source when asked) is read as the scanner reads it (metadata as
JSON text, where a key like ``"password"`` gives its value away), every string inside it is
also examined on its own at any depth, and each value found is replaced wherever it occurs in
that part, widened to the whole token. Cell sources are redacted only when asked
(``sources=True``): redacting code can break it.

The file is rewritten safely: validated with nbformat first, written with its mode kept,
atomically and without a temporary name (:mod:`mlward._internal.io`: a kill leaves the old or
the new notebook, nothing else). A read-only notebook is refused unless ``force``; a symbolic
link is followed and its target edited (the link stays a link). No backup is written unless
asked, since a backup still holds every secret that was removed.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlward._internal.io import atomic_write_bytes, atomic_write_text
from mlward._internal.scanners.notebook.read import MAX_NOTEBOOK_BYTES, output_texts, text_of
from mlward._internal.scanners.secrets.detect import find_secrets, replace_whole
from mlward._internal.scanners.secrets.report import find_pii
from mlward.errors import MissingExtra, MlwardError
from mlward.rules import PII_FOUND


class CleanError(MlwardError):
    """A notebook that cannot be cleaned (unreadable, read-only, or the result would not
    validate)."""


@dataclass(frozen=True)
class Redaction:
    """One value redacted: by which rule, of what kind, where (never the value itself)."""

    rule: str
    kind: str
    where: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "kind": self.kind, "where": self.where}


@dataclass(frozen=True)
class CleanResult:
    path: Path
    """The file written: the notebook, or the target of the link that was named."""
    backup: Path | None
    outputs_removed: int
    redactions: tuple[Redaction, ...]
    upgraded_from: int | None
    """The nbformat major version the notebook was upgraded from (cleaning writes v4)."""

    @property
    def secrets_redacted(self) -> int:
        return sum(1 for r in self.redactions if r.rule != PII_FOUND.id)

    @property
    def pii_redacted(self) -> int:
        return sum(1 for r in self.redactions if r.rule == PII_FOUND.id)

    @property
    def changed(self) -> bool:
        return bool(self.outputs_removed or self.redactions or self.upgraded_from)


def clean_notebook(path: Path, *, strip_outputs: bool, redact: bool, sources: bool = False,
                   backup: bool = False, force: bool = False) -> CleanResult:
    """Clean one notebook in place; returns what was done. Raises :class:`CleanError`."""
    try:
        import nbformat as _nbformat
    except ImportError:
        raise MissingExtra("nbformat", "notebook") from None
    nbformat: Any = _nbformat  # partially typed library
    target = path.resolve() if path.is_symlink() else path
    try:
        st = target.stat()
        original = target.read_bytes() if st.st_size <= MAX_NOTEBOOK_BYTES else b""
    except OSError as exc:
        raise CleanError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise CleanError(f"{path}: not a regular file")
    if st.st_size > MAX_NOTEBOOK_BYTES:
        raise CleanError(f"{path}: larger than {MAX_NOTEBOOK_BYTES} bytes")
    try:
        nb = nbformat.reads(original.decode("utf-8-sig"), as_version=nbformat.NO_CONVERT)
        major = int(nb.get("nbformat", 0))
        if major < 4:
            nb = nbformat.convert(nb, 4)
    except Exception as exc:  # nbformat raises many types on broken input
        raise CleanError(f"{path}: not a readable notebook ({type(exc).__name__}: {exc})") \
            from None
    removed = _strip(nb) if strip_outputs else 0
    redactions = _redact(nb, sources=sources) if redact else []
    result = CleanResult(target, None, removed, tuple(redactions),
                         major if major < 4 else None)
    if not result.changed:
        return result
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o222 and not force:
        raise CleanError(f"{path}: read-only (mode {mode:04o}); left unchanged (--force "
                         "cleans it, keeping its mode)")
    try:
        nbformat.validate(nb)
        text = nbformat.writes(nb)
    except nbformat.ValidationError as exc:
        raise CleanError(f"{path}: the cleaned notebook would not be valid ({exc.message}); "
                         "left unchanged") from None
    except RecursionError:
        raise CleanError(f"{path}: nested too deeply to write back; left unchanged") from None
    saved = None
    if backup:
        saved = _free_backup_path(target)
        atomic_write_bytes(saved, original, mode=0o600)
    atomic_write_text(target, text, mode=mode)
    return CleanResult(target, saved, removed, tuple(redactions), result.upgraded_from)


def _free_backup_path(path: Path) -> Path:
    candidate = path.with_name(path.name + ".bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak{n}")
        n += 1
    return candidate


def _strip(nb: Any) -> int:
    removed = 0
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            removed += len(cell.get("outputs", []))
            cell["outputs"] = []
            cell["execution_count"] = None
    if nb.metadata.pop("widgets", None):
        removed += 1
    return removed


@dataclass
class _Part:
    """A piece of the notebook: the node to rewrite, the texts the scanner reads in it."""

    node: Any
    where: str
    texts: list[str]
    syntax: str = "code"
    pii: bool = True
    keys: tuple[str, ...] | None = None
    """Only these keys of ``node`` belong to the part (a cell's source, not its outputs)."""
    found: dict[str, tuple[str, str]] = field(default_factory=dict)
    """value -> (rule id, kind)."""


def _parts(nb: Any, *, sources: bool) -> Iterator[_Part]:
    """The parts the notebook scanner examines (:mod:`.read`), with their nodes."""
    for index, cell in enumerate(nb.cells, 1):
        for number, out in enumerate(cell.get("outputs", []), 1):
            yield _Part(out, f"cell {index} output {number}",
                        [text for _, text in output_texts(out)], syntax="text")
        if sources:
            code = cell.get("cell_type") == "code"
            yield _Part(cell, f"cell {index} source", [text_of(cell.get("source", ""))],
                        syntax="code" if code else "text", pii=not code, keys=("source",))
            if "attachments" in cell:
                yield _Part(cell["attachments"], f"cell {index} attachments",
                            [text_of(cell["attachments"])], syntax="text")
        if cell.get("metadata"):
            yield _Part(cell["metadata"], f"cell {index} metadata",
                        [text_of(cell["metadata"])], syntax="config", pii=False)
    if nb.metadata:
        yield _Part(nb.metadata, "notebook metadata", [text_of(nb.metadata)], syntax="config",
                    pii=False)


def _redact(nb: Any, *, sources: bool) -> list[Redaction]:
    redactions: list[Redaction] = []
    for part in _parts(nb, sources=sources):
        texts = part.texts + [s for s, _ in _strings(part.node, part.keys)]
        for text in texts:
            for hit in find_secrets(text, syntax=part.syntax):
                part.found.setdefault(hit.value, (hit.rule.id, hit.kind))
            if part.pii:
                for pii in find_pii(text):
                    part.found.setdefault(pii.value, (PII_FOUND.id, pii.kind))
        if not part.found:
            continue
        # Longest first: a value inside a longer one must not break its replacement.
        ordered = sorted(part.found.items(), key=lambda kv: -len(kv[0]))

        def fix(text: str, ordered: list[tuple[str, tuple[str, str]]] = ordered) -> str:
            for value, (_, kind) in ordered:
                text = replace_whole(text, value, f"[REDACTED:{kind}]")[0]
            return text

        _rewrite(part.node, fix, part.keys)
        redactions += [Redaction(rule, kind, part.where) for rule, kind in part.found.values()]
    return redactions


def _strings(node: Any, keys: tuple[str, ...] | None = None
             ) -> Iterator[tuple[str, Callable[[str], None]]]:
    """Every string under ``node`` (under its ``keys`` only, when given; a list of strings
    counts as one text, as notebooks store multi-line text), with a setter; iterative, so
    any depth is reached."""
    stack = [node]
    while stack:
        item = stack.pop()
        pairs = list(item.items()) if isinstance(item, dict) else list(enumerate(item)) \
            if isinstance(item, list) else []
        if item is node and keys is not None:
            pairs = [(k, v) for k, v in pairs if k in keys]
        for key, value in pairs:
            if isinstance(value, str) or (isinstance(value, list) and value
                                          and all(isinstance(v, str) for v in value)):
                yield text_of(value), _setter(item, key, value)
            elif isinstance(value, (dict, list)):
                stack.append(value)


def _setter(container: Any, key: Any, old: Any) -> Callable[[str], None]:
    def put(new: str) -> None:
        if new != text_of(old):
            container[key] = new
    return put


def _rewrite(node: Any, fix: Callable[[str], str], keys: tuple[str, ...] | None) -> None:
    for text, put in list(_strings(node, keys)):
        put(fix(text))
