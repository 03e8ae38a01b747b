"""Read a BOM back into an :class:`~.inventory.Inventory`: an mlward inventory JSON, a
CycloneDX JSON or an SPDX 3 JSON-LD document that mlward wrote.

What ``bom verify`` and ``bom diff`` compare (components, files and digests, licenses,
versions, verdicts, vulnerabilities, the ledger checkpoint, incompleteness) is read from
standard fields and ``mlward:`` properties; the model card is read back only as far as a diff
needs it. BOM files come from elsewhere: bounded size, JSON only, and any shape problem is a
:class:`~.cyclonedx.BomError`, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlward._internal.bom import props
from mlward._internal.bom.cyclonedx import BomError
from mlward._internal.bom.inventory import (
    Component,
    FileRecord,
    Inventory,
    InventoryError,
    LedgerBinding,
    Vulnerability,
    Workflow,
)

MAX_BOM_BYTES = 256 << 20
_COMMON = frozenset({"kind", "ref", "location", "verdict", "finding", "incomplete", "license"})
_FILE = ("path", "size", "manifest", "signature", "ledger")
_SPDX_KINDS = frozenset({"ai_AIPackage", "dataset_DatasetPackage", "software_Package"})


def load(path: Path) -> Inventory:
    """The inventory in the BOM file at ``path`` (any format mlward writes)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BOM_BYTES + 1)
    except OSError as exc:
        raise BomError(f"cannot read the BOM {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BOM_BYTES:
        raise BomError(f"the BOM {path} is larger than {MAX_BOM_BYTES} bytes")
    return parse(raw, str(path))


def parse(raw: bytes, origin: str) -> Inventory:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BomError(f"{origin} is not JSON ({exc})") from None
    try:
        if isinstance(doc, dict) and doc.get("kind") == "mlward.inventory":
            return Inventory.from_dict(doc)
        if isinstance(doc, dict) and doc.get("bomFormat") == "CycloneDX":
            return from_cyclonedx(doc)
        if isinstance(doc, dict) and "@graph" in doc:
            return from_spdx(doc)
    except InventoryError as exc:
        raise BomError(f"{origin}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise BomError(f"{origin} is not a BOM mlward can read ({type(exc).__name__}: "
                       f"{exc})") from None
    raise BomError(f"{origin} is neither CycloneDX JSON, SPDX 3 JSON-LD nor an mlward "
                   "inventory")


def _component(values: dict[str, Any], ref: str, name: str, *, version: Any, purl: Any,
               description: Any, supplier: Any, license: Any, files: Iterable[FileRecord],
               vulnerabilities: Iterable[Vulnerability] = (),
               card: Mapping[str, Any] | None = None) -> Component:
    single = {k: values.pop(f"file:{k}") for k in _FILE if f"file:{k}" in values}
    file_list = list(files)
    if single:
        file_list = [FileRecord(str(single["path"]), int(single.get("size", 0)),
                                file_list[0].digests if file_list else {},
                                single.get("manifest"), single.get("signature"),
                                bool(single.get("ledger", False)))]
    findings = []
    for text in values.get("finding", ()):
        head, _, message = text.partition(": ")
        rule, _, severity = head.partition(" ")
        findings.append((rule, severity, message))
    return Component(
        ref=ref, kind=str(values.get("kind", "library")), name=name,
        location=str(values.get("location", "")), version=version, purl=purl,
        description=description, supplier=supplier, license=license,
        files=tuple(file_list),
        properties={k: v for k, v in values.items() if k not in _COMMON},
        card=card or {}, vulnerabilities=tuple(vulnerabilities),
        verdict=values.get("verdict"), findings=tuple(findings),
        incomplete=tuple(values.get("incomplete", ())))


def _ledger(meta: Mapping[str, Any]) -> LedgerBinding | None:
    if "ledger:checkpoint" not in meta:
        return None
    return LedgerBinding(str(meta["ledger:origin"]), int(meta["ledger:size"]),
                         str(meta["ledger:root"]), str(meta["ledger:checkpoint"]))


# --- CycloneDX ------------------------------------------------------------------------------

def _cdx_props(item: Mapping[str, Any]) -> dict[str, Any]:
    return props.decode((str(p.get("name")), str(p.get("value", "")))
                        for p in item.get("properties", ()))


def _cdx_digests(item: Mapping[str, Any]) -> dict[str, str]:
    names = {"SHA-256": "sha256", "BLAKE3": "blake3"}
    return {names[h["alg"]]: h["content"] for h in item.get("hashes", ())
            if h.get("alg") in names}


def _cdx_license(item: Mapping[str, Any]) -> str | None:
    for entry in item.get("licenses", ()):
        if "expression" in entry:
            return str(entry["expression"])
        lic = entry.get("license", {})
        if lic.get("id") or lic.get("name"):
            return str(lic.get("id") or lic.get("name"))
    return None


def _cdx_card(item: Mapping[str, Any]) -> dict[str, Any]:
    card: dict[str, Any] = {}
    params = item.get("modelCard", {}).get("modelParameters", {})
    for key, name in (("task", "task"), ("architectureFamily", "architecture_family"),
                      ("modelArchitecture", "architecture")):
        if params.get(key):
            card[name] = params[key]
    datasets = [d.get("ref") or d.get("name") for d in params.get("datasets", ())]
    if datasets:
        card["datasets"] = [d for d in datasets if d]
    return card


def from_cyclonedx(doc: Mapping[str, Any]) -> Inventory:
    metadata = doc.get("metadata", {})
    meta = _cdx_props(metadata)
    vulns: dict[str, list[Vulnerability]] = {}
    for v in doc.get("vulnerabilities", ()):
        rating = (v.get("ratings") or [{}])[0]
        vuln = Vulnerability(
            id=str(v["id"]), aliases=tuple(str(r["id"]) for r in v.get("references", ())),
            severity=rating.get("severity") if rating.get("severity") != "unknown" else None,
            score=rating.get("score"), vector=rating.get("vector"),
            cwes=tuple(f"CWE-{c}" for c in v.get("cwes", ())),
            summary=str(v.get("description", "")))
        for target in v.get("affects", ()):
            vulns.setdefault(str(target["ref"]), []).append(vuln)
    components = []
    for item in [*doc.get("components", ()), *doc.get("services", ())]:
        values = _cdx_props(item)
        if "kind" not in values:
            continue  # not written by mlward: nothing to compare it with
        files = []
        for sub in item.get("components", ()):
            if sub.get("type") == "file":
                fp = _cdx_props(sub)
                files.append(FileRecord(str(sub.get("name")), int(fp.get("size", 0)),
                                        _cdx_digests(sub), fp.get("manifest"),
                                        fp.get("signature"), bool(fp.get("ledger", False))))
        if "file:path" in values:
            files = [FileRecord(str(values["file:path"]), 0, _cdx_digests(item))]
        ref = str(item["bom-ref"])
        supplier = (item.get("supplier") or item.get("provider") or {}).get("name")
        components.append(_component(
            values, ref, str(item["name"]), version=item.get("version"),
            purl=item.get("purl"), description=item.get("description"), supplier=supplier,
            license=_cdx_license(item), files=files, vulnerabilities=vulns.get(ref, ()),
            card=_cdx_card(item)))
    workflows = []
    for formulation in doc.get("formulation", ()):
        for w in formulation.get("workflows", ()):
            wp = _cdx_props(w)
            workflows.append(Workflow(
                ref=str(w["bom-ref"]), name=str(w.get("name", "")),
                inputs=tuple(str(i["resource"]["ref"]) for i in w.get("inputs", ())),
                outputs=tuple(str(o["resource"]["ref"]) for o in w.get("outputs", ())),
                parameters={k[len("parameter:"):]: v for k, v in wp.items()
                            if k.startswith("parameter:")},
                run_id=str(w.get("uid")) if w.get("uid") != w["bom-ref"] else None,
                started=w.get("timeStart"), finished=w.get("timeEnd"),
                statement=wp.get("statement")))
    return Inventory(
        name=str(metadata.get("component", {}).get("name", "")), root="",
        created=str(metadata.get("timestamp", "")),
        tool_version=_cdx_tool_version(metadata), components=tuple(components),
        workflows=tuple(workflows), ledger=_ledger(meta),
        incomplete=tuple(meta.get("incomplete", ())),
        serial=str(doc.get("serialNumber", "")))


def _cdx_tool_version(metadata: Mapping[str, Any]) -> str:
    tools = metadata.get("tools", {})
    items = tools.get("components", ()) if isinstance(tools, dict) else tools
    return next((str(t.get("version", "")) for t in items if t.get("name") == "mlward"), "")


# --- SPDX 3 ---------------------------------------------------------------------------------

def _spdx_props(obj: Mapping[str, Any]) -> dict[str, Any]:
    pairs = [(str(e.get("extension_cdxPropName")), str(e.get("extension_cdxPropValue", "")))
             for ext in obj.get("extension", ()) if isinstance(ext, dict)
             for e in ext.get("extension_cdxProperty", ())]
    return props.decode(pairs)


def _spdx_digests(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(h["algorithm"]): str(h["hashValue"]) for h in obj.get("verifiedUsing", ())
            if h.get("type") == "Hash" and h.get("algorithm") in ("sha256", "blake3")}


def from_spdx(doc: Mapping[str, Any]) -> Inventory:
    graph = [o for o in doc["@graph"] if isinstance(o, dict)]
    by_id = {o.get("spdxId") or o.get("@id"): o for o in graph}
    related: dict[tuple[str, str], list[str]] = {}
    for o in graph:
        if o.get("type") == "Relationship":
            related.setdefault((str(o["from"]), str(o["relationshipType"])), []).extend(
                str(t) for t in o.get("to", ()))
    components = []
    for o in graph:
        if o.get("type") not in _SPDX_KINDS:
            continue
        values = _spdx_props(o)
        if "ref" not in values:
            continue  # the project package
        sid = str(o["spdxId"])
        files = []
        for fid in related.get((sid, "contains"), ()):
            f = by_id.get(fid, {})
            fp = _spdx_props(f)
            files.append(FileRecord(str(f.get("name")), int(fp.get("size", 0)),
                                    _spdx_digests(f), fp.get("manifest"), fp.get("signature"),
                                    bool(fp.get("ledger", False))))
        if "file:path" in values:
            files = [FileRecord(str(values["file:path"]), 0, _spdx_digests(o))]
        vulns = []
        for vid in related.get((sid, "hasAssociatedVulnerability"), ()):
            v = by_id.get(vid, {})
            vp = _spdx_props(v)
            ids = [str(i.get("identifier")) for i in v.get("externalIdentifier", ())]
            vulns.append(Vulnerability(
                id=str(v.get("name")), aliases=tuple(ids[1:]), severity=vp.get("severity"),
                score=vp.get("score"), vector=vp.get("vector"), summary=str(v.get("summary",
                                                                                   "")),
                fixed=tuple(vp.get("fixed", ())), upgrade=vp.get("upgrade")))
        supplier = by_id.get(o.get("suppliedBy"), {}).get("name") if o.get("suppliedBy") \
            else None
        ref = str(values.pop("ref"))
        datasets = values.pop("datasets", None)
        card = {"datasets": datasets} if datasets else {}
        components.append(_component(
            values, ref, str(o.get("name", "")), version=o.get("software_packageVersion"),
            purl=o.get("software_packageUrl"), description=o.get("description"),
            supplier=supplier, license=values.get("license"), files=files,
            vulnerabilities=vulns, card=card))
    refs = {str(o.get("spdxId")): str(_spdx_props(o).get("ref")) for o in graph
            if o.get("type") in _SPDX_KINDS}
    workflows = []
    for o in graph:
        if o.get("type") != "build_Build":
            continue
        sid = str(o["spdxId"])
        wp = _spdx_props(o)
        workflows.append(Workflow(
            ref=_unquote_ref(sid), name=str(o.get("name", "")),
            inputs=tuple(refs[t] for t in related.get((sid, "hasInput"), ()) if t in refs),
            outputs=tuple(refs[t] for t in related.get((sid, "hasOutput"), ()) if t in refs),
            parameters={str(e["key"]): props.decode([(props.NS + "v", str(e.get("value")))])
                        ["v"] for e in o.get("build_parameter", ())},
            run_id=o.get("build_buildId"), started=o.get("build_buildStartTime"),
            finished=o.get("build_buildEndTime"), statement=wp.get("statement")))
    document = next((o for o in graph if o.get("type") == "SpdxDocument"), {})
    meta = _spdx_props(document)
    info = next((o for o in graph if o.get("type") == "CreationInfo"), {})
    tool = next((o for o in graph if o.get("type") == "Tool"), {})
    project = by_id.get(f"{str(document.get('spdxId', '')).split('#')[0]}#project", {})
    return Inventory(
        name=str(project.get("name", "")), root="", created=str(info.get("created", "")),
        tool_version=str(tool.get("name", "")).removeprefix("mlward "),
        components=tuple(components), workflows=tuple(workflows), ledger=_ledger(meta),
        incomplete=tuple(meta.get("incomplete", ())), serial=str(meta.get("serial", "")))


def _unquote_ref(spdx_id: str) -> str:
    from urllib.parse import unquote

    return unquote(spdx_id.split("#", 1)[-1])
