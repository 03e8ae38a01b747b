"""Links from a project's ML assets to the buckets that hold them.

A bucket is only a bucket until something uses it: an MLflow experiment stores its
artifacts there, a registered model version's source is there, a DVC remote keeps the
datasets there, a lineage statement lists it as training data, a BOM component comes from
it, a notebook reads it. :func:`collect` reads a project folder (bounded, never executing
anything) and returns those :class:`Reference` values; the live checks join them to what
they find in the buckets, so that a finding can say "the public bucket holds model X, which
MLflow experiment Y stores". Storage URIs of every provider are parsed by :func:`parse_uri`.
"""

from __future__ import annotations

import configparser
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from mlward._internal.walk import Walk

MAX_FILE_BYTES = 8 << 20
MAX_FILES = 50_000
MAX_REFERENCES = 100_000
MAX_JSON_NODES = 200_000
_TEXT_SUFFIXES = (".py", ".ipynb", ".sh", ".bash", ".yaml", ".yml", ".toml", ".cfg", ".ini",
                  ".env", ".json", ".txt", ".md", ".conf", ".tf", ".r", ".scala", ".sql")
_TEXT_NAMES = ("Dockerfile", "Makefile", "MLproject", "Procfile", ".env", "config")
URI = re.compile(r"(?:s3a?|s3n|gs|az|wasbs?|abfss?)://[A-Za-z0-9._@\-]+[^\s'\"`<>(){}\[\],;\\]*"
                 r"|https://[A-Za-z0-9.\-]+\.(?:blob\.core\.windows\.net|amazonaws\.com)"
                 r"/[^\s'\"`<>(){}\[\],;\\]*"
                 r"|https://storage\.googleapis\.com/[^\s'\"`<>(){}\[\],;\\]+")


class StorageUri(NamedTuple):
    provider: str
    """``aws``, ``gcp`` or ``azure``."""
    bucket: str
    """The bucket's location URI: ``s3://name``, ``gs://name``, ``az://account/container``."""
    key: str
    """The object key or prefix inside it (no leading slash)."""

    @property
    def name(self) -> str:
        return self.bucket.split("://", 1)[1]


def parse_uri(text: str) -> StorageUri | None:
    """A storage URI of any provider (``s3://``, ``gs://``, ``az://``, ``wasbs://``,
    ``abfss://``, and the providers' https forms), or None."""
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return None
    scheme, host, path = parts.scheme.lower(), parts.netloc, parts.path.lstrip("/")
    if not host:
        return None
    if scheme in ("s3", "s3a", "s3n"):
        return StorageUri("aws", f"s3://{host}", path)
    if scheme == "gs":
        return StorageUri("gcp", f"gs://{host}", path)
    if scheme == "az":
        container, _, key = path.partition("/")
        return StorageUri("azure", f"az://{host}/{container}", key) if container else None
    if scheme in ("wasb", "wasbs", "abfs", "abfss") and "@" in host:
        container, account = host.split("@", 1)
        return StorageUri("azure", f"az://{account.split('.')[0]}/{container}", path)
    if scheme == "https":
        if host.endswith(".blob.core.windows.net"):
            container, _, key = path.partition("/")
            return (StorageUri("azure", f"az://{host.split('.')[0]}/{container}", key)
                    if container else None)
        if host == "storage.googleapis.com":
            bucket, _, key = path.partition("/")
            return StorageUri("gcp", f"gs://{bucket}", key) if bucket else None
        if host.endswith(".amazonaws.com"):
            m = re.match(r"^(.+)\.s3[.\-]", host)
            if m:
                return StorageUri("aws", f"s3://{m.group(1)}", path)
            if host.startswith("s3"):
                bucket, _, key = path.partition("/")
                return StorageUri("aws", f"s3://{bucket}", key) if bucket else None
    return None


class Reference(NamedTuple):
    """Something in a project (or an account) that points into a bucket."""

    target: StorageUri
    what: str
    """Who refers: ``MLflow experiment 'fraud'``, ``DVC remote 'storage'``."""
    source: str
    """Where the reference is written: a location URI (a project file, relative to the
    root) or a cloud resource (an ARN)."""
    line: int | None = None
    asset: str | None = None
    """The model or dataset the reference names, when it names one."""

    def covers(self, key: str) -> bool:
        """Whether an object key lies under the referenced prefix."""
        prefix = self.target.key.rstrip("/")
        return not prefix or key == prefix or key.startswith(prefix + "/")

    def describe(self) -> str:
        where = f"{self.source}" + (f", line {self.line}" if self.line else "")
        return f"{self.what} ({where})"


# --- readers --------------------------------------------------------------------------------

def _read(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:4096]:
        return None
    return data.decode("utf-8", "replace")


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return None


def _line_of(text: str, needle: str) -> int | None:
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else None


def _mlflow_meta(path: Path, uri: str, text: str, experiments: Mapping[str, str]
                 ) -> Iterator[Reference]:
    """An MLflow file store ``meta.yaml``: an experiment, a run or a model version."""
    meta = _yaml(text)
    if not isinstance(meta, dict):
        return
    if "artifact_location" in meta:  # mlruns/<experiment id>/meta.yaml
        target = parse_uri(str(meta["artifact_location"]))
        if target:
            yield Reference(target, f"MLflow experiment '{meta.get('name', '?')}'", uri,
                            _line_of(text, "artifact_location"))
    elif "artifact_uri" in meta:  # mlruns/<experiment>/<run>/meta.yaml
        target = parse_uri(str(meta["artifact_uri"]))
        experiment = experiments.get(str(meta.get("experiment_id")), "?")
        if target:
            yield Reference(target, f"MLflow run '{meta.get('run_name') or meta.get('run_id')}'"
                            f" of experiment '{experiment}'", uri, _line_of(text, "artifact_uri"))
    elif "source" in meta and "version" in meta:  # mlruns/models/<name>/version-<n>/meta.yaml
        for key in ("storage_location", "source"):
            target = parse_uri(str(meta.get(key) or ""))
            if target:
                name = meta.get("name", path.parent.parent.name)
                yield Reference(target, f"MLflow registered model '{name}' version "
                                f"{meta.get('version')}", uri, _line_of(text, key), str(name))
                break


def _dvc_config(uri: str, text: str) -> Iterator[Reference]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return
    for section in parser.sections():
        # DVC writes ['remote "name"'], which configparser reads with the outer quotes.
        m = re.fullmatch(r"""['"]?\s*remote\s+["']?([^"']+)["']?\s*['"]?""", section)
        target = parse_uri(parser[section].get("url", "")) if m else None
        if m and target:
            yield Reference(target, f"DVC remote '{m.group(1)}'", uri,
                            _line_of(text, parser[section]["url"]))


def _dvc_outputs(text: str) -> Iterator[tuple[str, str]]:
    """(md5, path) of the outputs a ``.dvc`` file or ``dvc.lock`` tracks."""
    data = _yaml(text)
    stack: list[Any] = [data]
    budget = 10_000
    while stack and budget > 0:
        budget -= 1
        item = stack.pop()
        if isinstance(item, dict):
            md5, path = item.get("md5"), item.get("path")
            if isinstance(md5, str) and isinstance(path, str) and re.fullmatch(
                    r"[0-9a-f]{32}(\.dir)?", md5):
                yield md5.removesuffix(".dir"), path
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _json_document(uri: str, text: str, name: str) -> Iterator[Reference]:
    """Lineage statements (in-toto) and BOMs (CycloneDX, SPDX): every storage URI in them,
    named after the model or component it belongs to."""
    if not text.lstrip().startswith("{"):
        return
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return
    if not isinstance(doc, dict):
        return
    if "in-toto.io/Statement" in str(doc.get("_type", "")):
        subjects = [str(s.get("name")) for s in doc.get("subject") or [] if isinstance(s, dict)]
        model = name.removesuffix(".lineage.json") if name.endswith(".lineage.json") \
            else (subjects[0] if subjects else name)
        for value in _strings(doc):
            target = parse_uri(value)
            if target:
                yield Reference(target, f"lineage of model '{model}'", uri,
                                _line_of(text, value), model)
    else:
        for component in _bom_components(doc):
            if not isinstance(component, dict):
                continue
            label = str(component.get("name", "?"))
            for value in _strings(component):
                target = parse_uri(value)
                if target:
                    yield Reference(target, f"BOM component '{label}'", uri,
                                    _line_of(text, value), label)


def _bom_components(doc: Mapping[str, Any]) -> list[Any]:
    """The components of a BOM of any format ``mlward bom`` writes or reads (CycloneDX, an
    mlward inventory, SPDX 3 JSON-LD) or an SPDX 2 document; [] for any other JSON."""
    if doc.get("bomFormat") == "CycloneDX" or doc.get("kind") == "mlward.inventory":
        found = doc.get("components")
    elif "spdxVersion" in doc:
        found = doc.get("packages")
    elif isinstance(doc.get("@graph"), list):
        found = [o for o in doc["@graph"] if isinstance(o, dict) and str(o.get("type", ""))
                 .endswith("Package")]
    else:
        found = None
    return found if isinstance(found, list) else []


def _strings(value: object) -> Iterator[str]:
    stack = [value]
    budget = MAX_JSON_NODES
    while stack and budget > 0:
        budget -= 1
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


_MLFLOW_ROOT = re.compile(r"--(default-artifact-root|artifacts-destination)[=\s]+['\"]?([^\s'\"]+)")


def _text_file(uri: str, text: str, name: str) -> Iterator[Reference]:
    """Storage URIs in code, notebooks and configs; an MLflow server's artifact root."""
    for m in _MLFLOW_ROOT.finditer(text):
        target = parse_uri(m.group(2))
        if target:
            yield Reference(target, f"MLflow server --{m.group(1)}", uri,
                            text.count("\n", 0, m.start()) + 1)
    kind = "notebook" if name.endswith(".ipynb") else "code" if name.endswith(".py") \
        else "configuration"
    for m in URI.finditer(text):
        target = parse_uri(m.group(0))
        if target:
            yield Reference(target, f"{kind} {uri}", uri, text.count("\n", 0, m.start()) + 1)


# --- the walk -------------------------------------------------------------------------------

class Links(NamedTuple):
    references: list[Reference]
    dvc_outputs: dict[str, str]
    """md5 -> the path DVC tracks it under (names content-addressed objects of a remote)."""
    texts: list[tuple[str, str]]
    """(uri, text) of the code, notebook and config files read (searched for SAS tokens)."""

    def for_bucket(self, bucket: str) -> list[Reference]:
        return [r for r in self.references if r.target.bucket == bucket]

    def asset_name(self, key: str) -> str | None:
        """The dataset or model a DVC remote object is: ``files/md5/ab/cdef...`` or
        ``ab/cdef...`` named by the ``.dvc`` file that tracks it."""
        m = re.search(r"([0-9a-f]{2})/([0-9a-f]{30})(\.dir)?$", key)
        return self.dvc_outputs.get(m.group(1) + m.group(2)) if m else None


def collect(inputs: Sequence[Path], root: Path, *, exclude: Sequence[str] = (),
            ignore_files: bool = True) -> Links:
    """References found under ``inputs`` (locations relative to ``root``). An ``mlruns``
    folder beside an input is read even when ``.gitignore`` lists it (it usually does)."""
    extra = [p / "mlruns" for p in inputs if (p / "mlruns").is_dir()]
    walk = Walk(root, exclude=exclude, ignore_files=ignore_files)
    items = list(walk.files([*inputs, *extra]))[:MAX_FILES]
    metas = [(Path(i.path), i.uri) for i in items if Path(i.path).name == "meta.yaml"]
    experiments = {}
    for path, _ in metas:
        meta = _yaml(_read(path) or "")
        if isinstance(meta, dict) and "artifact_location" in meta:
            experiments[str(meta.get("experiment_id", path.parent.name))] = str(meta.get("name"))
    refs: list[Reference] = []
    outputs: dict[str, str] = {}
    texts = []
    seen: set[str] = set()
    for item in items:
        if item.path in seen:
            continue
        seen.add(item.path)
        path = Path(item.path)
        name = path.name
        if name == "meta.yaml":
            text = _read(path)
            refs += _mlflow_meta(path, item.uri, text, experiments) if text else []
        elif path.parent.name == ".dvc" and name in ("config", "config.local"):
            text = _read(path)
            refs += _dvc_config(item.uri, text) if text else []
        elif name.endswith(".dvc") or name == "dvc.lock":
            text = _read(path)
            for md5, tracked in _dvc_outputs(text or ""):
                outputs[md5] = tracked
        elif name.endswith(_TEXT_SUFFIXES) or name in _TEXT_NAMES:
            text = _read(path)
            if text is None:
                continue
            texts.append((item.uri, text))
            if name.endswith(".json"):
                refs += _json_document(item.uri, text, name)
            refs += _text_file(item.uri, text, name)
        if len(refs) >= MAX_REFERENCES:
            break
    return Links(_dedupe(refs), outputs, texts)


def _dedupe(refs: list[Reference]) -> list[Reference]:
    """One reference per (target, source): a file naming a URI in a known role (an MLflow
    experiment) is not also reported as a plain mention of it."""
    best: dict[tuple[StorageUri, str], Reference] = {}
    for r in refs:
        key = (r.target, r.source)
        if key not in best or (best[key].what.startswith(("code ", "notebook ",
                                                           "configuration "))):
            best[key] = r
    return list(best.values())
