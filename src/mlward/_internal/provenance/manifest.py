"""Content manifests: every file under one or more roots, with its size and digest.

A manifest is a frozen :class:`Manifest`, validated when it is built or loaded. Its JSON form
(``schemaVersion`` 1) holds who made it, where and when, the roots it covers, one entry per
file, symlink or special file, and a root digest: SHA-256 over the canonical JSON of the
entries sorted by path, one per line, so two manifests of the same bytes agree whoever made
them and whenever.

Entry paths are POSIX paths relative to the root; with more than one root each path starts
with the root's name. Symlinks are recorded with their target and never followed; FIFOs,
sockets and devices are recorded by type only and never opened.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import socket
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from mlward._internal.io import atomic_write_text
from mlward._internal.provenance import read_limited
from mlward._internal.provenance.errors import ProvenanceError
from mlward._internal.provenance.hashing import FileJob, HashSpec, hash_files, parse_label
from mlward._version import __version__

SCHEMA_VERSION = 1
KIND = "mlward.manifest"
MAX_MANIFEST_BYTES = 512 << 20
ENTRY_TYPES = ("file", "symlink", "fifo", "socket", "char-device", "block-device")


@dataclass(frozen=True, order=True)
class Entry:
    """One thing under a root. ``digest`` is ``{label: hex}`` for files, empty otherwise."""

    path: str
    type: str
    size: int = 0
    digest: Mapping[str, str] = field(default_factory=dict, compare=False)
    target: str | None = None

    def __post_init__(self) -> None:
        if self.type not in ENTRY_TYPES:
            raise ProvenanceError(f"entry {self.path!r}: unknown type {self.type!r}")
        check_relative(self.path)
        if self.type == "file":
            if len(self.digest) != 1:
                raise ProvenanceError(f"entry {self.path!r}: a file needs exactly one digest")
            for label, value in self.digest.items():
                parse_label(label)
                if not _HEX64.fullmatch(value):
                    raise ProvenanceError(f"entry {self.path!r}: malformed digest")
        if self.type == "symlink" and self.target is None:
            raise ProvenanceError(f"entry {self.path!r}: a symlink needs a target")
        if self.size < 0:
            raise ProvenanceError(f"entry {self.path!r}: negative size")

    @property
    def label(self) -> str:
        return next(iter(self.digest))

    @property
    def content(self) -> tuple[str, ...]:
        """What must match for two entries to hold the same content (paths aside)."""
        if self.type == "file":
            return ("file", *sorted(self.digest.items())[0])
        if self.type == "symlink":
            return ("symlink", self.target or "")
        return (self.type,)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "type": self.type}
        if self.type == "file":
            out["size"] = self.size
            out["digest"] = dict(self.digest)
        if self.target is not None:
            out["target"] = self.target
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Entry:
        if not isinstance(data, dict):
            raise ProvenanceError("manifest entry is not an object")
        try:
            digest = data.get("digest", {})
            if not isinstance(digest, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in digest.items()):
                raise ProvenanceError("manifest entry digest is not an object of strings")
            size = data.get("size", 0)
            target = data.get("target")
            if not isinstance(size, int) or isinstance(size, bool) or not isinstance(
                    data["path"], str) or not isinstance(data["type"], str) or not (
                    target is None or isinstance(target, str)):
                raise ProvenanceError("manifest entry has a field of the wrong type")
            return cls(data["path"], data["type"], size, digest, target)
        except KeyError as exc:
            raise ProvenanceError(f"manifest entry lacks {exc.args[0]!r}") from None


@dataclass(frozen=True)
class Root:
    """A file or folder the manifest covers: its name in entry paths, its URI, its type."""

    name: str
    uri: str
    type: str

    def __post_init__(self) -> None:
        if self.type not in ("directory", "file"):
            raise ProvenanceError(f"root {self.name!r}: unknown type {self.type!r}")

    @property
    def local_path(self) -> Path | None:
        """The root's local path when its URI is a ``file:`` URI."""
        if not self.uri.startswith("file://"):
            return None
        from urllib.parse import unquote, urlsplit
        return Path(unquote(urlsplit(self.uri).path))


@dataclass(frozen=True)
class Manifest:
    roots: tuple[Root, ...]
    entries: tuple[Entry, ...]
    created_by: Mapping[str, str]
    spec: HashSpec = field(default_factory=HashSpec)
    root_digest: str = ""

    def __post_init__(self) -> None:
        if not self.roots:
            raise ProvenanceError("a manifest needs at least one root")
        paths = [e.path for e in self.entries]
        if len(set(paths)) != len(paths):
            raise ProvenanceError("manifest lists the same path twice")
        computed = compute_root_digest(self.entries)
        if not self.root_digest:
            object.__setattr__(self, "root_digest", computed)
        elif self.root_digest != computed:
            raise ProvenanceError("manifest root digest does not match its entries "
                                  "(the entries were edited)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "schemaVersion": SCHEMA_VERSION,
            "createdBy": dict(self.created_by),
            "roots": [{"name": r.name, "uri": r.uri, "type": r.type} for r in self.roots],
            "hashing": {"algorithm": self.spec.algorithm, "shardSize": self.spec.shard_size},
            "rootDigest": {"sha256": self.root_digest},
            "entries": [e.to_dict() for e in self.entries],
        }

    def to_json(self) -> str:
        """Indented JSON with one entry per line (fast to write, easy to diff)."""
        doc = self.to_dict()
        entries = doc.pop("entries")
        head = json.dumps(doc, indent=1)
        lines = ",\n".join("  " + json.dumps(e) for e in entries)
        return f'{head[:-2]},\n "entries": [\n{lines}\n ]\n}}\n'.replace("[\n\n ]", "[]")

    def write(self, path: Path) -> None:
        atomic_write_text(path, self.to_json(), mode=0o644)

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise ProvenanceError("not an mlward manifest")
        version = data.get("schemaVersion")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ProvenanceError("manifest has no schema version")
        if version > SCHEMA_VERSION:
            raise ProvenanceError(
                f"manifest uses schema version {version}, newer than this mlward reads "
                f"({SCHEMA_VERSION}); upgrade mlward to read it")
        try:
            roots = tuple(Root(*(_text(r[k]) for k in ("name", "uri", "type")))
                          for r in data["roots"])
            entries = tuple(Entry.from_dict(e) for e in data["entries"])
            digest = data["rootDigest"]["sha256"]
            created = data["createdBy"]
            hashing = data["hashing"]
            shard = hashing["shardSize"]
            if not (shard is None or isinstance(shard, int)):
                raise TypeError("shardSize is not a number")
            spec = HashSpec(str(hashing["algorithm"]), shard)
        except (KeyError, TypeError) as exc:
            raise ProvenanceError(f"manifest is malformed ({exc!s})") from None
        if not isinstance(digest, str) or not isinstance(created, dict):
            raise ProvenanceError("manifest is malformed")
        return cls(roots, entries, {str(k): str(v) for k, v in created.items()}, spec, digest)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.from_dict(read_json(path, "manifest"))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


def read_bounded(path: Path, what: str) -> bytes:
    """The bytes of a metadata file (manifest, statement, signature) of bounded size."""
    return read_limited(path, what, MAX_MANIFEST_BYTES)


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file of bounded size; every failure is a :class:`ProvenanceError`."""
    raw = read_bounded(path, what)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProvenanceError(f"{what} {path} is not valid JSON ({exc})") from None


def check_relative(path: str) -> None:
    """Refuse a path that is absolute or climbs out of its root."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) \
            or "\\" in path or "\0" in path:
        raise ProvenanceError(f"path {path!r} escapes its root or is not a plain relative path")


_HEX64 = re.compile("[0-9a-f]{64}")
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def compute_root_digest(entries: Sequence[Entry]) -> str:
    h = hashlib.sha256()
    for e in sorted(entries):
        h.update(_CANONICAL.encode(e.to_dict()).encode())
        h.update(b"\n")
    return h.hexdigest()


def who_where_when() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = str(os.getuid())
    return {
        "user": user,
        "host": socket.gethostname(),
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool": f"mlward {__version__}",
    }


_SPECIAL = {stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "char-device",
            stat.S_IFBLK: "block-device"}


@dataclass(frozen=True)
class Listed:
    """What a walk found: entries without digests yet, and the files still to hash."""

    entries: tuple[Entry, ...]
    files: tuple[tuple[str, str | Path, os.stat_result], ...]


def walk(root: Path, prefix: str = "", exclude: frozenset[str] = frozenset()) -> Listed:
    """List everything under ``root`` without following symlinks.

    ``root`` itself may be a file. Names in ``exclude`` are skipped at any depth.
    """
    entries: list[Entry] = []
    files: list[tuple[str, str | Path, os.stat_result]] = []
    try:
        st = root.stat()
    except OSError as exc:
        raise ProvenanceError(f"cannot read {root}: {exc.strerror}") from None
    if stat.S_ISREG(st.st_mode):
        return Listed((), ((prefix or root.name, root, st),))
    if not stat.S_ISDIR(st.st_mode):
        special = _SPECIAL.get(stat.S_IFMT(st.st_mode), "fifo")
        return Listed((Entry(prefix or root.name, special),), ())
    for rel, path, lst in _scan(root, exclude):
        name = f"{prefix}/{rel}" if prefix else rel
        kind = stat.S_IFMT(lst.st_mode)
        if kind == stat.S_IFREG:
            files.append((name, path, lst))
        elif kind == stat.S_IFLNK:
            entries.append(Entry(name, "symlink", target=str(Path(path).readlink())))
        elif kind in _SPECIAL:
            entries.append(Entry(name, _SPECIAL[kind]))
    return Listed(tuple(entries), tuple(files))


def _scan(root: Path, exclude: frozenset[str]) -> Iterator[tuple[str, str | Path, os.stat_result]]:
    stack = [("", root)]
    while stack:
        rel_dir, directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                items = sorted(it, key=lambda d: d.name)
        except OSError as exc:
            raise ProvenanceError(f"cannot list {directory}: {exc.strerror}") from None
        for item in items:
            if item.name in exclude:
                continue
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            try:
                lst = item.stat(follow_symlinks=False)
            except OSError as exc:
                raise ProvenanceError(f"cannot read {item.path}: {exc.strerror}") from None
            if stat.S_ISDIR(lst.st_mode):
                stack.append((rel, Path(item.path)))
            else:
                yield rel, item.path, lst


def root_names(paths: Sequence[Path]) -> list[str]:
    """Names for roots in entry paths: empty for a single folder, else unique base names."""
    if len(paths) == 1 and paths[0].is_dir():
        return [""]
    names: list[str] = []
    for p in paths:
        base = p.resolve().name or "root"
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def hash_roots(paths: Sequence[Path], names: Sequence[str], spec: HashSpec,
               exclude: frozenset[str] = frozenset(),
               labels: Mapping[str, str] | None = None,
               progress: Callable[[int], None] | None = None,
               manifest_file: Path | None = None) -> tuple[Entry, ...]:
    """Entries for everything under ``paths``, files hashed in parallel.

    Each file gets the label ``spec`` gives its size, or, when ``labels`` names its path (a
    manifest being verified), that label; files ``labels`` does not name use ``spec``.
    ``manifest_file``, when it lies under a root, is left out: a manifest does not list itself.
    """
    listed = [walk(p, n, exclude) for p, n in zip(paths, names, strict=True)]
    own = _names_of(manifest_file, paths, names)
    specials = [e for item in listed for e in item.entries if e.path not in own]
    files = [f for item in listed for f in item.files if f[0] not in own]
    jobs = [FileJob.of(path, st, (labels or {}).get(name) or spec.label_for(st.st_size))
            for name, path, st in files]
    digests = hash_files(jobs, progress=progress)
    hashed = [Entry(name, "file", st.st_size, {job.label: d})
              for (name, _, st), job, d in zip(files, jobs, digests, strict=True)]
    return tuple(sorted(specials + hashed))


def _names_of(target: Path | None, paths: Sequence[Path], names: Sequence[str]) -> set[str]:
    """The entry names ``target`` would have under the folder roots it lies in."""
    if target is None:
        return set()
    resolved = target.resolve()
    out = set()
    for p, n in zip(paths, names, strict=True):
        if p.is_dir() and resolved.is_relative_to(p.resolve()):
            rel = resolved.relative_to(p.resolve()).as_posix()
            out.add(f"{n}/{rel}" if n else rel)
    return out


def create(paths: Sequence[Path], spec: HashSpec | None = None, *,
           exclude: frozenset[str] = frozenset(),
           progress: Callable[[int], None] | None = None,
           manifest_file: Path | None = None) -> Manifest:
    """A manifest of ``paths`` (files or folders), hashed with ``spec``.

    ``manifest_file`` is where the manifest will be written; it is not listed in itself.
    """
    if not paths:
        raise ProvenanceError("nothing to put in a manifest")
    names = root_names(paths)
    entries = hash_roots(paths, names, spec or HashSpec(), exclude, progress=progress,
                         manifest_file=manifest_file)
    roots = tuple(Root(n or p.resolve().name, p.resolve().as_uri(),
                       "directory" if p.is_dir() else "file")
                  for p, n in zip(paths, names, strict=True))
    return Manifest(roots, entries, who_where_when(), spec or HashSpec())


@dataclass(frozen=True, order=True)
class Change:
    """One difference between a manifest and the bytes on disk."""

    path: str
    status: str  # added, removed, modified, renamed
    previous: str | None = None  # the old path of a renamed file

    def to_dict(self) -> dict[str, str]:
        out = {"path": self.path, "status": self.status}
        if self.previous is not None:
            out["from"] = self.previous
        return out

    def __str__(self) -> str:
        if self.status == "renamed":
            return f"renamed   {self.previous} -> {self.path}"
        return f"{self.status:<9} {self.path}"


class Compared(Protocol):
    """What :func:`diff` compares: a path and what must match for the same content (manifest
    entries; audit snapshots' files)."""

    @property
    def path(self) -> str: ...

    @property
    def content(self) -> tuple[str, ...]: ...


def diff(recorded: Sequence[Compared], current: Sequence[Compared]) -> list[Change]:
    """Added, removed, modified and renamed (same content, new path) entries."""
    old = {e.path: e for e in recorded}
    new = {e.path: e for e in current}
    changes = [Change(p, "modified") for p in old.keys() & new.keys()
               if old[p].content != new[p].content]
    removed = [old[p] for p in sorted(old.keys() - new.keys())]
    added = [new[p] for p in sorted(new.keys() - old.keys())]
    by_content: dict[tuple[str, ...], list[Compared]] = {}
    for e in removed:
        by_content.setdefault(e.content, []).append(e)
    for e in added:
        candidates = by_content.get(e.content)
        if candidates:
            changes.append(Change(e.path, "renamed", candidates.pop(0).path))
        else:
            changes.append(Change(e.path, "added"))
    changes.extend(Change(e.path, "removed") for c in by_content.values() for e in c)
    return sorted(changes)


def verify(manifest: Manifest, paths: Sequence[Path] | None = None,
           progress: Callable[[int], None] | None = None,
           manifest_file: Path | None = None) -> list[Change]:
    """Re-hash the manifest's roots (or ``paths`` in their place) and list every change.

    ``manifest_file`` is where the manifest was read from; it is not compared with itself.
    """
    if paths:
        if len(paths) != len(manifest.roots):
            raise ProvenanceError(f"the manifest has {len(manifest.roots)} root(s); "
                                  f"give as many paths, in the same order")
        targets = list(paths)
    else:
        targets = []
        for r in manifest.roots:
            local = r.local_path
            if local is None:
                raise ProvenanceError(f"root {r.name} is at {r.uri}, not a local path; "
                                      "give its local path")
            targets.append(local)
    for t in targets:
        if not t.exists():
            raise ProvenanceError(f"{t} does not exist")
    names = [r.name for r in manifest.roots] if len(manifest.roots) > 1 else [
        manifest.roots[0].name if manifest.roots[0].type == "file" else ""]
    labels = {e.path: e.label for e in manifest.entries if e.type == "file"}
    current = hash_roots(targets, names, manifest.spec, labels=labels, progress=progress,
                         manifest_file=manifest_file)
    return diff(manifest.entries, current)
