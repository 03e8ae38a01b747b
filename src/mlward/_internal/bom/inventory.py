"""The internal inventory: one JSON-able record of every model, dataset, library, service and
external source of a project, from which every BOM format is written.

CycloneDX and SPDX documents are renderings of an :class:`Inventory`; ``bom verify`` and
``bom diff`` read a document back into one (:mod:`.read`), so the two formats can never
disagree and a diff does not care which format either side was written in. The dashboard
reads the same structure (:meth:`Inventory.to_dict`), and the ledger keeps a copy of each one
by digest (``.mlward/boms/<sha256>.json``).

Shape (``schemaVersion`` 1), all values JSON:

- ``components``: one :class:`Component` each, with a stable ``ref`` (``model:<path>``,
  ``data:<path>``, ``pkg:pypi/<name>@<version>``, ``service:<tool>@<where>``,
  ``hub:<provider>/<name>@<revision>``, ``ai-service:<provider>``);
- ``workflows``: the lineage (data -> training run -> model) as :class:`Workflow` items whose
  inputs and outputs are component refs;
- ``ledger``: the signed checkpoint the BOM is bound to (origin, size, root), or None;
- ``incomplete``: reasons the whole BOM is incomplete (a lock file that did not parse...).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

SCHEMA_VERSION = 1
KINDS = ("model", "dataset", "library", "service", "model-source", "ai-service")
"""``model-source``: a model pulled from a hub at run time; ``ai-service``: a hosted model API."""


class InventoryError(ValueError):
    """A document that is not an inventory this version reads."""


def _json(value: Any) -> Any:
    """JSON values as JSON gives them back (lists, string-keyed dicts): a component built in
    memory and one read from a file compare equal."""
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return value


@dataclass(frozen=True)
class FileRecord:
    """One file of a model or dataset: its path relative to the root, size and digests
    (``sha256`` always, ``blake3`` where a manifest computed one) and its provenance checks.

    ``manifest``: ``match``, ``mismatch`` or None (no manifest covers it); ``signature``:
    ``valid``, ``invalid``, ``unchecked`` (signed, no trusted keys given) or None;
    ``ledger``: True when the ledger holds an entry with this digest.
    """

    path: str
    size: int
    digests: Mapping[str, str]
    manifest: str | None = None
    signature: str | None = None
    ledger: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "size": self.size,
                               "digests": dict(self.digests)}
        for key in ("manifest", "signature"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.ledger:
            out["ledger"] = True
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FileRecord:
        return cls(str(d["path"]), int(d.get("size", 0)), dict(d.get("digests") or {}),
                   d.get("manifest"), d.get("signature"), bool(d.get("ledger", False)))


@dataclass(frozen=True)
class Vulnerability:
    """A known vulnerability of a library (from OSV data)."""

    id: str
    aliases: tuple[str, ...] = ()
    severity: str | None = None
    score: float | None = None
    vector: str | None = None
    cwes: tuple[str, ...] = ()
    summary: str = ""
    fixed: tuple[str, ...] = ()
    upgrade: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: _json(v) for k, v in self.__dict__.items() if v not in (None, (), "")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Vulnerability:
        return cls(str(d["id"]), tuple(d.get("aliases", ())), d.get("severity"),
                   d.get("score"), d.get("vector"), tuple(d.get("cwes", ())),
                   str(d.get("summary", "")), tuple(d.get("fixed", ())), d.get("upgrade"))


@dataclass(frozen=True)
class Component:
    """One model, dataset, library, service or external source.

    ``location`` is the root-relative path (a file or folder) or an absolute URI (a purl, a
    URL). ``properties`` hold what the files state (format, framework, parameters, tensors,
    dtypes, architecture, task, record count...), ``card`` the model card (task,
    architecture, datasets as component refs, inputs, outputs, metrics, considerations),
    ``findings`` the scan findings on it (``[rule, severity, message]``), ``incomplete``
    why something about it could not be read.
    """

    ref: str
    kind: str
    name: str
    location: str
    version: str | None = None
    purl: str | None = None
    description: str | None = None
    supplier: str | None = None
    license: str | None = None
    files: tuple[FileRecord, ...] = ()
    properties: Mapping[str, Any] = field(default_factory=dict)
    card: Mapping[str, Any] = field(default_factory=dict)
    vulnerabilities: tuple[Vulnerability, ...] = ()
    verdict: str | None = None
    findings: tuple[tuple[str, str, str], ...] = ()
    incomplete: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "properties", _json(self.properties))
        object.__setattr__(self, "card", _json(self.card))
        if self.kind not in KINDS:
            raise InventoryError(f"component {self.ref!r}: unknown kind {self.kind!r}")
        if not self.ref or not self.name:
            raise InventoryError("a component needs a ref and a name")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ref": self.ref, "kind": self.kind, "name": self.name,
                               "location": self.location}
        for key in ("version", "purl", "description", "supplier", "license", "verdict"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.files:
            out["files"] = [f.to_dict() for f in self.files]
        for key in ("properties", "card"):
            if getattr(self, key):
                out[key] = _json(getattr(self, key))
        if self.vulnerabilities:
            out["vulnerabilities"] = [v.to_dict() for v in self.vulnerabilities]
        if self.findings:
            out["findings"] = [list(f) for f in self.findings]
        if self.incomplete:
            out["incomplete"] = list(self.incomplete)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Component:
        return cls(
            ref=str(d["ref"]), kind=str(d["kind"]), name=str(d["name"]),
            location=str(d.get("location", "")), version=d.get("version"),
            purl=d.get("purl"), description=d.get("description"), supplier=d.get("supplier"),
            license=d.get("license"),
            files=tuple(FileRecord.from_dict(f) for f in d.get("files", ())),
            properties=_json(d.get("properties") or {}), card=_json(d.get("card") or {}),
            vulnerabilities=tuple(Vulnerability.from_dict(v)
                                  for v in d.get("vulnerabilities", ())),
            verdict=d.get("verdict"),
            findings=tuple((str(f[0]), str(f[1]), str(f[2])) for f in d.get("findings", ())),
            incomplete=tuple(str(x) for x in d.get("incomplete", ())))

    def with_(self, **changes: Any) -> Component:
        return replace(self, **changes)


@dataclass(frozen=True)
class Workflow:
    """A training run from a lineage statement: inputs and outputs are component refs."""

    ref: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    started: str | None = None
    finished: str | None = None
    statement: str | None = None
    """The lineage statement's path."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", _json(self.parameters))
        object.__setattr__(self, "environment", _json(self.environment))

    def to_dict(self) -> dict[str, Any]:
        out = {k: _json(v) for k, v in self.__dict__.items()
               if v is not None and v != {} and v != ()}
        out.setdefault("inputs", [])
        out.setdefault("outputs", [])
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Workflow:
        return cls(str(d["ref"]), str(d["name"]), tuple(d.get("inputs", ())),
                   tuple(d.get("outputs", ())), _json(d.get("parameters") or {}),
                   _json(d.get("environment") or {}), d.get("run_id"), d.get("started"),
                   d.get("finished"), d.get("statement"))


@dataclass(frozen=True)
class LedgerBinding:
    """The ledger checkpoint a BOM is bound to: the signed note and what it says."""

    origin: str
    size: int
    root: str
    """The tree root, base64 as in the checkpoint."""
    note: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LedgerBinding:
        return cls(str(d["origin"]), int(d["size"]), str(d["root"]), str(d["note"]))


@dataclass(frozen=True)
class Inventory:
    """Everything one ``mlward bom`` run found (see the module docstring)."""

    name: str
    root: str
    created: str
    tool_version: str
    components: tuple[Component, ...]
    workflows: tuple[Workflow, ...] = ()
    ledger: LedgerBinding | None = None
    incomplete: tuple[str, ...] = ()
    serial: str = ""
    """The document's serial number (``urn:uuid:...``), kept across formats."""

    def __post_init__(self) -> None:
        refs = [c.ref for c in self.components]
        if len(set(refs)) != len(refs):
            dup = sorted({r for r in refs if refs.count(r) > 1})
            raise InventoryError(f"component refs must be unique: {', '.join(dup[:5])}")

    def component(self, ref: str) -> Component | None:
        return next((c for c in self.components if c.ref == ref), None)

    def of_kind(self, kind: str) -> list[Component]:
        return [c for c in self.components if c.kind == kind]

    @property
    def is_incomplete(self) -> bool:
        return bool(self.incomplete) or any(c.incomplete for c in self.components)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "mlward.inventory", "schemaVersion": SCHEMA_VERSION, "name": self.name,
            "root": self.root, "created": self.created, "toolVersion": self.tool_version,
            "serial": self.serial,
            "components": [c.to_dict() for c in self.components],
            "workflows": [w.to_dict() for w in self.workflows],
            "ledger": self.ledger.to_dict() if self.ledger else None,
            "incomplete": list(self.incomplete),
        }
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n"

    def digest(self) -> str:
        """SHA-256 of the canonical JSON (sorted keys, no spaces)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def from_dict(cls, d: Any) -> Inventory:
        if not isinstance(d, Mapping) or d.get("kind") != "mlward.inventory":
            raise InventoryError("not an mlward inventory")
        if d.get("schemaVersion") != SCHEMA_VERSION:
            raise InventoryError(f"inventory schema version {d.get('schemaVersion')!r} is not "
                                 f"{SCHEMA_VERSION}")
        try:
            ledger = d.get("ledger")
            return cls(
                name=str(d["name"]), root=str(d["root"]), created=str(d["created"]),
                tool_version=str(d["toolVersion"]), serial=str(d.get("serial", "")),
                components=tuple(Component.from_dict(c) for c in d["components"]),
                workflows=tuple(Workflow.from_dict(w) for w in d.get("workflows", ())),
                ledger=LedgerBinding.from_dict(ledger) if ledger else None,
                incomplete=tuple(str(x) for x in d.get("incomplete", ())))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InventoryError(f"inventory is malformed ({exc!s})") from None
