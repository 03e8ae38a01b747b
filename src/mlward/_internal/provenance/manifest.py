"""Content manifests: every file under one or more roots, with its size and digest.

A manifest is a frozen :class:`Manifest`, validated when it is built or loaded. Its JSON form
(``schemaVersion`` 2) holds who made it, where and when, the roots it covers, one entry per
file, symlink or special file, and a root digest: SHA-256 over the canonical JSON of the
entries sorted by path, one per line, so two manifests of the same bytes agree whoever made
them and whenever.

Roots are recorded by their path relative to the manifest's own folder (``data``,
``../data``), so that a clone, or the project moved elsewhere, is verified against its own
files: :func:`verify` resolves each root from where the manifest is now and says where that
was. A root must lie inside the project that holds the manifest (its ``.mlward/``, ``.git``
or ``pyproject.toml`` folder), or inside the manifest's folder when there is no project; one
outside is recorded by absolute path only when the caller asks (``absolute``), and is then
marked ``"absolute": true`` and reported as such whenever it is verified. Schema 1 manifests
(absolute ``file:`` URIs for every root) are still read, but verifying them needs the roots'
current paths: checking whatever sits at the old absolute paths could check the original's
files from inside a clone.

Entry paths are POSIX paths relative to the root; with more than one root each path starts
with the root's name. Symlinks are recorded with their target and never followed; FIFOs,
sockets and devices are recorded by type only and never opened.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import json
import operator
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlward._internal.io import atomic_write_text
from mlward._internal.provenance import read_limited
from mlward._internal.provenance.errors import ProvenanceError
from mlward._internal.provenance.hashing import (
    FileJob,
    Hashed,
    HashSpec,
    hash_paths,
    hash_with,
    parse_label,
)
from mlward._internal.sources.remote import OBJECT_SCHEMES, list_objects, scheme_of
from mlward._version import __version__
from mlward.settings import project_root

if TYPE_CHECKING:
    from mlward.executors import Executor

SCHEMA_VERSION = 2
KIND = "mlward.manifest"
MAX_MANIFEST_BYTES = 512 << 20
ENTRY_TYPES = ("file", "symlink", "fifo", "socket", "char-device", "block-device")


def content_key(type_: str, digest: Mapping[str, str], target: str | None) -> tuple[str, ...]:
    """What must match for two entries (of a manifest or an audit snapshot) to hold the same
    content, paths aside: a file's digest, a link's target, else the type."""
    if type_ == "file":
        return ("file", *sorted(digest.items())[0])
    if type_ == "symlink":
        return ("symlink", target or "")
    return (type_,)


def entry_dict(path: str, type_: str, size: int, digest: Mapping[str, str],
               target: str | None) -> dict[str, Any]:
    """An entry's JSON form (a manifest's, and an audit snapshot file's before its kind)."""
    out: dict[str, Any] = {"path": path, "type": type_}
    if type_ == "file":
        out["size"] = size
        out["digest"] = dict(digest)
    if target is not None:
        out["target"] = target
    return out

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
                if label not in _LABELS_SEEN:
                    parse_label(label)
                    _LABELS_SEEN.add(label)
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
        return content_key(self.type, self.digest, self.target)

    def to_dict(self) -> dict[str, Any]:
        return entry_dict(self.path, self.type, self.size, self.digest, self.target)

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
    """A file or folder the manifest covers: its name in entry paths, its path, its type.

    ``path`` is POSIX and relative to the manifest's folder, or absolute when ``absolute``
    (asked for at creation, or a schema 1 manifest's ``file:`` URI), or an object-storage
    prefix (``s3://bucket/prefix``: absolute by nature).
    """

    name: str
    path: str
    type: str
    absolute: bool = False

    def __post_init__(self) -> None:
        if self.type not in ("directory", "file"):
            raise ProvenanceError(f"root {self.name!r}: unknown type {self.type!r}")
        if self.absolute != (self.path.startswith("/") or self.remote):
            raise ProvenanceError(f"root {self.name!r}: path {self.path!r} does not match "
                                  "its absolute flag")
        if not self.absolute and not _relative_root(self.path):
            raise ProvenanceError(f"root {self.name!r}: {self.path!r} is not a plain relative "
                                  "path (POSIX, .. only at its start)")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "path": self.path, "type": self.type}
        if self.absolute:
            out["absolute"] = True
        return out

    @classmethod
    def from_dict(cls, data: Any, version: int) -> Root:
        if not isinstance(data, dict):
            raise TypeError("a root is not an object")
        if version == 1:  # {"name", "uri": "file:///abs", "type"}
            uri = _text(data["uri"])
            if not uri.startswith("file://"):
                raise ProvenanceError(f"root {data.get('name')!r} is at {uri}, not a local path")
            from urllib.parse import unquote, urlsplit
            return cls(_text(data["name"]), unquote(urlsplit(uri).path), _text(data["type"]),
                       absolute=True)
        absolute = data.get("absolute", False)
        if not isinstance(absolute, bool):
            raise TypeError("absolute is not true or false")
        return cls(_text(data["name"]), _text(data["path"]), _text(data["type"]), absolute)

    @property
    def remote(self) -> bool:
        return scheme_of(self.path) in OBJECT_SCHEMES

    def where(self, manifest_dir: Path) -> Path:
        """Where the root is when the manifest sits in ``manifest_dir``."""
        if self.remote:
            raise ProvenanceError(f"root {self.name!r} is in object storage ({self.path}): "
                                  "re-hash it with manifest create and compare the digests")
        return Path(self.path) if self.absolute else manifest_dir / self.path


@dataclass(frozen=True)
class Manifest:
    roots: tuple[Root, ...]
    entries: tuple[Entry, ...]
    created_by: Mapping[str, str]
    spec: HashSpec = field(default_factory=HashSpec)
    root_digest: str = ""
    schema_version: int = SCHEMA_VERSION
    """The version it was written in (1: roots by absolute URI; read, verified only with
    the roots' paths given)."""

    def __post_init__(self) -> None:
        if not self.roots:
            raise ProvenanceError("a manifest needs at least one root")
        paths = sorted(map(_path_of, self.entries))  # entries come sorted: linear time
        if any(map(operator.eq, paths, paths[1:])):
            raise ProvenanceError("manifest lists the same path twice")
        computed = _digest_of(self.lines)
        if not self.root_digest:
            object.__setattr__(self, "root_digest", computed)
        elif self.root_digest != computed:
            raise ProvenanceError("manifest root digest does not match its entries "
                                  "(the entries were edited)")

    @functools.cached_property
    def lines(self) -> list[str]:
        """The entries' canonical lines, sorted by path (the root digest's input, and the
        entry lines of :meth:`to_json`): made once per manifest."""
        return canonical_lines(self.entries)

    @classmethod
    def _with_lines(cls, lines: list[str] | None, *args: Any) -> Manifest:
        """``Manifest(*args)`` whose :attr:`lines` are ``lines`` (what ``canonical_lines``
        gives for its entries, made with them) rather than formatted again; None: made."""
        made = object.__new__(cls)
        if lines is not None:
            made.__dict__["lines"] = lines  # where the cached property keeps its value
        made.__init__(*args)  # type: ignore[misc]
        return made

    def to_dict(self, *, entries: bool = True) -> dict[str, Any]:
        return {
            "kind": KIND,
            "schemaVersion": self.schema_version,
            "createdBy": dict(self.created_by),
            "roots": [r.to_dict() for r in self.roots],
            "hashing": {"algorithm": self.spec.algorithm, "shardSize": self.spec.shard_size},
            "rootDigest": {"sha256": self.root_digest},
            **({"entries": [e.to_dict() for e in self.entries]} if entries else {}),
        }

    def to_json(self) -> str:
        """Indented JSON with one entry per line, each in its canonical form (the bytes the
        root digest covers): fast to write, easy to diff."""
        doc = self.to_dict(entries=False)
        head = json.dumps(doc, indent=1)
        lines = ",\n".join("  " + line for line in self.lines)
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
        if version < 1:
            raise ProvenanceError(f"manifest has an unknown schema version {version}")
        try:
            roots = tuple(Root.from_dict(r, version) for r in data["roots"])
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
        return cls(roots, entries, {str(k): str(v) for k, v in created.items()}, spec, digest,
                   version)

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
    if not _plain(path):
        raise ProvenanceError(f"path {path!r} escapes its root or is not a plain relative path")


def _plain(path: str) -> bool:
    """A POSIX path relative to its root, without ``.``/``..``/empty parts or backslashes
    (string tests only: it runs once per manifest entry)."""
    wrapped = f"/{path}/"
    return bool(path) and "//" not in wrapped and "/./" not in wrapped \
        and "/../" not in wrapped and "\\" not in path and "\0" not in path


def _relative_root(path: str) -> bool:
    """A root's path: ``.``, or ``..`` steps, then optionally a plain relative path."""
    rest = path
    while rest.startswith("../"):
        rest = rest[3:]
    return path == "." or rest == ".." or _plain(rest)


_HEX64 = re.compile("[0-9a-f]{64}")
_LABELS_SEEN: set[str] = set()
"""Digest labels already parsed: one per manifest, checked once rather than per entry."""
_json_str = json.encoder.encode_basestring_ascii
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _digest_of(lines: list[str]) -> str:
    """The root digest: SHA-256 over the entries' canonical lines, each ending in a newline."""
    return hashlib.sha256(("\n".join(lines) + "\n" if lines else "").encode()).hexdigest()


def canonical_lines(entries: Sequence[Entry]) -> list[str]:
    """Each entry as canonical JSON (sorted keys, no spaces, ASCII), sorted by path.

    A file entry (nearly all of them) is formatted directly, its path with the standard
    library's C string encoder (its label and hex digest, checked when the entry was made,
    need no escaping): building a dict and encoding it cost most of a small-file manifest's
    time. The result is byte for byte what the general encoder gives (a test checks it)."""
    out = []
    for e in sorted(entries, key=_path_of):
        if e.type == "file":
            ((label, value),) = e.digest.items()
            out.append(_file_line(e.path, int(e.size), label, value))
        else:
            out.append(_CANONICAL.encode(e.to_dict()))
    return out


def _file_line(path: str, size: int, label: str, digest: str) -> str:
    """The canonical line of a file entry (see :func:`canonical_lines`)."""
    return (f'{{"digest":{{"{label}":"{digest}"}},"path":{_json_str(path)},"size":{size},'
            '"type":"file"}')


_path_of = operator.attrgetter("path")


def who_where_when() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = str(os.getuid())
    return {
        "user": user,
        "host": _hostname(),
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool": f"mlward {__version__}",
    }


def _hostname() -> str:
    """``os.uname().nodename`` (what ``socket.gethostname`` returns on POSIX, without
    importing socket), else socket's answer."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


_SPECIAL = {stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "char-device",
            stat.S_IFBLK: "block-device"}


@dataclass(frozen=True)
class Listed:
    """What a walk found: entries without digests yet, and the files still to hash (their
    entry name and path: their size comes from reading them), or, for object storage, their
    entry name and job (the listing gave their size)."""

    entries: tuple[Entry, ...]
    files: tuple[tuple[str, str | Path], ...]
    objects: tuple[tuple[str, FileJob], ...] = ()


def walk(root: Path, prefix: str = "", exclude: frozenset[str] = frozenset()) -> Listed:
    """List everything under ``root`` without following symlinks.

    ``root`` itself may be a file. Names in ``exclude`` are skipped at any depth. Types come
    from the directory listing (no ``stat`` per file; only an entry of another type than
    file, folder or link is ``lstat``-ed to name it).
    """
    entries: list[Entry] = []
    files: list[tuple[str, str | Path]] = []
    try:
        st = root.stat()
    except OSError as exc:
        raise ProvenanceError(f"cannot read {root}: {exc.strerror}") from None
    if stat.S_ISREG(st.st_mode):
        check_relative(prefix or root.name)
        return Listed((), ((prefix or root.name, root),))
    if not stat.S_ISDIR(st.st_mode):
        special = _SPECIAL.get(stat.S_IFMT(st.st_mode), "fifo")
        return Listed((Entry(prefix or root.name, special),), ())
    for rel, item in _scan(root, exclude):
        name = f"{prefix}/{rel}" if prefix else rel
        try:
            if item.is_file(follow_symlinks=False):
                if "\\" in name:  # a POSIX name may hold one, a manifest path may not
                    check_relative(name)
                files.append((name, item.path))
            elif item.is_symlink():
                entries.append(Entry(name, "symlink", target=str(Path(item.path).readlink())))
            else:
                kind = stat.S_IFMT(item.stat(follow_symlinks=False).st_mode)
                if kind in _SPECIAL:
                    entries.append(Entry(name, _SPECIAL[kind]))
        except OSError as exc:
            raise ProvenanceError(f"cannot read {item.path}: {exc.strerror}") from None
    return Listed(tuple(entries), tuple(files))


def _scan(root: Path, exclude: frozenset[str]) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative path, entry) of everything under ``root`` that is not a folder."""
    stack = [("", root)]
    while stack:
        rel_dir, directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                items = list(it)  # in any order: entries are sorted by path at the end
        except OSError as exc:
            raise ProvenanceError(f"cannot list {directory}: {exc.strerror}") from None
        for item in items:
            if item.name in exclude:
                continue
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            try:
                is_dir = item.is_dir(follow_symlinks=False)
            except OSError as exc:
                raise ProvenanceError(f"cannot read {item.path}: {exc.strerror}") from None
            if is_dir:
                stack.append((rel, Path(item.path)))
            else:
                yield rel, item


def list_remote(url: str, prefix: str = "",
                exclude: frozenset[str] = frozenset()) -> Listed:
    """The objects under an object-storage prefix (``s3://bucket/prefix``), as files to hash.
    Keys with a segment named in ``exclude`` are left out."""
    objects = []
    for obj in list_objects(url):
        if exclude.intersection(obj.key.split("/")):
            continue
        name = f"{prefix}/{obj.key}" if prefix else obj.key
        objects.append((name, FileJob.remote(obj.url, obj.size, "")))
    return Listed((), (), tuple(objects))


Target = Path | str
"""A manifest root: a local path, or an object-storage prefix URI (``s3://bucket/prefix``)."""


def root_names(paths: Sequence[Target]) -> list[str]:
    """Names for roots in entry paths: empty for a single folder (or prefix), else unique
    base names."""
    if len(paths) == 1 and (isinstance(paths[0], str) or paths[0].is_dir()):
        return [""]
    names: list[str] = []
    for p in paths:
        base = (p.rstrip("/").rsplit("/", 1)[-1] if isinstance(p, str) else p.resolve().name) \
            or "root"
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def hash_roots(paths: Sequence[Target], names: Sequence[str], spec: HashSpec,
               exclude: frozenset[str] = frozenset(),
               labels: Mapping[str, str] | None = None,
               progress: Callable[[int], None] | None = None,
               manifest_file: Path | None = None,
               executor: Executor | None = None) -> tuple[Entry, ...]:
    """Entries for everything under ``paths``, sorted by path, files hashed in parallel: by
    this machine's threads, or by ``executor``'s workers (a Dask cluster; threads by default
    for object storage), with the same digests either way.

    Each file gets the label ``spec`` gives its size, or, when ``labels`` names its path (a
    manifest being verified), that label; files ``labels`` does not name use ``spec``.
    ``manifest_file``, when it lies under a root, is left out: a manifest does not list itself.
    """
    return _hash_roots(paths, names, spec, exclude, labels, progress, manifest_file,
                       executor)[0]


def _hash_roots(paths: Sequence[Target], names: Sequence[str], spec: HashSpec,
                exclude: frozenset[str], labels: Mapping[str, str] | None,
                progress: Callable[[int], None] | None, manifest_file: Path | None,
                executor: Executor | None) -> tuple[tuple[Entry, ...], list[str] | None]:
    """:func:`hash_roots`, and the entries' canonical lines when they came with the entries
    (files of a local tree, nothing else in it), else None."""
    listed = [list_remote(p, n, exclude) if isinstance(p, str) else walk(p, n, exclude)
              for p, n in zip(paths, names, strict=True)]
    own = _names_of(manifest_file, paths, names)
    specials = [e for item in listed for e in item.entries if e.path not in own]
    files = [f for item in listed for f in item.files if f[0] not in own]
    objects = [f for item in listed for f in item.objects]
    if executor is None and not objects:
        files.sort()  # by entry path (names are unique): the entries come out in order
        hashed = hash_paths([path for _, path in files], spec, progress=progress,
                            labels=[labels.get(name) for name, _ in files] if labels else None)
        entries, lines = _file_entries([name for name, _ in files], hashed)
        if not specials:
            return tuple(entries), lines
    else:
        # Work units for other machines carry each file's size (a stat here, for local files).
        sized = [*((name, _stat_job(path)) for name, path in files), *objects]
        jobs = [job._replace(label=(labels or {}).get(name) or spec.label_for(job.size))
                for name, job in sized]
        if executor is None:
            from mlward.executors import ThreadExecutor

            executor = ThreadExecutor()  # object storage: the work is waiting on requests
        digests = hash_with(executor, jobs)
        entries = [Entry(name, "file", job.size, {job.label: digest})  # object keys: checked
                   for (name, _), job, digest in zip(sized, jobs, digests, strict=True)]
    return tuple(sorted(specials + entries, key=_path_of)), None


def _file_entries(names: Sequence[str], hashed: Sequence[Hashed]) -> tuple[list[Entry],
                                                                            list[str]]:
    """The entries of files this process listed and hashed, and their canonical lines, in one
    pass in ``names``' order: on many small files, making each entry and formatting it again
    later was a tenth of a manifest's time.

    Each is ``Entry(name, "file", size, {label: digest})`` without the checks of ``__init__``
    (on many small files they cost as much as building the rest of the manifest): ``name``
    comes from :func:`walk`, which refuses a name no manifest may hold, ``label`` from a
    :class:`HashSpec` or a validated entry, ``digest`` from the hash function. Entries read
    from a file always take ``__init__``: a manifest on disk is untrusted input."""
    new = object.__new__
    entries: list[Entry] = []
    lines: list[str] = []
    for name, (size, label, digest) in zip(names, hashed, strict=True):
        entry = new(Entry)
        entry.__dict__.update(path=name, type="file", size=size, digest={label: digest},
                              target=None)
        entries.append(entry)
        lines.append(_file_line(name, size, label, digest))
    return entries, lines


def _stat_job(path: str | Path) -> FileJob:
    try:
        return FileJob.of(path, Path(path).lstat(), "")
    except OSError as exc:
        raise ProvenanceError(f"cannot read {path}: {exc.strerror}") from None


def _names_of(target: Path | None, paths: Sequence[Target], names: Sequence[str]) -> set[str]:
    """The entry names ``target`` would have under the folder roots it lies in."""
    if target is None:
        return set()
    resolved = target.resolve()
    out = set()
    for p, n in zip(paths, names, strict=True):
        if isinstance(p, Path) and p.is_dir() and resolved.is_relative_to(p.resolve()):
            rel = resolved.relative_to(p.resolve()).as_posix()
            out.add(f"{n}/{rel}" if n else rel)
    return out


def create(paths: Sequence[Target], spec: HashSpec | None = None, *,
           exclude: frozenset[str] = frozenset(),
           progress: Callable[[int], None] | None = None,
           manifest_file: Path | None = None, within: Path | None = None,
           absolute: bool = False, executor: Executor | None = None) -> Manifest:
    """A manifest of ``paths`` (files, folders, or object-storage prefixes recorded by their
    URI), hashed with ``spec`` (by ``executor``'s workers when given).

    ``manifest_file`` is where the manifest will be written (default: in the current folder);
    roots are recorded relative to its folder, and it is not listed in itself. Every root must
    lie inside ``within`` (default: the project holding that folder, else the folder itself);
    one outside is refused, or recorded by absolute path with ``absolute``.
    """
    if not paths:
        raise ProvenanceError("nothing to put in a manifest")
    base = (manifest_file.parent if manifest_file is not None else Path()).resolve()
    bound = (within or project_root(base) or base).resolve()
    names = root_names(paths)
    roots = []
    for p, n in zip(paths, names, strict=True):
        if isinstance(p, str):
            url = p.rstrip("/")
            roots.append(Root(n or url.rsplit("/", 1)[-1], url, "directory", absolute=True))
            continue
        real = p.resolve()
        kind = "directory" if p.is_dir() else "file"
        if real.is_relative_to(bound):
            roots.append(Root(n or real.name, Path(os.path.relpath(real, base)).as_posix(),
                              kind))
        elif absolute:
            roots.append(Root(n or real.name, real.as_posix(), kind, absolute=True))
        else:
            raise ProvenanceError(
                f"{p} is outside {bound} (the project or folder the manifest belongs to), so "
                "a clone could not find it; record it by absolute path with "
                "--absolute-paths (marked as such; verification then reads that path "
                "wherever it runs), or put the manifest where it can reach the data")
    entries, lines = _hash_roots(paths, names, spec or HashSpec(), exclude, None, progress,
                                 manifest_file, executor)
    return Manifest._with_lines(lines, tuple(roots), entries, who_where_when(),
                                spec or HashSpec())


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


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` compared: each root and the path it was read from, and the changes."""

    roots: tuple[tuple[Root, Path], ...]
    changes: tuple[Change, ...]

    def where(self) -> list[str]:
        """One line per root: where it was read, and how the manifest records it."""
        return [f"{root.name}: {path} (recorded by absolute path: another copy than this "
                "project's may be the one checked)" if root.absolute else
                f"{root.name}: {path} (recorded as {root.path}, relative to the manifest)"
                for root, path in self.roots]

    def to_dict(self) -> dict[str, Any]:
        return {"roots": [{"name": r.name, "recorded": r.path, "absolute": r.absolute,
                           "checked": str(p)} for r, p in self.roots],
                "changes": [c.to_dict() for c in self.changes]}


def verify(manifest: Manifest, paths: Sequence[Path] | None = None,
           progress: Callable[[int], None] | None = None,
           manifest_file: Path | None = None) -> Verification:
    """Re-hash the manifest's roots (or ``paths`` in their place) and list every change.

    Roots are found relative to the folder of ``manifest_file`` (where the manifest is now;
    default: the current folder), so a clone is checked against its own files. ``manifest_file``
    is not compared with itself.
    """
    if paths:
        if len(paths) != len(manifest.roots):
            raise ProvenanceError(f"the manifest has {len(manifest.roots)} root(s); "
                                  f"give as many paths, in the same order")
        targets = list(paths)
    elif manifest.schema_version < 2:
        raise ProvenanceError(
            "this manifest (schema 1, from an earlier mlward) records its roots by absolute "
            "path, which in a clone or a moved project is another copy than the one here: "
            "give the roots' paths (mlward manifest verify FILE PATH...) or re-create it")
    else:
        base = manifest_file.parent if manifest_file is not None else Path()
        targets = [r.where(base) for r in manifest.roots]
    for t in targets:
        if not t.exists():
            raise ProvenanceError(f"{t} does not exist")
    names = [r.name for r in manifest.roots] if len(manifest.roots) > 1 else [
        manifest.roots[0].name if manifest.roots[0].type == "file" else ""]
    labels = {e.path: e.label for e in manifest.entries if e.type == "file"}
    current = hash_roots(targets, names, manifest.spec, labels=labels, progress=progress,
                         manifest_file=manifest_file)
    read_at = (Path(os.path.normpath(t.absolute())) for t in targets)
    return Verification(tuple(zip(manifest.roots, read_at, strict=True)),
                        tuple(diff(manifest.entries, current)))
