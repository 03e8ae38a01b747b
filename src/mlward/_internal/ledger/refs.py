"""The forensic index: which entries concern which file paths and content digests.

``mlward ledger history PATH`` must answer in well under a second over millions of entries, and
follow a file through renames. Entries name files in many shapes (a ``file://`` URI, a path as
typed relative to the directory the command ran in, a list of manifest roots, a digest); this
module reduces each entry to :class:`Ref` rows, ``(path, digest, role)``, which the store keeps
in ``ledger_refs`` with an index on the path and one on the digest. A row pairs a path with the
digest the entry saw there when it knows both: that pairing is what follows a rename (the same
digest at a new path).

The rows of an entry come from the entry itself (:func:`refs_of`), so the index can be rebuilt
from the entries, plus rows the caller adds when it appends (an audit snapshot adds one row per
file that changed since the previous snapshot: the snapshot document, whose digest the entry
holds, is their evidence). The index only finds entries; what it finds is proven by each
entry's inclusion proof, and ``ledger verify`` proves that no entry was removed.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

MAX_REFS = 2000
"""Rows taken from one entry's own fields (a scan of a few inputs, a manifest's roots)."""
EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
"""The digest of empty content: every empty file shares it, so it never links two paths."""

# Detail keys that name files (a string or a list of them), and the role a row from each
# gets; ``from`` (a renamed file's old path) had the entry's digests there too.
_DETAIL_PATHS = {"from": "from", "statement": "statement", "signature": "signature",
                 "manifest": "manifest", "roots": "root", "inputs": "input", "paths": "path"}


class Ref(NamedTuple):
    """One file an entry concerns: its absolute path (or the text as recorded when it could
    not be made absolute), the content digest ``alg:hex`` it had, and how the entry names it
    (``resource``, ``root``, ``input``, ``from``, ``added``, ``modified``, ...)."""

    path: str | None
    digest: str | None
    role: str


def local_path(text: str, cwd: str | None = None) -> str | None:
    """The normalised absolute path ``text`` names, or None when it is not a local path (an
    ``s3://`` or ``pkg:`` URI). A relative path is made absolute against ``cwd`` (the
    directory the recording command ran in); without one it stays as recorded."""
    if not text or len(text) > 4096 or "\0" in text:
        return None
    if text[0] == "/":
        path = text
    elif text.startswith("file://"):
        path = unquote(urlsplit(text).path)
    elif "://" in text or ":" in text.split("/", 1)[0]:
        return None  # another scheme (pkg:pypi/x, mlflow:, s3://)
    elif not cwd:
        return posixpath.normpath(text)
    else:
        path = f"{cwd}/{text}"
    if "/." in path or "//" in path or path.endswith("/"):
        return posixpath.normpath(path)
    return path  # already normal: the common case, without the cost of normpath


def ancestors(path: str) -> list[str]:
    """``path`` and every folder above it: events about a folder concern what is in it."""
    out = [path]
    while True:
        parent = posixpath.dirname(out[-1])
        if not parent or parent == out[-1]:
            return out
        out.append(parent)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        yield from (v for v in value[:MAX_REFS] if isinstance(v, str))


def refs_of(resource: str, digests: Mapping[str, str], details: Mapping[str, Any]) \
        -> list[Ref]:
    """The rows an entry's own fields give. Runs for every entry appended: kept cheap."""
    where = details.get("where")
    cwd = where.get("cwd") if isinstance(where, Mapping) else None
    cwd = cwd if isinstance(cwd, str) and cwd.startswith("/") else None
    labels = [f"{k}:{v}" for k, v in sorted(digests.items())] if digests else [None]
    path = local_path(resource, cwd)
    out = [Ref(path, d, "resource") for d in labels] if path is not None or labels[0] else []
    for key, role in _DETAIL_PATHS.items():
        value = details.get(key)
        if value is None:
            continue
        for text in _strings(value):
            path = local_path(text, cwd)
            if path is not None:
                out.extend(Ref(path, d, role) for d in (labels if key == "from" else [None]))
    return list(dict.fromkeys(out))[:MAX_REFS] if len(out) > 1 else out


def here() -> dict[str, Any]:
    """Where an event is recorded: the working directory, the project and its git commit."""
    from mlward._internal.ledger.project import find_project

    cwd = Path.cwd()
    out: dict[str, Any] = {"cwd": str(cwd)}
    project = find_project()
    if project is not None:
        out["project"] = str(project.parent)
    commit = git_head(cwd)
    if commit is not None:
        out["commit"] = commit
    return out


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read(4096).strip()


def git_head(start: Path) -> str | None:
    """The commit checked out in the git work tree holding ``start``, read from ``.git``
    without running git (every recorded event asks; a subprocess each time would cost more
    than the append). Handles linked work trees and packed refs; None when unknown."""
    folder = start.absolute()
    while not (folder / ".git").exists():
        if folder.parent == folder:
            return None
        folder = folder.parent
    try:
        git_dir = folder / ".git"
        if git_dir.is_file():  # a linked work tree: "gitdir: <path>"
            text = _first_line(git_dir)
            if not text.startswith("gitdir:"):
                return None
            git_dir = folder / text[7:].strip()
        head = _first_line(git_dir / "HEAD")
        if not head.startswith("ref:"):
            return head if len(head) in (40, 64) else None
        ref = head[4:].strip()
        common = git_dir / _first_line(git_dir / "commondir") \
            if (git_dir / "commondir").is_file() else git_dir
        for base in (git_dir, common):
            if (base / ref).is_file():
                return _first_line(base / ref) or None
        if (common / "packed-refs").is_file():
            with open(common / "packed-refs", encoding="utf-8") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2 and parts[1] == ref:
                        return parts[0]
    except (OSError, UnicodeDecodeError):
        return None
    return None  # a branch with no commit yet
