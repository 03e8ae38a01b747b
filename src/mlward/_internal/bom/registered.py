"""Models that live outside the tree: each registered model version that a scan of an
``mlflow://`` or ``hf-cache:`` target found (its ``model-version`` fact), and each model file
read from object storage, as one model component with its registry coordinates.

The scan already read what a verdict needs (ranged reads for remote bytes); nothing is read
again here. Their files carry no digests: hashing a remote object means reading all of it,
which a BOM of a registry should not do behind the user's back (``mlward manifest create``
on the same location does it, distributed with ``--cluster``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlward._internal.bom.inventory import Component, FileRecord
from mlward.findings import Report, Verdict

WORST_LAST = (Verdict.CLEAN, Verdict.SUSPICIOUS, Verdict.INCONCLUSIVE, Verdict.DANGEROUS)
COORDINATES = {
    "mlflow": ("server", "name", "version", "source", "run_id", "artifact_uri", "status",
               "stage", "aliases"),
    "huggingface-cache": ("repo", "repo_type", "revision", "refs", "cache"),
}
"""The registry coordinates kept as properties, per registry."""


def registered_models(report: Report, model_formats: frozenset[str]) -> list[Component]:
    """A model component per model version of ``report`` and per model file it read from
    object storage outside any version."""
    sizes = {f.location.uri: int(f.data.get("size") or 0)
             for f in report.facts if f.kind == "object"}
    files: dict[str, str] = {}  # remote file URI -> format
    for e in report.examined:
        if not e.location.is_local and not e.location.members:
            files.setdefault(e.location.uri, e.format)
    for s in report.skipped:
        if not s.location.is_local and not s.location.members and s.location.uri in sizes:
            files.setdefault(s.location.uri, "unrecognised")
    verdicts = report.verdicts()
    versions = [f for f in report.facts if f.kind == "model-version"]
    out = [_version(f.location.uri, f.data, files, sizes, verdicts, report, model_formats)
           for f in versions]
    taken = [f.location.uri for f in versions]
    for uri, fmt in sorted(files.items()):
        if fmt in model_formats and not any(_under(uri, v) for v in taken):
            out.append(_component(uri, uri.rsplit("/", 1)[-1], None, [uri], sizes,
                                  verdicts, report, {"formats": [fmt]}))
    return out


def _version(uri: str, data: Mapping[str, Any], files: Mapping[str, str],
             sizes: Mapping[str, int], verdicts: Mapping[str, Verdict], report: Report,
             model_formats: frozenset[str]) -> Component:
    registry = str(data.get("registry", ""))
    if registry == "mlflow":
        name, version = str(data["name"]), str(data["version"])
    else:
        name, version = str(data.get("repo", uri)), str(data.get("revision", ""))
    props: dict[str, Any] = {"registry": registry}
    props.update({k: data[k] for k in COORDINATES.get(registry, ()) if data.get(k) not in
                  (None, "", [])})
    mine = sorted(u for u in files if _under(u, uri))
    if registry == "huggingface-cache":  # local files: their sizes are a stat away
        snapshot = Path(str(data["cache"]), "snapshots", str(data["revision"]))
        sizes = {**sizes, **{u: _size(snapshot / u[len(uri) + 1:]) for u in mine}}
    formats = sorted({files[u] for u in mine} & model_formats)
    if formats:
        props["formats"] = formats
    return _component(uri, name, version or None, mine, sizes, verdicts, report, props)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _component(uri: str, name: str, version: str | None, paths: Sequence[str],
               sizes: Mapping[str, int], verdicts: Mapping[str, Verdict], report: Report,
               props: dict[str, Any]) -> Component:
    under = [v for u, v in verdicts.items() if _under(u, uri)]
    verdict = max(under, key=WORST_LAST.index) if under else None
    findings = tuple((f.rule_id, f.severity.label, f"{f.location}: {f.message}")
                     for f in report.findings
                     if f.suppression is None and _under(f.location.uri, uri))
    problems = defaultdict(list)
    for s in report.inconclusive:
        if _under(s.location.uri, uri):
            problems[s.location.container_path].append(s.reason)
    return Component(
        ref=f"model:{uri}", kind="model", name=name, location=uri, version=version,
        files=tuple(FileRecord(p, sizes.get(p, 0), {}) for p in paths), properties=props,
        verdict=None if verdict is None else str(verdict), findings=findings,
        incomplete=tuple(f"{where}: {'; '.join(why)}" for where, why in problems.items()))


def _under(uri: str, top: str) -> bool:
    """``uri`` is ``top`` or a file of it (``…/models/clf/3/model.pkl``, ``…@commit/x``)."""
    return uri == top or uri.startswith(top.rstrip("/") + "/")

