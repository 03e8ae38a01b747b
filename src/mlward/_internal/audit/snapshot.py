"""Audit snapshots: the whole ML environment of a project at one moment, as one document.

A snapshot (``kind`` ``mlward.audit.snapshot``, ``schemaVersion`` 1) records who took it, where
and when, the project's git commit and whether the work tree was dirty, the tool versions, the
outcome of every audit step, the digest of every tracked file with its kind (model, data, code,
other), the fingerprint of every finding, the BOM digest and the gate verdict, and whether it
is complete (and if not, why). Its bytes are the RFC 8785 canonical JSON of :meth:`to_dict`,
and its id is the SHA-256 of those bytes: the document is content-addressed, stored as
``.mlward/snapshots/<id>.json`` and committed to the ledger by that digest.

Readers (``audit diff``, the dashboard) use :meth:`Snapshot.from_dict`, which validates the
shape and refuses a newer schema; :meth:`Snapshot.load` also checks the bytes against the id.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mlward._internal.audit.errors import AuditError
from mlward._internal.ledger.entry import canonical_json
from mlward._internal.provenance.manifest import Entry as ManifestEntry
from mlward._internal.provenance.manifest import content_key, entry_dict

KIND = "mlward.audit.snapshot"
SCHEMA_VERSION = 1
MAX_SNAPSHOT_BYTES = 1 << 30
FILE_KINDS = ("model", "data", "code", "other")
STEP_STATUSES = ("ok", "findings", "incomplete", "failed", "unavailable")
_ID = re.compile("[0-9a-f]{64}")

# What a file is, from the format the scan recognised, else from its name.
MODEL_FORMATS = frozenset({
    "pickle", "joblib", "pytorch-zip", "pytorch-legacy", "pytorch-tar", "pytorch-metadata",
    "numpy-npy", "numpy-npz", "safetensors", "keras", "keras-hdf5", "hdf5", "tensorflow",
    "gguf", "onnx"})
CODE_FORMATS = frozenset({"python", "notebook", "jinja-template"})
MODEL_SUFFIXES = frozenset({
    ".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".onnx", ".gguf", ".ggml", ".h5",
    ".hdf5", ".keras", ".pb", ".tflite", ".pkl", ".pickle", ".joblib", ".npy", ".npz",
    ".mlmodel", ".pte", ".msgpack", ".model"})
DATA_SUFFIXES = frozenset({
    ".csv", ".tsv", ".parquet", ".jsonl", ".ndjson", ".arrow", ".feather", ".avro", ".orc",
    ".tfrecord", ".tfrecords", ".xlsx", ".xls", ".sqlite", ".db", ".png", ".jpg", ".jpeg",
    ".gif", ".bmp", ".tif", ".tiff", ".webp", ".wav", ".mp3", ".flac", ".ogg", ".mp4",
    ".txt", ".json", ".xml", ".zarr", ".lmdb"})
CODE_SUFFIXES = frozenset({
    ".py", ".ipynb", ".r", ".sh", ".sql", ".scala", ".jl", ".js", ".ts", ".java", ".go",
    ".rs", ".c", ".cc", ".cpp", ".h", ".hpp", ".cu", ".yaml", ".yml", ".toml", ".cfg",
    ".ini", ".j2", ".jinja", ".dockerfile"})


def classify(path: str, format: str | None = None, *, dataset: bool = False) -> str:
    """``model``, ``data``, ``code`` or ``other``: by the format the scan recognised, else
    by name; a file under a dataset's manifest root is data unless it is a model or code."""
    if format in MODEL_FORMATS:
        return "model"
    if format in CODE_FORMATS:
        return "code"
    name = path.rsplit("/", 1)[-1].lower()
    suffix = os.path.splitext(name)[1]  # noqa: PTH122 (a POSIX string, not a local path)
    if suffix in MODEL_SUFFIXES:
        return "model"
    if suffix in CODE_SUFFIXES or name in ("dockerfile", "makefile", "requirements.txt"):
        return "code"
    if dataset or suffix in DATA_SUFFIXES:
        return "data"
    return "other"


@dataclass(frozen=True, order=True)
class TrackedFile:
    """One file of the project: its path relative to the root, type, size, digest
    (``{label: hex}``, as in manifests), symlink target, and kind."""

    path: str
    type: str = "file"
    size: int = 0
    digest: Mapping[str, str] = field(default_factory=dict, compare=False)
    target: str | None = None
    kind: str = "other"

    def __post_init__(self) -> None:
        if self.kind not in FILE_KINDS:
            raise AuditError(f"snapshot file {self.path!r}: unknown kind {self.kind!r}")
        self.entry()  # the manifest entry's checks: a relative path, a well-formed digest

    def entry(self) -> ManifestEntry:
        from mlward._internal.provenance.errors import ProvenanceError

        try:
            return ManifestEntry(self.path, self.type, self.size, self.digest, self.target)
        except ProvenanceError as exc:
            raise AuditError(f"snapshot file: {exc}") from None

    @property
    def content(self) -> tuple[str, ...]:
        """What must match for two files to hold the same content (as manifest entries)."""
        return content_key(self.type, self.digest, self.target)

    @property
    def digest_ref(self) -> str | None:
        """``label:hex``, as the ledger's forensic index keeps digests."""
        return next((f"{k}:{v}" for k, v in self.digest.items()), None)

    def to_dict(self) -> dict[str, Any]:
        # The manifest entry's form, without building (and re-validating) an Entry.
        out = entry_dict(self.path, self.type, self.size, self.digest, self.target)
        out["kind"] = self.kind
        return out

    @classmethod
    def from_dict(cls, data: Any) -> TrackedFile:
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise AuditError("snapshot file record is not an object with a kind")
        digest, size, target = data.get("digest", {}), data.get("size", 0), data.get("target")
        if not isinstance(data.get("path"), str) or not isinstance(data.get("type"), str) or \
                not isinstance(digest, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in digest.items()) or \
                not isinstance(size, int) or \
                isinstance(size, bool) or not (target is None or isinstance(target, str)):
            raise AuditError("snapshot file record has a field of the wrong type")
        return cls(data["path"], data["type"], size, digest, target, data["kind"])


@dataclass(frozen=True)
class StepRecord:
    """How one audit step went: ``ok``, ``findings``, ``incomplete`` (ran, but something
    could not be examined), ``failed`` (the step itself broke) or ``unavailable`` (not part
    of this installation, or not configured), with a one-line detail and its summary."""

    name: str
    status: str
    detail: str = ""
    summary: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STEP_STATUSES:
            raise AuditError(f"snapshot step {self.name!r}: unknown status {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail,
                "summary": dict(self.summary)}

    @classmethod
    def from_dict(cls, data: Any) -> StepRecord:
        _require(data, {"name": str, "status": str, "detail": str, "summary": dict}, "step")
        return cls(data["name"], data["status"], data["detail"], data["summary"])


@dataclass(frozen=True, order=True)
class FindingRecord:
    """A finding as a snapshot keeps it: enough to tell new from fixed across snapshots."""

    fingerprint: str
    rule: str
    severity: str
    location: str
    suppressed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "rule": self.rule, "severity": self.severity,
                "location": self.location, "suppressed": self.suppressed}

    @classmethod
    def from_dict(cls, data: Any) -> FindingRecord:
        _require(data, {"fingerprint": str, "rule": str, "severity": str, "location": str,
                        "suppressed": bool}, "finding")
        return cls(data["fingerprint"], data["rule"], data["severity"], data["location"],
                   data["suppressed"])


def _require(data: Any, fields: Mapping[str, type], what: str) -> None:
    if not isinstance(data, dict):
        raise AuditError(f"snapshot {what} is not an object")
    for key, kind in fields.items():
        if not isinstance(data.get(key), kind):
            raise AuditError(f"snapshot {what}: {key!r} is missing or not a "
                             f"{kind.__name__}")


@dataclass(frozen=True)
class Snapshot:
    """The document; ``created`` holds time (ledger format, UTC), user, host, cwd, tool."""

    created: Mapping[str, str]
    root: str
    git: Mapping[str, Any] | None
    tools: Mapping[str, str]
    steps: tuple[StepRecord, ...]
    files: tuple[TrackedFile, ...]
    findings: tuple[FindingRecord, ...]
    previous: str | None = None
    bom: Mapping[str, Any] | None = None
    gate: Mapping[str, Any] | None = None
    incomplete: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.previous is not None and not _ID.fullmatch(self.previous):
            raise AuditError("snapshot previous id is not a hex SHA-256")
        for key in ("time", "user", "host", "cwd", "tool"):
            if not isinstance(self.created.get(key), str):
                raise AuditError(f"snapshot created.{key} is missing")
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise AuditError("snapshot lists the same file twice")

    @property
    def complete(self) -> bool:
        return not self.incomplete

    @property
    def time(self) -> str:
        return self.created["time"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND, "schemaVersion": SCHEMA_VERSION, "previous": self.previous,
            "created": dict(self.created),
            "project": {"root": self.root, "git": None if self.git is None else dict(self.git)},
            "tools": dict(self.tools),
            "complete": self.complete, "incomplete": list(self.incomplete),
            "steps": [s.to_dict() for s in self.steps],
            "files": [f.to_dict() for f in self.files],
            "findings": [f.to_dict() for f in self.findings],
            "bom": None if self.bom is None else dict(self.bom),
            "gate": None if self.gate is None else dict(self.gate),
        }

    def canonical(self) -> bytes:
        return self._canonical

    @cached_property
    def _canonical(self) -> bytes:
        return canonical_json(self.to_dict())

    @cached_property
    def id(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    @classmethod
    def from_dict(cls, data: Any) -> Snapshot:
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise AuditError("not an mlward audit snapshot")
        version = data.get("schemaVersion")
        if not isinstance(version, int) or isinstance(version, bool):
            raise AuditError("snapshot has no schema version")
        if version > SCHEMA_VERSION:
            raise AuditError(f"snapshot schema version {version} is newer than this mlward "
                             f"reads ({SCHEMA_VERSION}); upgrade mlward")
        _require(data, {"created": dict, "project": dict, "tools": dict, "complete": bool,
                        "incomplete": list, "steps": list, "files": list,
                        "findings": list}, "document")
        project = data["project"]
        if not isinstance(project.get("root"), str) or not (
                project.get("git") is None or isinstance(project["git"], dict)):
            raise AuditError("snapshot project is malformed")
        for key in ("bom", "gate"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                raise AuditError(f"snapshot {key} is not an object")
        if not all(isinstance(r, str) for r in data["incomplete"]) or \
                data["complete"] != (not data["incomplete"]):
            raise AuditError("snapshot completeness does not match its reasons")
        previous = data.get("previous")
        if previous is not None and not isinstance(previous, str):
            raise AuditError("snapshot previous is not a string")
        return cls(
            created={str(k): v for k, v in data["created"].items()},
            root=project["root"], git=project["git"],
            tools={str(k): str(v) for k, v in data["tools"].items()},
            steps=tuple(StepRecord.from_dict(s) for s in data["steps"]),
            files=tuple(TrackedFile.from_dict(f) for f in data["files"]),
            findings=tuple(FindingRecord.from_dict(f) for f in data["findings"]),
            previous=previous, bom=data.get("bom"), gate=data.get("gate"),
            incomplete=tuple(data["incomplete"]))

    @classmethod
    def from_bytes(cls, raw: bytes, expected_id: str | None = None) -> Snapshot:
        """Parse stored bytes; with ``expected_id`` the bytes must hash to it and be the
        canonical form (a document edited, even reformatted, no longer is its snapshot)."""
        if expected_id is not None and hashlib.sha256(raw).hexdigest() != expected_id:
            raise AuditError(f"snapshot {expected_id[:12]} does not match its content digest: "
                             "the document was changed after it was recorded")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise AuditError(f"snapshot is not JSON: {exc}") from None
        snapshot = cls.from_dict(data)
        if canonical_json(data) != raw:
            raise AuditError("snapshot bytes are not its canonical form")
        return snapshot

    def write(self, folder: Path) -> Path:
        """Store as ``folder/<id>.json`` (atomically); returns the path."""
        from mlward._internal.io import atomic_write_bytes

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.id}.json"
        atomic_write_bytes(path, self.canonical(), mode=0o644)
        return path

    @classmethod
    def load(cls, folder: Path, snapshot_id: str) -> Snapshot:
        path = folder / f"{snapshot_id}.json"
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_SNAPSHOT_BYTES + 1)
        except OSError as exc:
            raise AuditError(f"cannot read snapshot {snapshot_id[:12]} ({path}): "
                             f"{exc.strerror or exc}") from None
        if len(raw) > MAX_SNAPSHOT_BYTES:
            raise AuditError(f"snapshot {path} is larger than {MAX_SNAPSHOT_BYTES} bytes")
        return cls.from_bytes(raw, snapshot_id)


def tools() -> dict[str, str]:
    from mlward._version import __version__

    return {"mlward": __version__, "python": platform.python_version(),
            "platform": platform.platform()}


def git_state(root: Path) -> dict[str, Any] | None:
    """The commit and dirty state of the git work tree holding ``root`` (None outside one)."""
    from mlward._internal.provenance.lineage import git_commit

    found = git_commit(root)
    if found is None:
        return None
    return {"commit": found[0], "dirty": found[1]}

