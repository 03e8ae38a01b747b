"""Build the :class:`~.inventory.Inventory` of a project from what mlward already knows.

One scan of the tree (formats, verdicts, findings and the facts the scanners record: model
tensors and parameters, ML tool configs, hub models and AI services used by code), one
dependency audit (libraries and their OSV vulnerabilities), the provenance records found in
the tree (manifests, lineage statements, DSSE envelopes, OpenSSF model signing bundles), the
model cards, optionally live probes, and the ledger's checkpoint. Nothing here parses a model
again: the scanners did, once.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlward._internal.bom.card import model_card
from mlward._internal.bom.inventory import (
    Component,
    FileRecord,
    Inventory,
    LedgerBinding,
    Vulnerability,
    Workflow,
)
from mlward._version import __version__
from mlward.findings import Fact, Finding, Report
from mlward.settings import Settings

if TYPE_CHECKING:
    from mlward._internal.provenance.keys import PublicKey
    from mlward._internal.scanners.deps.audit import Audit
    from mlward._internal.vulndb import VulnSource

MODEL_FORMATS = frozenset({
    "pickle", "joblib", "pytorch-zip", "pytorch-legacy", "pytorch-tar", "safetensors", "gguf",
    "onnx", "keras", "keras-hdf5", "tf-savedmodel", "tf-graphdef",
})
"""Examined formats that make a file a model (a plain HDF5 or numpy file is data)."""
MODEL_FOLDERS = ("model-repository", "tf-savedmodel-folder")
TEXT_DATA = (".csv", ".tsv", ".jsonl", ".ndjson", ".txt")
MAX_COUNTED_BYTES = 64 << 20
"""Text data files up to this size get their records counted (a line count)."""
PII_SAMPLE_BYTES = 256 << 10
PII_SAMPLE_FILES = 50
MAX_LEDGER_ENTRIES = 200_000
AI_ENDPOINTS = {
    "OpenAI": "https://api.openai.com", "Anthropic": "https://api.anthropic.com",
    "Cohere": "https://api.cohere.com", "Mistral AI": "https://api.mistral.ai",
    "Groq": "https://api.groq.com", "Together AI": "https://api.together.xyz",
    "Replicate": "https://api.replicate.com",
    "Google Vertex AI": "https://aiplatform.googleapis.com",
    "Google Gemini API": "https://generativelanguage.googleapis.com",
    "Hugging Face Inference": "https://api-inference.huggingface.co",
    "AWS Bedrock": "https://bedrock-runtime.amazonaws.com",
    "Azure OpenAI": "https://openai.azure.com",
}
HUB_URLS = {"huggingface": "https://huggingface.co/{name}", "github": "https://github.com/{name}"}


@dataclass
class Options:
    """What ``mlward bom`` was asked to do besides scanning the tree."""

    vulns: VulnSource | None = None
    trusted: Mapping[str, PublicKey] | None = None
    """Keys to check signatures with; None: signatures are listed as ``unchecked``."""
    probe_urls: Sequence[str] = ()
    probe_timeout: float = 5.0
    name: str | None = None
    targets: Sequence[str] = ()
    """Registries and object-storage prefixes (``mlflow://``, ``hf-cache:``, ``s3://``...)
    inventoried beside ``paths``: each model version, each model object."""


@dataclass
class _Work:
    """What the collection steps share."""

    root: Path
    report: Report
    settings: Settings
    options: Options
    verdicts: dict[str, str] = field(default_factory=dict)
    manifest_digests: dict[str, tuple[str, str]] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)

    def rel(self, path: Path) -> str | None:
        """``path`` relative to the root (POSIX), or None when outside it."""
        try:
            rel = Path(os.path.abspath(path)).relative_to(self.root)  # noqa: PTH100
        except ValueError:
            return None
        return rel.as_posix() or "."

    def under(self, uri: str, folder: str) -> bool:
        return folder in (".", "") or uri == folder or uri.startswith(folder.rstrip("/") + "/")

    def findings_under(self, folder: str) -> list[Finding]:
        return [f for f in self.report.findings if f.location.is_local
                and self.under(f.location.uri, folder) and f.suppression is None]

    def inconclusive_under(self, folder: str) -> list[str]:
        return [f"{s.location.container_path}: {s.reason}" for s in self.report.inconclusive
                if s.location.is_local and self.under(s.location.uri, folder)]


def build_inventory(paths: Sequence[Path], settings: Settings,
                    options: Options | None = None) -> tuple[Inventory, Report, Audit]:
    """The inventory of ``paths`` (files or folders), the scan report it was built from and
    the dependency audit."""
    from concurrent.futures import ThreadPoolExecutor

    from mlward._internal.pipeline import scan, with_findings
    from mlward._internal.scanners.deps.audit import audit
    from mlward._internal.vulndb import assess

    options = options or Options()
    # The audit matches the tree's dependency files against the data (the libraries and their
    # vulnerabilities need its results); with data that can check them, the scan leaves those
    # files to it and its report gets the audit's findings in their place: each file is
    # matched once, and the report is the one `mlward scan` makes. Blind data (or none) is
    # left to the scan as it is: it says, file by file, what was not checked.
    shared = options.vulns is not None and not assess(options.vulns, settings).blind
    # The audit reads the dependency files while the scan's workers read the tree (this
    # process mostly waits on them); the index connection is used by one thread at a time.
    with ThreadPoolExecutor(1) as pool:
        deps_job = pool.submit(audit, paths, environment=False, source=options.vulns,
                               settings=settings)
        report = scan([*paths, *options.targets],
                      settings=settings._replace(match_dependency_files=not shared))
        deps = deps_job.result()
    if shared:
        report = with_findings(report, _dependency_findings(report, deps), settings)
    root = Path(report.root or os.getcwd())  # noqa: PTH109
    work = _Work(root, report, settings, options,
                 {k: str(v) for k, v in report.verdicts().items()})
    provenance = _provenance(work, paths)
    models = _models(work, provenance)
    datasets = _datasets(work, provenance, models)
    _hash_everything(work, [*models, *datasets])
    components: list[Component] = []
    components += [m.component(work) for m in models]
    if options.targets:
        from mlward._internal.bom.registered import registered_models

        components += registered_models(report, MODEL_FORMATS)
    components += [d.component(work) for d in datasets]
    components += _remote_datasets(work, provenance)
    components += _libraries(work, deps)
    components += _services(work)
    if options.probe_urls:
        components += _probed(work)
    components += _external(work, {m.uri for m in models})
    workflows = _workflows(work, provenance, components)
    components = _link_cards(components, workflows)
    ledger = _ledger(work, components)
    components = [_mark_ledger(c, ledger[1]) for c in components]
    inventory = Inventory(
        name=options.name or root.name or "project", root=str(root),
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        tool_version=__version__, components=tuple(sorted(components, key=_order)),
        workflows=tuple(workflows), ledger=ledger[0], incomplete=tuple(work.incomplete),
        serial=f"urn:uuid:{uuid.uuid4()}")
    return inventory, report, deps


def _dependency_findings(report: Report, deps: Audit) -> list[Finding]:
    """The findings of the dependency files the scan examined and left to the audit
    (:attr:`~mlward.settings.Settings.match_dependency_files`), from the audit's results."""
    from mlward._internal.scanners.deps import in_tree
    from mlward._internal.scanners.deps.check import findings_for

    files = {e.location.uri for e in report.examined
             if e.format.startswith("dependencies") and in_tree(e.location)}
    return findings_for(r for uri in sorted(files) for r in deps.by_file.get(uri, ()))


def _order(c: Component) -> tuple[int, str]:
    kinds = ("model", "dataset", "model-source", "ai-service", "service", "library")
    return kinds.index(c.kind), c.ref


# --- provenance records in the tree -------------------------------------------------------

@dataclass
class _Provenance:
    manifests: dict[Path, Any] = field(default_factory=dict)
    """Manifest file -> Manifest."""
    statements: dict[Path, Any] = field(default_factory=dict)
    """Lineage statement file -> Statement."""
    data_roots: set[str] = field(default_factory=set)
    code_roots: set[str] = field(default_factory=set)
    raw: dict[Path, dict[str, Any]] = field(default_factory=dict)
    """Lineage statement file -> the statement's JSON."""


def _provenance(work: _Work, paths: Sequence[Path]) -> _Provenance:
    """Manifests and lineage statements under ``paths`` (and the manifests statements name)."""
    import json

    from mlward._internal.provenance.errors import ProvenanceError
    from mlward._internal.provenance.lineage import is_manifest_file, load_statement
    from mlward._internal.provenance.manifest import Manifest, read_bounded
    from mlward._internal.walk import Walk

    found = _Provenance()
    s = work.settings
    walk = Walk(work.root, exclude=s.exclude, ignore_files=s.ignore_files,
                follow_symlinks=s.follow_symlinks)
    candidates = [Path(item.path) for item in walk.files(paths)
                  if item.path.endswith(".json")]
    for path in candidates:
        try:
            if path.name.endswith(".lineage.json"):
                found.statements[path] = load_statement(path)
                found.raw[path] = json.loads(read_bounded(path, "lineage statement"))
            elif is_manifest_file(path):
                found.manifests[path.resolve()] = Manifest.load(path)
        except (ProvenanceError, ValueError) as exc:
            work.incomplete.append(f"{work.rel(path)}: {exc}")
    for path, statement in found.statements.items():
        for item in statement.inputs:
            target = (path.parent / str(item["annotations"]["mlward.manifest"])).resolve()
            kind = str(item["annotations"].get("mlward.kind", "data"))
            try:
                manifest = found.manifests.get(target) or Manifest.load(target)
            except ProvenanceError as exc:
                work.incomplete.append(f"{work.rel(path)}: input {item.get('name')}: {exc}")
                continue
            found.manifests[target] = manifest
            for r in manifest.roots:
                if r.remote:
                    continue  # a dataset of its own (_remote_datasets), not under the root
                rel = work.rel(r.where(target.parent))
                if rel is not None:
                    (found.code_roots if kind == "code" else found.data_roots).add(rel)
    for manifest_path, manifest in found.manifests.items():
        for r in manifest.roots:
            if r.remote:
                continue
            local = r.where(manifest_path.parent)
            base = local if r.type == "directory" else local.parent
            single = len(manifest.roots) == 1
            for e in manifest.entries:
                first, _, rest = e.path.partition("/")
                if e.type != "file" or not (single or first == r.name):
                    continue  # with several roots, each entry starts with its root's name
                name = e.path if single else rest
                full = base / name if r.type == "directory" else local
                rel = work.rel(full)
                if rel is not None:
                    work.manifest_digests[rel] = (e.label, e.digest[e.label])
    return found


# --- models and datasets ------------------------------------------------------------------

@dataclass
class _Files:
    """A model or dataset while it is collected: its location and the files it holds."""

    uri: str
    folder: bool
    paths: list[str] = field(default_factory=list)
    records: dict[str, FileRecord] = field(default_factory=dict)
    kind: str = "model"
    formats: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)

    def component(self, work: _Work) -> Component:
        name = self.uri.rsplit("/", 1)[-1] if self.uri not in (".", "") else work.root.name
        findings = tuple((f.rule_id, f.severity.label, f"{f.location}: {f.message}")
                         for f in work.findings_under(self.uri))
        incomplete = tuple(dict.fromkeys([*self.problems, *work.inconclusive_under(self.uri)]))
        files = tuple(self.records[p] for p in self.paths if p in self.records)
        props = {**self.facts, **self.properties}
        if self.formats:
            props["formats"] = sorted(set(self.formats))
        prefix = "model" if self.kind == "model" else "data"
        purl = None
        if not self.folder and files:
            purl = f"pkg:generic/{_purl_name(name)}?checksum=sha256:{files[0].digests['sha256']}"
        return Component(
            ref=f"{prefix}:{self.uri}", kind=self.kind, name=name, location=self.uri,
            purl=purl, description=self.card.pop("description", None),
            license=spdx_license(self.card.pop("license", None) or self.facts.get("license")),
            files=files, properties=props, card=self.card,
            verdict=work.verdicts.get(self.uri), findings=findings, incomplete=incomplete)


def spdx_license(text: str | None) -> str | None:
    """A license as its SPDX identifier when it is one (model cards write ``apache-2.0``),
    else as written."""
    if not text:
        return None
    try:
        from cyclonedx.spdx import fixup_id
    except ImportError:  # the sbom extra renders the BOM anyway
        return text
    return fixup_id(text) or text


def _purl_name(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _merge_facts(facts: Iterable[Fact]) -> dict[str, dict[str, Any]]:
    """``model`` facts by file URI (several facts for one file merge; counts add up)."""
    out: dict[str, dict[str, Any]] = {}
    for f in facts:
        if f.kind != "model":
            continue
        merged = out.setdefault(f.location.uri, {})
        for key, value in f.data.items():
            merged.setdefault(key, value)
    return out


def _combine(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One model's facts from the facts of its weight files (sharded checkpoints add up)."""
    if len(parts) == 1:
        return dict(parts[0])
    out: dict[str, Any] = {}
    for key in ("tensors", "parameters", "storages", "storage_bytes"):
        values = [p[key] for p in parts if isinstance(p.get(key), int)]
        if values:
            out[key] = sum(values)
    dtypes = sorted({d for p in parts for d in p.get("dtypes", ())})
    if dtypes:
        out["dtypes"] = dtypes
    for p in parts:
        for key, value in p.items():
            if key not in out and key not in ("shapes", "format"):
                out[key] = value
    return out


def _models(work: _Work, provenance: _Provenance) -> list[_Files]:
    facts = _merge_facts(work.report.facts)
    examined = [(e.location.uri, e.format) for e in work.report.examined
                if e.location.is_local and not e.location.members]
    folders = sorted({uri for uri, fmt in examined if fmt.startswith(MODEL_FOLDERS)})
    data = provenance.data_roots | provenance.code_roots
    models: list[_Files] = []
    for folder in folders:
        if any(work.under(folder, d) for d in data):
            continue
        m = _Files(folder, True)
        m.paths = list_files(work.root / folder, folder)
        weights = [uri for uri, fmt in examined if fmt in MODEL_FORMATS
                   and work.under(uri, folder)]
        m.formats = [fmt for uri, fmt in examined if fmt in MODEL_FORMATS
                     and work.under(uri, folder)]
        m.facts = _combine([facts[w] for w in weights if w in facts] or [{}])
        m.card, m.problems = model_card(work.root / folder)
        models.append(m)
    for uri, fmt in examined:
        if fmt not in MODEL_FORMATS or any(work.under(uri, f) for f in folders) or any(
                work.under(uri, d) for d in data):
            continue
        m = _Files(uri, False, [uri], formats=[fmt], facts=dict(facts.get(uri, {})))
        parent = (work.root / uri).parent
        readme = parent / "README.md"
        if readme.is_file() and _starts_with_front_matter(readme):
            m.card, m.problems = model_card(parent)
        models.append(m)
    models += _unreadable_models(work, {m.uri for m in models}, folders, data)
    _model_provenance(work, provenance, models)
    return models


def _unreadable_models(work: _Work, known: set[str], folders: Sequence[str],
                       data: set[str]) -> list[_Files]:
    """Files named like model weights that no model scanner could read (damaged, truncated,
    an unknown format): listed as models, incomplete, with the reason."""
    from mlward._internal.scanners.repository import WEIGHT_SUFFIXES

    seen: dict[str, str] = {}
    records = [(e.location, e.format) for e in work.report.examined] + [
        (s.location, "unrecognised") for s in work.report.skipped]
    for location, fmt in records:
        uri = location.uri
        if location.is_local and not location.members \
                and uri.lower().endswith(WEIGHT_SUFFIXES) and uri not in known:
            seen.setdefault(uri, fmt)
    out = []
    for uri, fmt in sorted(seen.items()):
        if any(work.under(uri, f) for f in folders) or any(work.under(uri, d) for d in data):
            continue
        m = _Files(uri, False, [uri])
        m.problems = work.inconclusive_under(uri) or [
            f"named like model weights but read as {fmt}: not a model format mlward reads"]
        out.append(m)
    return out


def _starts_with_front_matter(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(3) == b"---"
    except OSError:
        return False


def list_files(folder: Path, uri: str) -> list[str]:
    """Every regular file under ``folder`` (symlinks are not followed), as root URIs."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, folder)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)  # noqa: PTH118
            if os.path.islink(path) or not os.path.isfile(path):  # noqa: PTH113,PTH114
                continue
            inner = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
            out.append(f"{uri.rstrip('/')}/{inner}" if uri not in (".", "") else inner)
    return out


def _model_provenance(work: _Work, provenance: _Provenance, models: list[_Files]) -> None:
    """Lineage subjects and signatures beside each model."""
    from mlward._internal.provenance import chain, lineage

    trusted = work.options.trusted
    for m in models:
        path = work.root / m.uri
        statement_file = lineage.statement_path(path)
        statement = provenance.statements.get(statement_file)
        if statement is not None:
            m.properties["lineage"] = work.rel(statement_file)
            m.properties["lineage_subjects"] = {e.path: e.digest["sha256"]
                                                for e in statement.subjects}
            sig = chain.signature_path(statement_file)
            if sig.exists():
                m.properties["lineage_signature"] = _check_dsse(statement_file, sig, trusted)
        bundle = chain.oms_signature_path(path)
        if bundle.exists():
            m.properties["oms_signature"] = work.rel(bundle)
            if trusted is None:
                m.properties["signature"] = "unchecked"
            else:
                link = chain.verify_oms(path, bundle, trusted)
                m.properties["signature"] = "valid" if link.ok else "invalid"
                if not link.ok:
                    m.properties["signature_problem"] = link.detail
        dsse = chain.signature_path(path)
        if not m.folder and dsse.exists():
            m.properties["signature"] = _check_dsse(path, dsse, trusted)


def _check_dsse(path: Path, signature: Path, trusted: Mapping[str, Any] | None) -> str:
    from mlward._internal.provenance import chain
    from mlward._internal.provenance.errors import ProvenanceError

    if trusted is None:
        return "unchecked"
    try:
        chain.verify_file(path, signature, trusted)
    except ProvenanceError:
        return "invalid"
    return "valid"


def _datasets(work: _Work, provenance: _Provenance, models: list[_Files]) -> list[_Files]:
    roots: set[str] = set(provenance.data_roots)
    for manifest_path, manifest in provenance.manifests.items():
        for r in manifest.roots:
            if r.remote:
                continue
            rel = work.rel(r.where(manifest_path.parent))
            if rel is None or rel in provenance.code_roots:
                continue
            if any(work.under(m.uri, rel) or work.under(rel, m.uri) for m in models):
                continue  # a manifest of a model: used for the model's files
            roots.add(rel)
    datasets = []
    for rel in sorted(roots):
        path = work.root / rel
        d = _Files(rel, path.is_dir(), kind="dataset")
        if not path.exists():
            d.problems.append(f"{rel}: listed by a manifest or lineage statement but missing")
        d.paths = list_files(path, rel) if path.is_dir() else [rel] if path.exists() else []
        listed = {p for p in work.manifest_digests if work.under(p, rel)}
        missing = sorted(listed - set(d.paths))
        if missing:
            d.properties["manifest_missing"] = missing[:100]
        d.properties.update(_data_properties(work, d.paths))
        readme = path / "README.md" if path.is_dir() else None
        if readme is not None and readme.is_file() and _starts_with_front_matter(readme):
            card, problems = model_card(path)
            d.problems += problems
            d.card = {k: card[k] for k in ("license", "description") if k in card}
        datasets.append(d)
    return datasets


def _remote_datasets(work: _Work, provenance: _Provenance) -> list[Component]:
    """The object-storage roots of the manifests in the tree (``manifest create s3://…``):
    datasets whose files, sizes and digests are the manifest's (the objects are not read)."""
    found: dict[str, Component] = {}
    for manifest_path, manifest in sorted(provenance.manifests.items()):
        single = len(manifest.roots) == 1
        for r in manifest.roots:
            if not r.remote or r.path in found:
                continue
            files = []
            for e in manifest.entries:
                first, _, rest = e.path.partition("/")
                if e.type != "file" or not (single or first == r.name):
                    continue
                name = e.path if single else rest
                uri = f"{r.path.rstrip('/')}/{name}" if r.type == "directory" else r.path
                files.append(FileRecord(uri, e.size, dict(e.digest)))
            found[r.path] = Component(
                ref=f"data:{r.path}", kind="dataset", name=r.path.rstrip("/").rsplit("/", 1)[-1],
                location=r.path, files=tuple(files),
                properties={"manifest": work.rel(manifest_path) or str(manifest_path),
                            "size": sum(f.size for f in files), "file_count": len(files)})
    return list(found.values())


def _data_properties(work: _Work, paths: Sequence[str]) -> dict[str, Any]:
    """Size, file count, formats, record counts where cheap, personal data found."""
    from mlward._internal.scanners.secrets.pii import find_pii

    size = records = 0
    counted = False
    formats: set[str] = set()
    pii: set[str] = set()
    sampled = 0
    for p in paths:
        path = work.root / p
        try:
            st = path.stat()
        except OSError:
            continue
        size += st.st_size
        suffix = path.suffix.lower()
        formats.add(suffix.lstrip(".") or "none")
        if suffix not in TEXT_DATA or st.st_size > MAX_COUNTED_BYTES:
            continue
        try:
            with open(path, "rb") as f:
                head = f.read(PII_SAMPLE_BYTES)
                lines = head.count(b"\n")
                while chunk := f.read(1 << 20):
                    lines += chunk.count(b"\n")
        except OSError:
            continue
        counted = True
        records += max(0, lines - (1 if suffix in (".csv", ".tsv") else 0))
        if sampled < PII_SAMPLE_FILES:
            sampled += 1
            pii.update(h.kind for h in find_pii(head.decode("utf-8", "replace")))
    out: dict[str, Any] = {"size": size, "file_count": len(paths),
                           "formats": sorted(formats)}
    if counted:
        out["record_count"] = records
    if sampled:
        out["sensitive_data"] = sorted(pii)
        if pii:
            out["classification"] = "personal data"
    return out


def hash_all(jobs: Sequence[Any]) -> list[str | None]:
    """Hex digests of ``jobs`` on every core; None for a file that cannot be read or changed
    while it was read (hashed one by one only then, to say which)."""
    from mlward._internal.provenance.errors import ProvenanceError
    from mlward._internal.provenance.hashing import hash_files

    try:
        return list(hash_files(jobs))
    except ProvenanceError:
        out: list[str | None] = []
        for job in jobs:
            try:
                out.append(hash_files([job])[0])
            except ProvenanceError:
                out.append(None)
        return out


def _hash_everything(work: _Work, items: Sequence[_Files]) -> None:
    """SHA-256 of every file (and the manifest's own digest where it used another one)."""
    from mlward._internal.provenance.hashing import FileJob

    jobs: list[tuple[str, str, FileJob]] = []
    for item in items:
        for p in item.paths:
            path = work.root / p
            try:
                st = path.stat()
            except OSError as exc:
                item.problems.append(f"{p}: cannot read ({exc.strerror})")
                continue
            jobs.append((p, "sha256", FileJob.of(path, st, "sha256")))
            label = work.manifest_digests.get(p, ("sha256", ""))[0]
            if label != "sha256":
                jobs.append((p, label, FileJob.of(path, st, label)))
    digests: dict[str, dict[str, str]] = defaultdict(dict)
    sizes = {p: job.size for p, _, job in jobs}
    for (p, label, _), value in zip(jobs, hash_all([job for *_, job in jobs]), strict=True):
        if value:
            digests[p][label] = value
            continue
        for item in items:
            if p in item.paths:
                item.problems.append(f"{p}: cannot hash it (unreadable, or it changed while "
                                     "it was read)")
    for item in items:
        subjects = item.properties.pop("lineage_subjects", None)
        for p in item.paths:
            d = digests.get(p)
            if not d or "sha256" not in d:
                continue
            expected = work.manifest_digests.get(p)
            manifest = None if expected is None else (
                "match" if d.get(expected[0]) == expected[1] else "mismatch")
            shown = {k: v for k, v in d.items() if k in ("sha256", "blake3")}
            item.records[p] = FileRecord(p, sizes[p], shown, manifest,
                                         item.properties.get("signature"))
        if subjects:
            current = {(p.rsplit("/", 1)[-1] if not item.folder else
                        p[len(item.uri) + 1:] if item.uri not in (".", "") else p):
                       r.digests["sha256"] for p, r in item.records.items()}
            item.properties["lineage_match"] = current == dict(subjects)


# --- libraries, services, external sources ------------------------------------------------

def _libraries(work: _Work, deps: Audit) -> list[Component]:
    from mlward._internal.scanners.deps import NO_DATA

    for s in deps.report.skipped:
        if s.inconclusive and s.reason != NO_DATA:
            work.incomplete.append(f"{s.location.container_path}: {s.reason}")
    if work.options.vulns is None and deps.results:
        work.incomplete.append(NO_DATA)
    out: dict[str, Component] = {}
    by_place: dict[Any, list[Finding]] = defaultdict(list)
    for f in deps.report.findings:
        by_place[f.location].append(f)
    for r in deps.results:
        d = r.dependency
        version = d.version
        ref = f"pkg:pypi/{d.key}" + (f"@{version}" if version else "")
        vulns = tuple(Vulnerability(
            id=v.id, aliases=tuple(v.ids[1:]),
            severity=v.severity.label if v.severity is not None else None, score=v.score,
            vector=v.vector, cwes=tuple(v.cwes), summary=v.summary, fixed=tuple(v.fixed),
            upgrade=r.result.upgrade) for v in r.result.vulnerabilities)
        existing = out.get(ref)
        declared = [str(d.location)]
        if existing is not None:
            declared = [*existing.properties.get("declared_in", ()), *declared]
            vulns = tuple({v.id: v for v in (*existing.vulnerabilities, *vulns)}.values())
        props: dict[str, Any] = {"declared_in": sorted(set(declared)), "origin": d.origin}
        hashes = [*(existing.properties.get("distribution_hashes", ()) if existing else ()),
                  *d.hashes]
        if hashes:
            props["distribution_hashes"] = list(dict.fromkeys(hashes))
        if not version:
            props["requirement"] = d.specifier or "any"
        if d.unresolvable:
            props["unresolvable"] = d.unresolvable
        findings = tuple((f.rule_id, f.severity.label, f.message)
                         for f in by_place.get(d.location, ())
                         if f.details.get("package") in (d.key, d.name))
        out[ref] = Component(
            ref=ref, kind="library", name=d.key, location=d.location.uri, version=version,
            purl=f"pkg:pypi/{d.key}@{version}" if version else f"pkg:pypi/{d.key}",
            properties=props, vulnerabilities=vulns,
            findings=(*(existing.findings if existing else ()), *findings))
    return list(out.values())


def _services(work: _Work) -> list[Component]:
    out: dict[str, Component] = {}
    for f in work.report.facts:
        if f.kind != "ml-tool-config":
            continue
        tools = list(f.data.get("tools", ()))
        if str(f.data.get("config", "")).startswith("jupyter-config"):
            tools = sorted({*tools, "Jupyter"})
        uri = f.location.uri
        exposure = [x for x in work.report.findings if x.location.uri == uri
                    and x.rule_id.startswith("MW6") and x.suppression is None]
        for tool in tools:
            ref = f"service:{tool.lower()}@{uri}"
            out[ref] = Component(
                ref=ref, kind="service", name=tool, location=uri,
                properties={"config": f.data.get("config"), "exposed": bool(exposure)},
                findings=tuple((x.rule_id, x.severity.label, x.message) for x in exposure),
                verdict=work.verdicts.get(uri))
    return list(out.values())


def _probed(work: _Work) -> list[Component]:
    from mlward._internal.probe import probe_report

    report = probe_report(work.options.probe_urls, timeout=work.options.probe_timeout,
                          source=work.options.vulns, settings=work.settings)
    for s in report.inconclusive:
        work.incomplete.append(f"{s.location.uri}: {s.reason}")
    out = []
    for f in report.facts:
        if f.kind != "server":
            continue
        url = f.location.uri
        tool = str(f.data.get("tool"))
        found = [x for x in report.findings if x.location.uri == url]
        out.append(Component(
            ref=f"service:{tool.lower()}@{url}", kind="service", name=tool, location=url,
            version=f.data.get("version"),
            properties={"endpoint": url, "open_apis": list(f.data.get("open_apis", ())),
                        "auth_required": list(f.data.get("auth_required", ())),
                        "probed": True, "exposed": bool(f.data.get("open_apis"))},
            findings=tuple((x.rule_id, x.severity.label, x.message) for x in found)))
    return out


def _external(work: _Work, local_models: set[str]) -> list[Component]:
    sources: dict[str, dict[str, Any]] = {}
    services: dict[str, list[str]] = defaultdict(list)
    for f in work.report.facts:
        where = f"{f.location.uri}:{f.location.line}" if f.location.line else f.location.uri
        if f.kind == "ai-service":
            services[str(f.data["provider"])].append(where)
        elif f.kind == "model-source":
            name = str(f.data.get("name"))
            if (work.root / name).exists():
                continue  # a local folder that happens to look like a hub id
            provider, revision = str(f.data["provider"]), f.data.get("revision")
            ref = f"hub:{provider}/{name}@{revision or 'unpinned'}"
            entry = sources.setdefault(ref, {"provider": provider, "name": name,
                                             "revision": revision,
                                             "pinned": bool(f.data.get("pinned")),
                                             "used_in": []})
            entry["used_in"].append(where)
    out = []
    for ref, e in sorted(sources.items()):
        findings = tuple((x.rule_id, x.severity.label, f"{x.location}: {x.message}")
                         for x in work.report.findings if x.rule_id == "MW751"
                         and x.evidence == f"{e['provider']}:{e['name']}"
                         and x.details.get("revision") == e["revision"])
        purl = None
        if e["provider"] in ("huggingface", "github"):
            purl = f"pkg:{e['provider']}/{e['name']}" + (
                f"@{e['revision']}" if e["revision"] else "")
        url = HUB_URLS.get(e["provider"], "").format(name=e["name"]) or None
        out.append(Component(
            ref=ref, kind="model-source", name=e["name"], location=url or ref,
            version=e["revision"], purl=purl, supplier=e["name"].split("/")[0]
            if "/" in e["name"] else None,
            properties={"provider": e["provider"], "pinned": e["pinned"],
                        "used_in": sorted(set(e["used_in"]))},
            findings=findings))
    for provider, places in sorted(services.items()):
        out.append(Component(
            ref=f"ai-service:{provider}", kind="ai-service", name=provider,
            location=AI_ENDPOINTS.get(provider, provider),
            properties={"endpoint": AI_ENDPOINTS.get(provider), "used_in": sorted(set(places))},
            supplier=provider))
    return out


# --- lineage as workflows, cards linked to datasets -----------------------------------------

def _workflows(work: _Work, provenance: _Provenance,
               components: Sequence[Component]) -> list[Workflow]:
    from mlward._internal.provenance.lineage import statement_path

    by_location = {c.location: c.ref for c in components if c.kind in ("model", "dataset")}
    out = []
    for path, doc in sorted(provenance.raw.items()):
        model = path.with_name(path.name[:-len(".lineage.json")])
        if statement_path(model) != path:
            continue
        predicate = doc.get("predicate", {})
        build = predicate.get("buildDefinition", {})
        run = predicate.get("runDetails", {}).get("metadata", {})
        inputs: list[str] = []
        code: list[str] = []
        for item in build.get("resolvedDependencies", []):
            annotations = item.get("annotations", {})
            manifest_dir = (path.parent / str(annotations.get("mlward.manifest", ""))).parent
            for uri in annotations.get("mlward.locations", []):
                # Roots are relative to the manifest (schema 2), absolute when asked for, or
                # file:// URIs (statements made before manifests moved to relative roots).
                text = str(uri)
                local = Path(text.removeprefix("file://")) if text.startswith("file://") \
                    else manifest_dir / text
                rel = work.rel(local)
                if annotations.get("mlward.kind") == "code":
                    code.append(rel or uri)
                elif rel in by_location:
                    inputs.append(by_location[rel])
        output = by_location.get(work.rel(model) or "")
        env = dict(build.get("internalParameters", {}).get("environment", {}))
        if code:
            env["code"] = code
        run_id = run.get("invocationId")
        out.append(Workflow(
            ref=f"workflow:{work.rel(path)}", name=f"training run {run_id or ''}".strip(),
            inputs=tuple(inputs), outputs=(output,) if output else (),
            parameters=dict(build.get("externalParameters", {}).get("parameters", {})),
            environment=env, run_id=run_id, started=run.get("startedOn"),
            finished=run.get("finishedOn"), statement=work.rel(path)))
    return out


def _link_cards(components: list[Component], workflows: Sequence[Workflow]) -> list[Component]:
    """A model's card lists its datasets: those the lineage names (as component refs), then
    the names its model card gives; training parameters become its hyperparameters."""
    trained: dict[str, list[str]] = defaultdict(list)
    params: dict[str, dict[str, Any]] = {}
    for w in workflows:
        for out in w.outputs:
            trained[out].extend(w.inputs)
            params[out] = dict(w.parameters)
    result = []
    for c in components:
        if c.kind == "model" and (c.ref in trained or c.card.get("datasets")):
            card = dict(c.card)
            card["datasets"] = [*dict.fromkeys(trained.get(c.ref, [])),
                                *card.get("datasets", ())]
            if params.get(c.ref):
                card["hyperparameters"] = params[c.ref]
            c = c.with_(card=card)
        result.append(c)
    return result


# --- the ledger ---------------------------------------------------------------------------

def _ledger(work: _Work, components: Sequence[Component]
            ) -> tuple[LedgerBinding | None, frozenset[str]]:
    """The checkpoint to bind the BOM to (a fresh signed one when the key is here), and the
    digests the ledger's entries record."""
    from mlward._internal.ledger import LedgerError, open_ledger
    from mlward._internal.ledger.note import Checkpoint
    from mlward._internal.ledger.project import resolve
    from mlward._internal.ledger.store import Filters

    try:
        if resolve(work.settings.db) is None:
            return None, frozenset()
        with open_ledger(work.settings.db) as ledger:
            note = None
            if ledger.signer is not None:
                note = ledger.checkpoint()
            elif ledger.checkpoint_file is not None and ledger.checkpoint_file.is_file():
                note = ledger.checkpoint_file.read_text(encoding="utf-8")
            digests = frozenset(v for e in ledger.log(Filters(), limit=MAX_LEDGER_ENTRIES)
                                for v in e.event.digests.values())
            if note is None or ledger.verifier is None:
                work.incomplete.append("the ledger has no signed checkpoint to bind the BOM "
                                       "to (its key is not here: run `mlward ledger "
                                       "checkpoint` where it is)")
                return None, digests
            cp = Checkpoint.open(note, ledger.verifier, ledger.origin)
    except (LedgerError, OSError) as exc:
        work.incomplete.append(f"ledger: {exc}")
        return None, frozenset()
    import base64

    return LedgerBinding(cp.origin, cp.size, base64.b64encode(cp.root).decode(), note), digests


def _mark_ledger(c: Component, digests: frozenset[str]) -> Component:
    if not digests or not c.files:
        return c
    return c.with_(files=tuple(f if f.digests.get("sha256") not in digests else
                               FileRecord(f.path, f.size, f.digests, f.manifest, f.signature,
                                          True) for f in c.files))
