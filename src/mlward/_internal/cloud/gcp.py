"""Google Cloud, read-only: Cloud Storage (buckets, IAM policies, a ranged read of sampled
objects) and Vertex AI Workbench instances, with Application Default Credentials
(``gcloud auth application-default login``, a service account key named by
``GOOGLE_APPLICATION_CREDENTIALS``, or the metadata server).

``endpoint_url`` points the storage client at another server (the local emulator in tests):
there, without Application Default Credentials, requests go unauthenticated. The permissions
a run needs are :data:`PERMISSIONS` (the README prints them; a custom role holding just these
is enough).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from mlward._internal.cloud.checks import Asset, Resource, World, check, flag
from mlward._internal.cloud.collect import Options, Run, sample
from mlward._internal.cloud.links import Links
from mlward.errors import MissingExtra, UsageError
from mlward.executors import ThreadExecutor
from mlward.findings import Finding, Severity
from mlward.rules import (
    GCS_MODEL_NO_RETENTION,
    GCS_NO_PAP,
    GCS_NO_UBLA,
    GCS_PUBLIC_BINDING,
    VERTEX_PUBLIC_IP,
)

SERVICES = ("storage", "workbench")
NOTEBOOKS_ENDPOINT = "https://notebooks.googleapis.com"
PERMISSIONS = {
    "storage.buckets.list": "list the project's buckets (with their settings)",
    "storage.buckets.get": "read a referenced bucket that is not in the listing",
    "storage.buckets.getIamPolicy": "read each bucket's IAM policy",
    "storage.objects.list": "list a bounded page of object names",
    "storage.objects.get": "read the first bytes of sampled objects (a ranged GET)",
    "storage.objects.getIamPolicy": "read the ACL of a model or dataset object (buckets "
                                    "without uniform bucket-level access)",
    "notebooks.instances.list": "list Vertex AI Workbench instances",
}
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")


def permission_role() -> dict[str, Any]:
    """The minimal permission set as a custom role definition (``mlward cloud permissions
    gcp``; create it with ``gcloud iam roles create --file``)."""
    return {"title": "mlward cloud reader", "description": "Read-only access for mlward cloud "
            "gcp", "stage": "GA", "includedPermissions": sorted(PERMISSIONS)}


READ_ROLES = ("roles/storage.objectViewer", "roles/storage.legacyObjectReader",
              "roles/storage.objectAdmin", "roles/storage.admin", "roles/storage.objectUser",
              "roles/storage.legacyBucketOwner", "roles/owner", "roles/editor", "roles/viewer")


class _Gcp:
    def __init__(self, options: Options, run: Run) -> None:
        try:
            import google.auth
            from google.auth.credentials import AnonymousCredentials
            from google.auth.transport.requests import AuthorizedSession
            from google.cloud import storage
        except ImportError:
            raise MissingExtra("google-cloud-storage", "cloud") from None
        self.options = options
        self.run = run
        project = options.project
        try:
            credentials, found = google.auth.default()
            project = project or found
        except google.auth.exceptions.DefaultCredentialsError as exc:
            if not options.endpoint_url:
                raise UsageError(f"Google Cloud credentials: {exc}") from None
            credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]  # emulator: no credentials needed
        if not project:
            raise UsageError("Google Cloud: no project (pass --project or set one with "
                             "`gcloud config set project`)")
        self.project = project
        self.http = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        self.http.mount("https://", _retrying(options.retries))
        self.http.mount("http://", _retrying(options.retries))
        self.http.hooks["response"].append(self._count)
        client_options = {"api_endpoint": options.endpoint_url} if options.endpoint_url else None
        self.client = storage.Client(project=project, credentials=credentials, _http=self.http,
                                     client_options=client_options)

    def _count(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self.run.count(f"{response.request.method} {response.request.path_url.split('?')[0]}"
                       .split("/o/")[0])


def _retrying(attempts: int) -> Any:
    """Throttling (429) and server errors are retried with exponential backoff, honouring
    Retry-After, up to ``attempts`` in all (every mlward call is a GET); the Notebooks API
    has no client library retry of its own. The storage client retries on top within its
    deadline."""
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    return HTTPAdapter(max_retries=Retry(
        total=attempts - 1, connect=attempts - 1, read=0, status_forcelist=(429, 500, 502, 503,
        504), allowed_methods=frozenset({"GET", "HEAD"}), backoff_factor=0.5,
        raise_on_status=False))


def _call(gcp: _Gcp, uri: str, what: str, fn: Callable[[], Any]) -> Any:
    """``fn()``; :class:`_Missing` on 404; None (and an inconclusive skip naming the
    permission) when refused or failed."""
    from google.api_core import exceptions

    try:
        return fn()
    except exceptions.NotFound:
        raise _Missing from None
    except exceptions.Forbidden as exc:
        gcp.run.skip(uri, f"{what} denied: {exc.message[:200]} (needs "
                     f"{_permission(what)}); the checks that depend on it were not run")
    except (exceptions.GoogleAPIError, OSError, ValueError) as exc:
        gcp.run.skip(uri, f"{what} failed: {exc}")
    return None


def _permission(what: str) -> str:
    return next((p for p in PERMISSIONS if p.split(".", 1)[1] in what), what)


class _Missing(Exception):
    pass


def collect(options: Options, run: Run, links: Links | None) -> World:
    gcp = _Gcp(options, run)
    run.stats["project"] = gcp.project
    resources: list[Resource] = []
    if run.wants("workbench"):
        resources += _workbench(gcp)
    if run.wants("storage"):
        resources += _buckets(gcp, links)
    return World(resources, links, trusted=options.trusted_accounts)


def _buckets(gcp: _Gcp, links: Links | None) -> list[Resource]:
    options = gcp.options
    references = [r for r in (links.references if links else ()) if r.target.provider == "gcp"]
    if options.buckets:
        listed: dict[str, Any] = dict.fromkeys(options.buckets)
    else:
        got = _call(gcp, f"gs://?project={gcp.project}", "buckets.list", lambda: list(
            gcp.client.list_buckets(projection="full", timeout=options.timeout,
                                    max_results=options.max_buckets)))
        listed = {b.name: b for b in got or []}
    for r in references:
        listed.setdefault(r.target.name, None)
    prefixes: dict[str, list[str]] = {}
    for r in references:
        prefixes.setdefault(r.target.name, []).append(r.target.key)
    names = list(listed)
    gcp.run.observer.on_start(len(names))
    out = []
    before = sum(gcp.run.calls.values())
    with ThreadExecutor(options.workers) as executor:
        fn = partial(_bucket_unit, gcp, listed, prefixes)
        for outcome in executor.map(fn, names):
            name = names[outcome.unit]
            if outcome.error is not None:
                gcp.run.skip(f"gs://{name}", f"bucket not examined: {outcome.error}")
            elif outcome.result is not None:
                out.append(outcome.result)
            gcp.run.observer.on_file(f"gs://{name}")
    gcp.run.stats["buckets"] = len(names)
    gcp.run.stats["bucket_api_calls"] = sum(gcp.run.calls.values()) - before
    return out


def _bucket_unit(gcp: _Gcp, listed: dict[str, Any], prefixes: dict[str, list[str]],
                 name: str) -> Resource | None:
    uri = f"gs://{name}"
    try:
        bucket = listed.get(name) or _call(gcp, uri, "buckets.get", partial(
            gcp.client.get_bucket, name, timeout=gcp.options.timeout))
        if bucket is None:
            return None
        return _bucket(gcp, bucket, prefixes.get(name, []))
    except _Missing:
        return Resource("gcs_bucket", uri, name, {"exists": False})


def _bucket(gcp: _Gcp, bucket: Any, prefixes: list[str]) -> Resource:
    options = gcp.options
    uri = f"gs://{bucket.name}"
    iam_config = bucket.iam_configuration
    data: dict[str, Any] = {
        "exists": True,
        "ubla": bool(iam_config.uniform_bucket_level_access_enabled),
        "pap": str(iam_config.public_access_prevention or "inherited"),
        "versioning": bool(bucket.versioning_enabled),
        "retention": bool(bucket.retention_period),
        "logging": bool(bucket.get_logging()),
    }
    members: list[tuple[str, str]] = []
    policy = _call(gcp, uri, "buckets.getIamPolicy", partial(
        bucket.get_iam_policy, requested_policy_version=3, timeout=options.timeout))
    if policy is not None:
        for binding in policy.bindings:
            for member in binding.get("members", ()):
                if member in PUBLIC_MEMBERS:
                    conditional = " (conditional)" if binding.get("condition") else ""
                    members.append((member, str(binding.get("role")) + conditional))
        data["public_bindings"] = [f"{m} {role}" for m, role in members]
    if not data["ubla"]:  # legacy ACLs still apply
        for entry in bucket._properties.get("acl", []) + bucket._properties.get(
                "defaultObjectAcl", []):
            if entry.get("entity") in PUBLIC_MEMBERS:
                members.append((entry["entity"], f"ACL {entry.get('role')}"))
                data.setdefault("public_bindings", []).append(
                    f"{entry['entity']} ACL {entry.get('role')}")
    enforced = data["pap"] == "enforced"
    data["public"] = [] if enforced else [
        f"{m} has {role}" for m, role in members
        if role.startswith(READ_ROLES) or role.startswith("ACL")]
    data["public_write"] = not enforced and any(
        "Admin" in role or "admin" in role or "WRITER" in role or "OWNER" in role
        or role.startswith(("roles/owner", "roles/editor")) for _, role in members)
    data["assets"], data["listed"], data["sampled"] = _sample(gcp, bucket, uri, prefixes)
    if data["assets"] and not data["ubla"] and not enforced:
        data["assets"] = [_object_acl(gcp, bucket, uri, a) for a in data["assets"]]
    return Resource("gcs_bucket", uri, bucket.name, data)


def _sample(gcp: _Gcp, bucket: Any, uri: str, prefixes: list[str]
            ) -> tuple[list[Asset], int, int]:
    options = gcp.options
    keys: dict[str, int] = {}

    def page(prefix: str) -> list[Any]:
        return list(gcp.client.list_blobs(bucket, prefix=prefix or None,
                                          max_results=options.list_limit,
                                          timeout=options.timeout))

    for prefix in ["", *sorted({p for p in prefixes if p})]:
        blobs = _call(gcp, uri, "objects.list", partial(page, prefix))
        if blobs is None:
            return [], 0, 0
        keys.update({b.name: int(b.size or 0) for b in blobs})

    def head(key: str) -> bytes:
        blob = bucket.blob(key)
        with contextlib.suppress(_Missing):
            data = _call(gcp, f"{uri}/{key}", "objects.get", partial(
                blob.download_as_bytes, start=0, end=options.head_bytes - 1, raw_download=True,
                timeout=options.timeout, checksum=None))
            return bytes(data or b"")[:options.head_bytes]
        return b""

    assets, sampled = sample(list(keys.items()), head, options, prefixes)
    return assets, len(keys), sampled


def _object_acl(gcp: _Gcp, bucket: Any, uri: str, asset: Asset) -> Asset:
    blob = bucket.blob(asset.key)
    try:
        acl = _call(gcp, f"{uri}/{asset.key}", "objects.getIamPolicy",
                    partial(blob.acl.reload, timeout=gcp.options.timeout))
    except _Missing:
        return asset
    if acl is None and not blob.acl.loaded:
        return asset
    public = any(entry.get("entity") in PUBLIC_MEMBERS for entry in blob.acl)
    return asset._replace(public_acl=public)


def _workbench(gcp: _Gcp) -> list[Resource]:
    """Vertex AI Workbench instances (notebooks API v2), where the API is enabled."""
    endpoint = (gcp.options.notebooks_endpoint or NOTEBOOKS_ENDPOINT).rstrip("/")
    url = f"{endpoint}/v2/projects/{gcp.project}/locations/-/instances"
    uri = f"{endpoint}/v2/projects/{gcp.project}"
    out: list[Resource] = []
    token = None
    for _ in range(100):  # pages
        try:
            response = gcp.http.get(url, params={"pageToken": token} if token else None,
                                    timeout=gcp.options.timeout)
        except OSError as exc:
            gcp.run.skip(uri, f"notebooks.instances.list failed: {exc}")
            return out
        if response.status_code == 404 or (
                response.status_code == 403 and "SERVICE_DISABLED" in response.text):
            gcp.run.stats["workbench"] = "API not enabled in the project (no instances)"
            return out
        if response.status_code != 200:
            gcp.run.skip(uri, f"notebooks.instances.list answered {response.status_code} "
                         f"(needs {next(iter(p for p in PERMISSIONS if 'notebooks' in p))})")
            return out
        body = response.json()
        for instance in body.get("instances", []):
            name = str(instance.get("name", "?"))
            setup = instance.get("gceSetup") or {}
            out.append(Resource("workbench", f"{endpoint}/v2/{name}", name.rsplit("/", 1)[-1],
                                {"public_ip": not setup.get("disablePublicIp", False)}))
        token = body.get("nextPageToken")
        if not token:
            break
    return out


# --- checks ---------------------------------------------------------------------------------

@check(GCS_PUBLIC_BINDING, "gcs_bucket")
def _public_binding(b: Resource, world: World) -> Iterator[Finding]:
    bindings = b.get("public_bindings") or []
    if bindings:
        enforced = b.get("pap") == "enforced"
        yield GCS_PUBLIC_BINDING.finding(
            b.location, f"{b.uri} grants {', '.join(bindings)}"
            + (" (blocked while public access prevention is enforced)" if enforced else ""),
            evidence=", ".join(bindings), severity=Severity.MEDIUM if enforced else None,
            details={"bindings": bindings})


flag(GCS_NO_UBLA, "gcs_bucket", lambda b: b.get("exists", True) and b.get("ubla") is False,
     "{uri} uses fine-grained (ACL) access")
flag(GCS_NO_PAP, "gcs_bucket",
     lambda b: b.get("exists", True) and b.get("pap") not in (None, "enforced"),
     "{uri} public access prevention is {pap}")
flag(VERTEX_PUBLIC_IP, "workbench", lambda r: bool(r.get("public_ip")),
     "Workbench instance {name} has a public IP address")


@check(GCS_MODEL_NO_RETENTION, "gcs_bucket")
def _retention(b: Resource, world: World) -> Iterator[Finding]:
    if b.get("exists", True) and not b.get("retention") and b.get("versioning") is False \
            and world.is_ml(b):
        yield GCS_MODEL_NO_RETENTION.finding(b.location, f"{b.uri} holds ML assets with "
                                             "neither versioning nor a retention policy")
