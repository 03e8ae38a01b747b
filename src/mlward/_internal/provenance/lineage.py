"""Lineage statements: which data, code and parameters produced a model.

A lineage statement is an in-toto Statement v1 stored beside the model as
``<model>.lineage.json``:

- ``subject``: every file of the model, named by its path inside the model folder (or its file
  name), with its plain SHA-256;
- ``predicateType`` ``https://slsa.dev/provenance/v1`` and a predicate of that shape:
  ``buildDefinition.externalParameters`` holds the run's parameters,
  ``buildDefinition.internalParameters.environment`` the Python version, platform, versions of
  key ML packages and the code's git commit, ``buildDefinition.resolvedDependencies`` one
  resource descriptor per input, ``runDetails`` the builder (mlward) and the run id and time.

Each input is a manifest: its descriptor's digest is the SHA-256 of the manifest file, and the
annotations give the manifest's path relative to the statement, its root digest and its roots'
paths (relative to the manifest). An input given as a plain path is hashed into a new manifest
kept in ``<model>.lineage-inputs/``. Nothing is recorded by absolute path unless asked
(``absolute``), so a clone verifies its own data and code, not the original's.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlward._internal.io import atomic_write_text
from mlward._internal.provenance.errors import ProvenanceError
from mlward._internal.provenance.hashing import HashSpec
from mlward._internal.provenance.manifest import (
    KIND,
    Change,
    Entry,
    Manifest,
    Root,
    check_relative,
    create,
    diff,
    hash_roots,
    read_bounded,
    verify,
)
from mlward._version import __version__
from mlward.settings import project_root

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/mlward/mlward/lineage/training/v1"
ML_PACKAGES = ("torch", "tensorflow", "jax", "numpy", "scikit-learn", "pandas", "transformers",
               "xgboost", "lightgbm", "safetensors", "onnx")
CODE_EXCLUDE = frozenset({".git", "__pycache__", ".venv", ".mlward"})


def statement_path(model: Path) -> Path:
    """Where a model's lineage statement lives: ``<model>.lineage.json`` beside it."""
    model = Path(os.path.normpath(model))
    return model.with_name(model.name + ".lineage.json")


def inputs_dir(model: Path) -> Path:
    model = Path(os.path.normpath(model))
    return model.with_name(model.name + ".lineage-inputs")


def model_entries(model: Path) -> tuple[Entry, ...]:
    """The model's files with plain SHA-256 digests (what in-toto subjects carry)."""
    if not model.exists():
        raise ProvenanceError(f"model {model} does not exist")
    name = "" if model.is_dir() else model.name
    entries = hash_roots([model], [name], HashSpec("sha256", None))
    odd = [e.path for e in entries if e.type != "file"]
    if odd:
        raise ProvenanceError(f"model {model} holds symlinks or special files "
                              f"({', '.join(odd[:5])}); a model's subject lists files only")
    if not entries:
        raise ProvenanceError(f"model {model} holds no file")
    return entries


def is_manifest_file(path: Path) -> bool:
    """True for a file whose JSON says it is an mlward manifest (read only when small)."""
    if not path.is_file() or path.stat().st_size > 64 << 20:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return f'"kind": "{KIND}"'.encode() in head or f'"kind":"{KIND}"'.encode() in head


def environment(code: Path | None) -> dict[str, Any]:
    packages = {}
    for name in ML_PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    env: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                           "packages": packages}
    if code is not None:
        commit = git_commit(code)
        if commit:
            env["gitCommit"], env["gitDirty"] = commit
    return env


def git_commit(directory: Path) -> tuple[str, bool] | None:
    """The HEAD commit of the git work tree at ``directory`` and whether it has changes."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        head = subprocess.run([git, "-C", str(directory), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=30, check=False)
        if head.returncode != 0:
            return None
        status = subprocess.run([git, "-C", str(directory), "status", "--porcelain"],
                                capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip(), bool(status.stdout.strip())


def _input(kind: str, manifest_file: Path, statement_dir: Path) -> dict[str, Any]:
    manifest = Manifest.load(manifest_file)
    raw = manifest_file.read_bytes()
    return {
        "name": f"{kind}:{','.join(r.name for r in manifest.roots)}",
        "digest": {"sha256": hashlib.sha256(raw).hexdigest()},
        "annotations": {
            "mlward.kind": kind,
            "mlward.manifest": Path(os.path.relpath(manifest_file.resolve(),
                                                    statement_dir.resolve())).as_posix(),
            "mlward.rootDigest": manifest.root_digest,
            "mlward.locations": [r.path for r in manifest.roots],
        },
    }


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``k=v`` pairs; a value that parses as JSON (a number, true, a list) keeps its type."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ProvenanceError(f"parameter {item!r} is not KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def record(model: Path, data: Sequence[Path], *, code: Path | None = None,
           params: Mapping[str, Any] | None = None, run_id: str | None = None,
           spec: HashSpec | None = None, output: Path | None = None,
           absolute: bool = False, label: str | None = None, key: str | None = None,
           snapshots: bool = True) -> tuple[Path, dict[str, Any]]:
    """Write the model's lineage statement; returns its path and the statement.

    Inputs given as paths are hashed into manifests beside the statement, their roots
    recorded relative to those manifests; an input outside the project holding the statement
    (or its folder) is refused unless ``absolute`` (see :func:`manifest.create`).

    With ``snapshots``, each tabular data input also gets a data snapshot in the inputs folder
    (see :mod:`mlward._internal.data.snapshot`), so that ``lineage verify`` can show what
    changed in it; ``label`` and ``key`` name its label and key columns."""
    started = _now()
    out = output or statement_path(model)
    subjects = [{"name": e.path, "digest": dict(e.digest)} for e in model_entries(model)]
    to_make: list[tuple[str, Path]] = []
    manifests: list[tuple[str, Path]] = []
    for item in data:
        if not item.exists():
            raise ProvenanceError(f"input {item} does not exist")
        if is_manifest_file(item):
            manifests.append(("data", item))
        else:
            to_make.append(("data", item))
    if code is not None:
        if not code.is_dir():
            raise ProvenanceError(f"code {code} is not a folder")
        to_make.append(("code", code))
    folder = inputs_dir(model) if output is None else out.with_name(out.name + "-inputs")
    within = project_root(out.parent.resolve()) or out.parent.resolve()
    made = []
    for n, (kind, item) in enumerate(to_make):
        path = folder / f"{n:02d}-{kind}-{item.resolve().name}.manifest.json"
        made.append((kind, path, create([item], spec, manifest_file=path, within=within,
                                        absolute=absolute,
                                        exclude=CODE_EXCLUDE if kind == "code" else
                                        frozenset())))
    if made:
        folder.mkdir(parents=True, exist_ok=True)
    for kind, path, manifest in made:
        manifest.write(path)
        manifests.append((kind, path))
    resolved = []
    for n, (kind, path) in enumerate(manifests):
        descriptor = _input(kind, path, out.parent)
        if snapshots and kind == "data":
            snap = _data_snapshot(path, folder / f"{n:02d}-data", label, key)
            if snap is not None:
                descriptor["annotations"]["mlward.dataSnapshot"] = os.path.relpath(
                    snap.resolve(), out.parent.resolve())
                descriptor["annotations"]["mlward.dataSnapshotDigest"] = hashlib.sha256(
                    snap.read_bytes()).hexdigest()
        resolved.append(descriptor)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"parameters": dict(params or {})},
                "internalParameters": {"environment": environment(code)},
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {"id": "https://github.com/mlward/mlward",
                            "version": {"mlward": __version__}},
                "metadata": {"invocationId": run_id or str(uuid.uuid4()),
                             "startedOn": started, "finishedOn": _now()},
            },
        },
    }
    atomic_write_text(out, json.dumps(statement, indent=1) + "\n", mode=0o644)
    return out, statement


def _data_snapshot(manifest: Path, base: Path, label: str | None,
                   key: str | None) -> Path | None:
    """A data snapshot of the input when it is a table and the ``data`` extra is installed;
    None otherwise (the input is still recorded and verified by its digests)."""
    from mlward._internal.data.snapshot import write_snapshot
    from mlward._internal.data.tables import DataError, resolve
    from mlward.errors import MissingExtra

    try:
        dataset = resolve(manifest)
        base.parent.mkdir(parents=True, exist_ok=True)
        return write_snapshot(dataset, base, label=label, key=key)
    except (DataError, MissingExtra):
        return None


def data_changes(item: Mapping[str, Any], statement_dir: Path) -> tuple[str, ...]:
    """What changed in a changed tabular input, from its data snapshot (no snapshot: ())."""
    annotations = item.get("annotations") or {}
    rel = annotations.get("mlward.dataSnapshot")
    if not isinstance(rel, str):
        return ()
    from mlward._internal.data.report import snapshot_summary

    return tuple(snapshot_summary(statement_dir / rel, statement_dir / annotations[
        "mlward.manifest"], digest=annotations.get("mlward.dataSnapshotDigest")))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Statement:
    """A lineage statement read back and checked for shape."""

    subjects: tuple[Entry, ...]
    inputs: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_bytes(cls, data: bytes, origin: str) -> Statement:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise ProvenanceError(f"{origin} is not valid JSON") from None
        try:
            if doc["_type"] != STATEMENT_TYPE:
                raise ProvenanceError(f"{origin} is not an in-toto Statement v1")
            if doc["predicateType"] != PREDICATE_TYPE:
                raise ProvenanceError(f"{origin} is not a lineage statement "
                                      f"(predicate type {doc['predicateType']})")
            subjects = []
            for s in doc["subject"]:
                check_relative(s["name"])
                subjects.append(Entry(s["name"], "file", 0, {"sha256": s["digest"]["sha256"]}))
            inputs = tuple(doc["predicate"]["buildDefinition"]["resolvedDependencies"])
            for i in inputs:
                if not isinstance(i["annotations"]["mlward.manifest"], str) or not isinstance(
                        i["digest"]["sha256"], str):
                    raise TypeError("input without a manifest")
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProvenanceError(f"{origin} is malformed ({exc!s})") from None
        return cls(tuple(subjects), inputs)


def load_statement(path: Path) -> Statement:
    return Statement.from_bytes(read_bounded(path, "lineage statement"), str(path))


def check_model(statement: Statement, model: Path) -> list[Change]:
    return diff(statement.subjects, model_entries(model))


@dataclass(frozen=True)
class InputResult:
    name: str
    problem: str | None  # why the input could not be checked, or None
    changes: tuple[Change, ...]
    roots: tuple[tuple[Root, Path], ...] = ()
    """Each root of the input's manifest and where it was read."""

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.changes


def check_input(item: Mapping[str, Any], statement_dir: Path) -> InputResult:
    """Re-hash one input against its manifest; the manifest itself must be the one recorded.

    The manifest is found relative to the statement, and its roots relative to the manifest:
    never at an absolute path an older statement may also name (in a clone, that would be the
    original's copy)."""
    name = str(item.get("name", "?"))
    rel = item["annotations"]["mlward.manifest"]
    path = statement_dir / rel
    try:
        raw = read_bounded(path, "manifest")
    except ProvenanceError as exc:
        return InputResult(name, exc.diagnostics(), ())
    if hashlib.sha256(raw).hexdigest() != item["digest"]["sha256"]:
        return InputResult(name, f"its manifest {path} was changed after the lineage was "
                           "recorded", ())
    try:
        manifest = Manifest.from_dict(json.loads(raw))
        checked = verify(manifest, manifest_file=path)
    except (ValueError, RecursionError):
        return InputResult(name, f"its manifest {path} is not valid JSON", ())
    except ProvenanceError as exc:
        return InputResult(name, exc.diagnostics(), ())
    return InputResult(name, None, checked.changes, checked.roots)
