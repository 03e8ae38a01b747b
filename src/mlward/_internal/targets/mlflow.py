"""MLflow registered models: ``mlflow://HOST[:PORT]/models/NAME[/VERSION]``.

Everything goes through the tracking server's REST API (no ``mlflow`` package needed): the
model's versions (``model-versions/search``), where each one's artifacts are
(``model-versions/get-download-uri``; a ``runs:/`` answer resolved through ``runs/get``), and
their files. Artifacts the server proxies (``mlflow-artifacts:/``, what ``mlflow server``
does by default) are listed and read through its ``mlflow-artifacts`` API with ranged GETs;
artifacts in object storage (``s3://``, ``gs://``, ...) are read there directly. A store the
client cannot reach (a path on the server's own disk) is reported, inconclusive.

Every model version becomes a ``model-version`` fact located at
``mlflow://HOST/models/NAME/VERSION`` with its registry coordinates; its files are located
below it (``mlflow://HOST/models/NAME/VERSION/model/model.pkl``).

``mlflow://`` speaks HTTPS, except to a loopback address (``mlflow server``'s default is plain
HTTP on 127.0.0.1); ``mlflow+http://`` asks for plain HTTP elsewhere. No credentials are sent.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any, NamedTuple

from mlward._internal.sources.remote import (
    HTTP_TIMEOUT,
    OBJECT_SCHEMES,
    list_objects,
    scheme_of,
)
from mlward._internal.walk import Item, Walk
from mlward.errors import ScanError
from mlward.findings import Fact, Location, ReportBuilder

MAX_RESPONSE = 32 << 20
MAX_DEPTH = 32
PAGE = 200


class ModelTarget(NamedTuple):
    base: str
    """The server's HTTP(S) base URL."""
    host: str
    """``HOST[:PORT]`` as given: the authority of every location URI."""
    name: str
    version: str | None

    @property
    def location(self) -> str:
        """The model's location URI; its versions are ``/VERSION`` below it."""
        return f"mlflow://{self.host}/models/{urllib.parse.quote(self.name, safe='')}"


def parse(target: str) -> ModelTarget:
    parts = urllib.parse.urlsplit(target)
    scheme = parts.scheme.lower()
    segments = [urllib.parse.unquote(s) for s in parts.path.strip("/").split("/")]
    if not parts.netloc or len(segments) not in (2, 3) or segments[0] != "models" \
            or not segments[1] or (len(segments) == 3 and not segments[2].isdigit()):
        raise ScanError(f"{target}: expected mlflow://HOST[:PORT]/models/NAME[/VERSION]")
    http = "https" if scheme == "mlflow+https" else "http" if scheme == "mlflow+http" \
        else "http" if _loopback(parts.hostname or "") else "https"
    return ModelTarget(f"{http}://{parts.netloc}", parts.netloc, segments[1],
                       segments[2] if len(segments) == 3 else None)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api(base: str, endpoint: str, **params: str) -> Any:
    """GET a REST endpoint's JSON (bounded); :class:`~mlward.errors.ScanError` on failure."""
    url = f"{base}{endpoint}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            body = response.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        detail = exc.read(4096).decode("utf-8", "replace") if exc.fp is not None else ""
        raise ScanError(f"MLflow server {base}: HTTP {exc.code} for {endpoint}: "
                        f"{_message(detail)}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ScanError(f"cannot reach the MLflow server at {base}: "
                        f"{getattr(exc, 'reason', exc)}") from None
    if len(body) > MAX_RESPONSE:
        raise ScanError(f"MLflow server {base}: answer to {endpoint} over {MAX_RESPONSE} "
                        "bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise ScanError(f"MLflow server {base}: {endpoint} did not answer JSON") from None


def _message(detail: str) -> str:
    try:
        return str(json.loads(detail).get("message", detail))[:500]
    except (ValueError, AttributeError):
        return detail[:500]


def versions(t: ModelTarget) -> list[dict[str, Any]]:
    """The model versions the target names (one, or all of the model's), by number."""
    if t.version is not None:
        found = api(t.base, "/api/2.0/mlflow/model-versions/get", name=t.name,
                    version=t.version).get("model_version")
        return [found] if isinstance(found, dict) else []
    out: list[dict[str, Any]] = []
    token = ""
    escaped = t.name.replace("'", "\\'")
    while True:
        params = {"filter": f"name='{escaped}'", "max_results": str(PAGE)}
        if token:
            params["page_token"] = token
        page = api(t.base, "/api/2.0/mlflow/model-versions/search", **params)
        out.extend(v for v in page.get("model_versions", []) if isinstance(v, dict))
        token = str(page.get("next_page_token") or "")
        if not token:
            break
    if not out:  # say whether the model exists at all
        api(t.base, "/api/2.0/mlflow/registered-models/get", name=t.name)
    return sorted(out, key=lambda v: int(str(v.get("version", "0"))))


def artifact_root(t: ModelTarget, version: str) -> str:
    """Where a version's files are: ``mlflow-artifacts:/…``, ``s3://…``, ``file:…``."""
    uri = str(api(t.base, "/api/2.0/mlflow/model-versions/get-download-uri", name=t.name,
                  version=version).get("artifact_uri", ""))
    if uri.startswith("runs:/"):
        run_id, _, sub = uri[len("runs:/"):].partition("/")
        run = api(t.base, "/api/2.0/mlflow/runs/get", run_id=run_id).get("run", {})
        root = str(run.get("info", {}).get("artifact_uri", ""))
        uri = f"{root.rstrip('/')}/{sub}" if sub else root
    return uri


def proxied_files(base: str, root: str) -> Iterator[tuple[str, int]]:
    """``(path relative to root, size)`` of every file under a ``mlflow-artifacts:`` root."""
    top = urllib.parse.urlsplit(root).path.strip("/")
    stack = [("", 0)]
    while stack:
        rel, depth = stack.pop()
        listing = api(base, "/api/2.0/mlflow-artifacts/artifacts",
                      path=posixpath.join(top, rel) if rel else top)
        for entry in sorted(listing.get("files", []), key=lambda e: str(e.get("path")),
                            reverse=True):
            name = posixpath.basename(str(entry.get("path", "")))
            if not name or name in (".", ".."):
                continue
            path = f"{rel}/{name}" if rel else name
            if entry.get("is_dir"):
                if depth < MAX_DEPTH:
                    stack.append((path, depth + 1))
            else:
                yield path, int(entry.get("file_size") or 0)


def expand_models(target: str, walk: Walk, builder: ReportBuilder) -> Iterator[Item]:
    """Work units for the artifacts of every model version ``target`` names, and a
    ``model-version`` fact for each version."""
    t = parse(target)
    found = versions(t)
    if not found:
        builder.skip(Location(target), "the registered model has no versions",
                     inconclusive=True)
    for v in found:
        number = str(v.get("version", ""))
        here = f"{t.location}/{number}"
        root = artifact_root(t, number)
        items = list(_version_items(t, root, here, walk))
        if not _readable(root):
            builder.skip(Location(here), f"artifacts at {root or '(no location)'} are not "
                         "reachable from here (only proxied mlflow-artifacts: and object "
                         "storage are read)", inconclusive=True)
        elif not items:
            builder.skip(Location(here), "the model version has no files", inconclusive=True)
        builder.fact(Fact(Location(here), "model-version", {
            "registry": "mlflow", "server": t.base, "name": t.name, "version": number,
            "source": v.get("source"), "artifact_uri": root, "run_id": v.get("run_id"),
            "status": v.get("status"), "stage": v.get("current_stage"),
            "aliases": v.get("aliases", []), "files": len(items),
            "bytes": sum(i.size or 0 for i in items)}))
        yield from items


def _readable(root: str) -> bool:
    return root.startswith("mlflow-artifacts:") or scheme_of(root) in OBJECT_SCHEMES


def _version_items(t: ModelTarget, root: str, here: str, walk: Walk) -> Iterator[Item]:
    if root.startswith("mlflow-artifacts:"):
        top = urllib.parse.urlsplit(root).path.strip("/")
        for rel, size in proxied_files(t.base, root):
            url = (f"{t.base}/api/2.0/mlflow-artifacts/artifacts/"
                   f"{urllib.parse.quote(posixpath.join(top, rel))}")
            yield from _unless_excluded(walk, rel, Item(url, f"{here}/{rel}", size))
    elif scheme_of(root) in OBJECT_SCHEMES:
        for obj in list_objects(root):
            yield from _unless_excluded(walk, obj.key, Item(obj.url, f"{here}/{obj.key}",
                                                            obj.size))


def _unless_excluded(walk: Walk, rel: str, item: Item) -> Iterator[Item]:
    if walk.excludes(rel):
        walk.leave_out(item.uri, "excluded by the exclude settings", uri=item.uri)
    else:
        yield item
