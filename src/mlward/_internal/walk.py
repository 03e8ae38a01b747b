"""What to scan: walk the inputs, leave out what the settings exclude, and say what was left out.

Shared by every command that walks a tree (``scan``, ``deps``, ``bom``, ...), so they agree on
what a project contains. Left out by default: virtual environments (a folder holding
``pyvenv.cfg`` or ``conda-meta/``), version-control and tool caches (``.git``,
``node_modules``, ``__pycache__``, ...), mlward's own ``.mlward/`` folder, and whatever
``.gitignore`` and ``.mlwardignore`` files list (gitignore syntax, nested files apply below
their folder, deeper files win). ``exclude`` patterns (gitignore syntax, relative to the root)
are always applied; ``ignore_files=False`` (``--no-ignore``) drops the rest. Every folder or
file left out becomes a :class:`~mlward.findings.Skipped` entry (not inconclusive) and a count
by reason, never a silent omission. Paths given explicitly are always walked (a folder that
the project's ignore files list is walked with only the ignore files inside it).
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mlward._internal.ignore import Patterns
from mlward.findings import Location, Skipped, local_uri

if TYPE_CHECKING:
    from mlward.settings import Settings

TOOL_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".ruff_cache",
                       ".pytest_cache", ".tox", ".nox", "node_modules", ".mlward",
                       ".ipynb_checkpoints"})
"""Folders that hold tooling state, not project content."""
IGNORE_FILES = (".gitignore", ".mlwardignore")


class Item(NamedTuple):
    """A file to examine: where it is (a path on disk, or the URL of a remote object) and its
    location URI in the report."""

    path: str
    uri: str
    size: int | None = None
    """A remote object's size, from its listing (its reads are ranged: no request for it)."""
    folder: bool = False
    """A folder walked (its folder-level checks are a unit of their own), not a file."""


class Walk:
    """One walk over ``inputs``: :meth:`files` yields what to examine, :attr:`skipped` and
    :attr:`excluded` say what was left out.

    Symbolic links are not followed by default: a linked folder is left out, a linked file
    inside the walked folder is examined at its own path (once), and one pointing outside the
    folder is left out; ``follow_symlinks`` follows both, and a folder reached twice (a link
    loop, or two links to one folder) is walked once. A folder that cannot be listed is "not
    examined" (inconclusive, unless ``ignore_unreadable``).
    """

    def __init__(self, root: Path, *, exclude: Sequence[str] = (), ignore_files: bool = True,
                 follow_symlinks: bool = False, ignore_unreadable: bool = False) -> None:
        self.root = root
        self.ignore_files = ignore_files
        self.follow_symlinks = follow_symlinks
        self.ignore_unreadable = ignore_unreadable
        self.skipped: list[Skipped] = []
        self.excluded: Counter[str] = Counter()
        self._exclude = Patterns(exclude, [f"exclude pattern {p!r}" for p in exclude]) \
            if exclude else None
        if self._exclude is not None:
            self._exclude.validate()
        self._specs: dict[str, Patterns | None] = {}  # folder -> its ignore file's patterns
        self._floor = str(root)  # the highest folder whose ignore files apply
        self._active: dict[tuple[str, str], list[tuple[str, Patterns]]] = {}

    @classmethod
    def for_settings(cls, root: Path, settings: Settings) -> Walk:
        return cls(root, exclude=settings.exclude, ignore_files=settings.ignore_files,
                   follow_symlinks=settings.follow_symlinks,
                   ignore_unreadable=settings.ignore_unreadable)

    def uri(self, path: str) -> str:
        """``path``'s location URI: POSIX and relative to the root, or a ``file://`` URI for
        a path outside it."""
        return local_uri(path, self.root)

    def leave_out(self, path: str, reason: str, *, uri: str | None = None) -> None:
        self.excluded[reason] += 1
        self.skipped.append(Skipped(Location(uri or self.uri(path)), reason,
                                    inconclusive=False))

    def excludes(self, rel: str) -> bool:
        """Whether the exclude settings leave out ``rel`` (a remote object's key relative to
        the prefix given; ignore files apply to local trees only)."""
        return self._exclude is not None and self._exclude.match(rel)

    def unreadable(self, path: str, exc: OSError) -> None:
        """Record ``path`` as not examined because it could not be read or listed."""
        self.skipped.append(unreadable(Location(self.uri(path)), exc,
                                       ignore=self.ignore_unreadable))

    def files(self, inputs: Sequence[Path], on_dir: Any = None) -> Iterator[Item]:
        """Files to examine under ``inputs``, in a stable order; ``on_dir(path, uri)`` is
        called for every folder walked, before its files."""
        for given in inputs:
            path = os.path.abspath(given)
            if os.path.isdir(path):  # a folder named explicitly is walked, link or not
                # A folder the project's ignore files leave out (bench/out/, a data folder)
                # is still scanned when named: only ignore files inside it apply then.
                self._floor = path if self._pattern_reason(path, is_dir=True) else str(self.root)
                yield from self._walk(path, on_dir)
            else:
                yield Item(path, self.uri(path))

    def _walk(self, top: str, on_dir: Any) -> Iterator[Item]:
        """Depth first, names sorted, a folder's files before its subfolders' (as
        ``os.walk``), on :func:`os.scandir` entries: whether a name is a link or a folder
        comes with the listing, at no extra system call per file."""
        real_top = os.path.realpath(top)
        seen: set[tuple[int, int]] = set()
        stack = [top]
        while stack:
            dirpath = stack.pop()
            if self.follow_symlinks and not self._first_visit(dirpath, seen):
                continue
            try:
                with os.scandir(dirpath) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                self.unreadable(dirpath, exc)
                continue
            subdirs = []
            files = []
            for e in entries:
                try:
                    is_dir = e.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    reason = self._dir_reason(e)
                    if reason:
                        self.leave_out(e.path, reason)
                    else:
                        subdirs.append(e.path)
                else:
                    files.append(e)
            base = self.uri(dirpath)
            if on_dir is not None:
                on_dir(dirpath, base)
            prefix = "" if base == "." else base + "/"  # one relpath per folder, not per file
            check = self._exclude is not None or bool(self._active_specs(dirpath))
            for e in files:
                reason = ((self._pattern_reason(e.path, is_dir=False, rel=prefix + e.name)
                           if check else None) or self._link_reason(e, real_top))
                if reason:
                    self.leave_out(e.path, reason)
                else:
                    yield Item(e.path, prefix + e.name)
            stack.extend(reversed(subdirs))

    def _first_visit(self, dirpath: str, seen: set[tuple[int, int]]) -> bool:
        try:
            st = os.stat(dirpath)
        except OSError:
            return True  # listing it reports the problem
        key = (st.st_dev, st.st_ino)
        if key in seen:
            self.leave_out(dirpath, "symbolic link loop, or a folder linked twice "
                           "(already walked)")
            return False
        seen.add(key)
        return True

    def _link_reason(self, entry: os.DirEntry[str], real_top: str) -> str | None:
        if self.follow_symlinks or not entry.is_symlink():
            return None
        target = os.path.realpath(entry.path)
        if not os.path.exists(target):
            return "broken symbolic link (its target does not exist)"
        if target.startswith(real_top + os.sep):
            return "symbolic link to a file inside the tree (examined at its own path)"
        return "symbolic link to a file outside the scanned tree (not followed; " \
            "--follow-symlinks follows it)"

    def left_out(self, path: str) -> str | None:
        """Why a walk of the root would leave ``path`` out (a folder above it, or the file
        itself), or None: for callers that learn of paths one at a time (``mlward watch``)."""
        rel = os.path.relpath(path, self.root)
        if rel.startswith(os.pardir):
            return "outside the root"
        folder = str(self.root)
        for name in rel.split(os.sep)[:-1]:
            folder = os.path.join(folder, name)
            reason = self._folder_reason(folder, name, os.path.islink(folder))
            if reason:
                return reason
        return self._pattern_reason(path, is_dir=False)

    def _dir_reason(self, entry: os.DirEntry[str]) -> str | None:
        return self._folder_reason(entry.path, entry.name, entry.is_symlink())

    def _folder_reason(self, path: str, name: str, is_link: bool) -> str | None:
        if not self.follow_symlinks and is_link:
            return "symbolic link to a folder (not followed; --follow-symlinks follows it)"
        reason = self._pattern_reason(path, is_dir=True)
        if reason or not self.ignore_files:
            return reason
        if name in TOOL_DIRS:
            return "tool or version-control folder (skipped by default; --no-ignore scans it)"
        if os.path.isfile(os.path.join(path, "pyvenv.cfg")) or \
                os.path.isdir(os.path.join(path, "conda-meta")):
            return "virtual environment (skipped by default; --no-ignore scans it)"
        return None

    def _pattern_reason(self, path: str, *, is_dir: bool, rel: str | None = None) -> str | None:
        rel = rel or self.uri(path)
        if self._exclude is not None and not rel.startswith("file:") and \
                self._exclude.match(rel + "/" if is_dir else rel):
            return "excluded by the exclude settings"
        if not self.ignore_files:
            return None
        for spec_dir, spec in self._active_specs(os.path.dirname(path)):
            sub = os.path.relpath(path, spec_dir).replace(os.sep, "/")
            include = spec.check(sub + "/" if is_dir else sub)
            if include is not None:
                return "listed in an ignore file (.gitignore/.mlwardignore; --no-ignore " \
                    "scans it)" if include else None
        return None

    def _active_specs(self, folder: str) -> list[tuple[str, Patterns]]:
        """The ignore specs that apply in ``folder``, deepest first (cached per folder)."""
        key = (folder, self._floor)
        if key not in self._active:
            specs = [(d, self._specs[d]) for d in self._spec_dirs(folder)] \
                if self.ignore_files else []
            self._active[key] = [(d, spec) for d, spec in specs if spec is not None]
        return self._active[key]

    def _spec_dirs(self, folder: str) -> list[str]:
        """Folders from ``folder`` up to the floor (deepest first) whose ignore files apply."""
        out = []
        here = folder
        root = self._floor
        while True:
            if here not in self._specs:
                self._specs[here] = _load_ignore(here)
            out.append(here)
            if here == root or os.path.dirname(here) == here or \
                    not (here + os.sep).startswith(root + os.sep):
                return out
            here = os.path.dirname(here)


def _load_ignore(folder: str) -> Patterns | None:
    lines: list[str] = []
    where: list[str] = []
    for name in IGNORE_FILES:
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                read = f.read(1 << 20).splitlines()
        except OSError:
            continue
        lines += read
        where += [f"{path}, line {n}" for n in range(1, len(read) + 1)]
    return Patterns(lines, where) if lines else None


def unreadable(location: Location, exc: OSError, *, ignore: bool) -> Skipped:
    """The one way a file or folder that cannot be read is reported: "not examined", and
    inconclusive (the run exits 2) unless the user accepted it with ``--ignore-unreadable``."""
    why = exc.strerror or str(exc)
    if ignore:
        return Skipped(location, f"not examined: cannot read ({why}); accepted with "
                       "--ignore-unreadable", inconclusive=False)
    return Skipped(location, f"not examined: cannot read ({why}); --ignore-unreadable "
                   "accepts this", inconclusive=True)


def is_regular(path: str) -> tuple[bool, int]:
    """Whether ``path`` is a regular file, and its size (``OSError`` when it cannot be
    examined)."""
    st = os.stat(path)
    return stat.S_ISREG(st.st_mode), st.st_size
