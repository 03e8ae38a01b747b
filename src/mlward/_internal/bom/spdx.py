"""The inventory as SPDX 3.0.1 JSON-LD (Core, Software, AI, Dataset, Security, Build and
Simple Licensing profiles), built with ``spdx-python-model``.

The bindings are generated from the SPDX 3.0.1 SHACL model: every value is checked against
its shape when it is set (types, enumerations, patterns) and when the document is written
(required properties, cardinalities), so an invalid document cannot be produced; the text is
then read back with the bindings' deserializer as a second check. (The test suite also
validates the output against the SPDX 3.0.1 JSON schema.)

Mapping: models are ``ai_AIPackage`` (hub models too), datasets ``dataset_DatasetPackage``,
their files ``software_File`` (``contains``), libraries ``software_Package`` with
``security_Vulnerability`` elements (``hasAssociatedVulnerability``), services and hosted AI
services ``software_Package`` of purpose ``application``, training runs ``build_Build``
(``hasInput`` / ``hasOutput``) and ``trainedOn`` between a model and its datasets. What SPDX
has no field for travels in CycloneDX-property extensions with the same ``mlward:`` names as
the CycloneDX rendering, so the two formats carry the same facts.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from mlward._internal.bom import props
from mlward._internal.bom.cyclonedx import BomError
from mlward._internal.bom.inventory import Component, FileRecord, Inventory
from mlward._version import __version__
from mlward.errors import MissingExtra

NO_ASSERTION_LICENSE = "https://spdx.org/rdf/3.0.1/terms/ExpandedLicensing/NoAssertionLicense"
BUILD_TYPE = "https://github.com/mlward/mlward/lineage/training/v1"
_DATASET_TYPES = {"csv": "structured", "tsv": "structured", "parquet": "structured",
                  "jsonl": "structured", "json": "structured", "txt": "text",
                  "png": "image", "jpg": "image", "jpeg": "image", "wav": "audio",
                  "mp4": "video", "npy": "numeric", "npz": "numeric"}


def _model() -> Any:
    try:
        from spdx_python_model import v3_0_1
    except ImportError as exc:
        raise MissingExtra("spdx-python-model", "sbom") from exc
    return v3_0_1


class _Builder:
    def __init__(self, inventory: Inventory) -> None:
        self.m = _model()
        self.inventory = inventory
        self.base = inventory.serial or "urn:mlward:bom"
        self.objects: list[Any] = []
        m = self.m
        created = datetime.fromisoformat(inventory.created.replace("Z", "+00:00"))
        self.agent = m.SoftwareAgent(_id=self.id("agent:mlward"), name="mlward")
        self.tool = m.Tool(_id=self.id("tool:mlward"), name=f"mlward {__version__}")
        self.info = m.CreationInfo(specVersion="3.0.1", created=created,
                                   createdBy=[self.agent], createdUsing=[self.tool])
        for o in (self.agent, self.tool):
            o.creationInfo = self.info
        self.objects += [self.agent, self.tool]

    def id(self, ref: str) -> str:
        return f"{self.base}#{quote(ref, safe=':@')}"

    def add(self, obj: Any) -> Any:
        obj.creationInfo = self.info
        self.objects.append(obj)
        return obj

    def relate(self, source: Any, kind: str, targets: Iterable[Any], name: str) -> None:
        targets = list(targets)
        if targets:
            self.add(self.m.Relationship(
                _id=self.id(f"rel:{name}"), from_=source, to=targets,
                relationshipType=getattr(self.m.RelationshipType, kind)))

    def props(self, values: Mapping[str, Any]) -> list[Any]:
        entries = [self.m.extension_CdxPropertyEntry(extension_cdxPropName=name,
                                                     extension_cdxPropValue=value)
                   for name, value in props.encode(values)]
        return [self.m.extension_CdxPropertiesExtension(extension_cdxProperty=entries)] \
            if entries else []

    def hashes(self, digests: Iterable[tuple[str, str]]) -> list[Any]:
        m = self.m
        algs = {"sha256": m.HashAlgorithm.sha256, "sha384": m.HashAlgorithm.sha384,
                "sha512": m.HashAlgorithm.sha512, "blake3": m.HashAlgorithm.blake3}
        return [m.Hash(algorithm=algs[k], hashValue=v) for k, v in sorted(digests)
                if k in algs]

    def file(self, f: FileRecord) -> Any:
        return self.add(self.m.software_File(
            _id=self.id(f"file:{f.path}"), name=f.path,
            verifiedUsing=self.hashes(f.digests.items()),
            extension=self.props({"path": f.path, "size": f.size, "manifest": f.manifest,
                                  "signature": f.signature, "ledger": f.ledger or None})))

    def license(self, element: Any, c: Component) -> None:
        m = self.m
        if c.license:
            expr = self.add(m.simplelicensing_LicenseExpression(
                _id=self.id(f"license:{c.ref}"), simplelicensing_licenseExpression=c.license))
            target: Any = expr
        else:
            target = NO_ASSERTION_LICENSE
        for kind in ("hasDeclaredLicense", "hasConcludedLicense"):
            if c.kind in ("model", "model-source") or c.license:
                self.relate(element, kind, [target], f"{kind}:{c.ref}")

    def package(self, c: Component) -> Any:
        m = self.m
        common = _common(c)
        if c.kind in ("model", "model-source"):
            p = m.ai_AIPackage(_id=self.id(c.ref))
            self._ai(p, c)
            p.software_primaryPurpose = m.software_SoftwarePurpose.model
        elif c.kind == "dataset":
            p = m.dataset_DatasetPackage(_id=self.id(c.ref))
            self._dataset(p, c)
            p.software_primaryPurpose = m.software_SoftwarePurpose.data
        else:
            p = m.software_Package(_id=self.id(c.ref))
            p.software_primaryPurpose = (m.software_SoftwarePurpose.library
                                         if c.kind == "library"
                                         else m.software_SoftwarePurpose.application)
            endpoint = c.properties.get("endpoint")
            if endpoint:
                p.software_homePage = str(endpoint)
        p.name = c.name
        if c.version:
            p.software_packageVersion = c.version
        if c.purl:
            p.software_packageUrl = c.purl
        if c.description:
            p.description = c.description
        if c.location.startswith(("http://", "https://")):
            p.software_downloadLocation = c.location
        if c.supplier:
            org = self.add(m.Organization(_id=self.id(f"org:{c.supplier}"), name=c.supplier)) \
                if not any(o._id == self.id(f"org:{c.supplier}") for o in self.objects) \
                else next(o for o in self.objects if o._id == self.id(f"org:{c.supplier}"))
            p.suppliedBy = org
        single = len(c.files) == 1 and c.files[0].path == c.location
        locked = [tuple(h.split(":", 1)) for h in c.properties.get("distribution_hashes", ())]
        if locked:
            p.verifiedUsing = self.hashes((a, v) for a, v in locked)
        if single:
            p.verifiedUsing = self.hashes(c.files[0].digests.items())
            common.update({f"file:{k}": v for k, v in (
                ("path", c.files[0].path), ("size", c.files[0].size),
                ("manifest", c.files[0].manifest), ("signature", c.files[0].signature),
                ("ledger", c.files[0].ledger or None))})
        p.extension = self.props(common)
        self.add(p)
        if not single:
            self.relate(p, "contains", [self.file(f) for f in c.files], f"contains:{c.ref}")
        self.license(p, c)
        for v in c.vulnerabilities:
            self.relate(p, "hasAssociatedVulnerability", [self.vulnerability(v)],
                        f"vuln:{v.id}@{c.ref}")
        return p

    def _ai(self, p: Any, c: Component) -> None:
        m = self.m
        card = c.card
        kinds = [str(x) for x in (card.get("architecture"), card.get("architecture_family"),
                                  c.properties.get("architecture")) if x]
        if kinds:
            p.ai_typeOfModel = list(dict.fromkeys(kinds))
        if card.get("tags"):
            p.ai_domain = [str(t) for t in card["tags"]]
        if card.get("hyperparameters"):
            p.ai_hyperparameter = [m.DictionaryEntry(key=str(k), value=props.text(v))
                                   for k, v in sorted(card["hyperparameters"].items())]
        if card.get("metrics"):
            p.ai_metric = [m.DictionaryEntry(key=str(x.get("type")), value=str(x.get("value")))
                           for x in card["metrics"]]
        notes = card.get("considerations", {})
        for attr, key in (("ai_limitation", "technicalLimitations"),
                          ("ai_informationAboutApplication", "useCases"),
                          ("ai_informationAboutTraining", "training"),
                          ("ai_modelExplainability", "explainability"),
                          ("ai_modelDataPreprocessing", "preprocessing")):
            if notes.get(key):
                value = " ".join(str(t) for t in notes[key])
                setattr(p, attr, [value] if attr in ("ai_modelExplainability",
                                                     "ai_modelDataPreprocessing") else value)
        sensitive = [self.inventory.component(d) for d in card.get("datasets", ())]
        known = [d for d in sensitive if d is not None and "sensitive_data" in d.properties]
        if known:
            p.ai_useSensitivePersonalInformation = (
                m.PresenceType.yes if any(d.properties["sensitive_data"] for d in known)
                else m.PresenceType.no)

    def _dataset(self, p: Any, c: Component) -> None:
        m = self.m
        kinds = {_DATASET_TYPES.get(f, "other") for f in c.properties.get("formats", ())}
        p.dataset_datasetType = [getattr(m.dataset_DatasetType, k) for k in sorted(kinds)] \
            or [m.dataset_DatasetType.noAssertion]
        if isinstance(c.properties.get("size"), int):
            p.dataset_datasetSize = c.properties["size"]
        if "sensitive_data" in c.properties:
            p.dataset_hasSensitivePersonalInformation = (
                m.PresenceType.yes if c.properties["sensitive_data"] else m.PresenceType.no)

    def vulnerability(self, v: Any) -> Any:
        m = self.m
        ident = self.id(f"vuln:{v.id}")
        existing = next((o for o in self.objects if o._id == ident), None)
        if existing is not None:
            return existing
        ids = [m.ExternalIdentifier(
            externalIdentifierType=m.ExternalIdentifierType.cve if i.startswith("CVE-")
            else m.ExternalIdentifierType.securityOther, identifier=i)
            for i in (v.id, *v.aliases)]
        return self.add(m.security_Vulnerability(
            _id=ident, name=v.id, summary=v.summary[:500] or None, externalIdentifier=ids,
            extension=self.props({"severity": v.severity, "score": v.score,
                                  "vector": v.vector, "fixed": list(v.fixed),
                                  "upgrade": v.upgrade})))


def _common(c: Component) -> dict[str, Any]:
    return {"kind": c.kind, "ref": c.ref, "location": c.location, "verdict": c.verdict,
            "license": c.license,
            "finding": [f"{r} {s}: {msg}" for r, s, msg in c.findings],
            "incomplete": list(c.incomplete), "datasets": list(c.card.get("datasets", ())),
            **c.properties}


def render(inventory: Inventory) -> str:
    """The SPDX 3.0.1 JSON-LD text, checked by the SHACL-derived bindings."""
    b = _Builder(inventory)
    m = b.m
    try:
        project = b.add(m.software_Package(
            _id=b.id("project"), name=inventory.name,
            software_primaryPurpose=m.software_SoftwarePurpose.application))
        packages = {c.ref: b.package(c) for c in inventory.components}
        b.relate(project, "dependsOn", packages.values(), "project")
        for w in inventory.workflows:
            build = b.add(m.build_Build(
                _id=b.id(w.ref), name=w.name, build_buildType=BUILD_TYPE,
                build_buildId=w.run_id,
                build_parameter=[m.DictionaryEntry(key=str(k), value=props.text(v))
                                 for k, v in sorted(w.parameters.items())],
                build_environment=[m.DictionaryEntry(key=str(k), value=props.text(v))
                                   for k, v in sorted(w.environment.items())],
                extension=b.props({"statement": w.statement})))
            if w.started:
                build.build_buildStartTime = datetime.fromisoformat(
                    w.started.replace("Z", "+00:00"))
            if w.finished:
                build.build_buildEndTime = datetime.fromisoformat(
                    w.finished.replace("Z", "+00:00"))
            b.relate(build, "hasInput", [packages[r] for r in w.inputs], f"in:{w.ref}")
            b.relate(build, "hasOutput", [packages[r] for r in w.outputs], f"out:{w.ref}")
            for output in w.outputs:
                b.relate(packages[output], "trainedOn", [packages[r] for r in w.inputs],
                         f"trained:{output}:{w.ref}")
        meta: dict[str, Any] = {"incomplete": list(inventory.incomplete),
                                "serial": inventory.serial}
        if inventory.ledger is not None:
            meta.update({"ledger:origin": inventory.ledger.origin,
                         "ledger:size": str(inventory.ledger.size),
                         "ledger:root": inventory.ledger.root,
                         "ledger:checkpoint": inventory.ledger.note})
        sbom = b.add(m.software_Sbom(
            _id=b.id("sbom"), name=f"{inventory.name} ML-BOM",
            software_sbomType=[m.software_SbomType.analyzed], rootElement=[project],
            element=[o for o in b.objects if isinstance(o, m.Element)]))
        document = m.SpdxDocument(
            _id=b.id("document"), name=f"{inventory.name} ML-BOM", rootElement=[sbom],
            element=[sbom, project],
            profileConformance=[getattr(m.ProfileIdentifierType, p) for p in (
                "core", "software", "ai", "dataset", "security", "build", "simpleLicensing",
                "extension")],
            extension=b.props(meta))
        b.add(document)
        buffer = io.BytesIO()
        m.JSONLDSerializer().write(m.SHACLObjectSet(b.objects), buffer, indent=2)
        text: str = buffer.getvalue().decode()
        m.JSONLDDeserializer().read(io.BytesIO(buffer.getvalue()), m.SHACLObjectSet())
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BomError(f"the SPDX 3.0.1 document does not validate: {exc}") from exc
    return text if text.endswith("\n") else text + "\n"
