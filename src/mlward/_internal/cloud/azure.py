"""Azure, read-only: Blob Storage containers (public access level, a ranged read of sampled
blobs, soft delete) through a connection string or an account URL with
``DefaultAzureCredential`` (environment, workload or managed identity, Azure CLI login), and
storage account properties through the Azure Resource Manager API when a subscription is
given. SAS tokens written in the project's code and notebooks are judged too.

A container whose access level is public is confirmed with one anonymous request (listing
for ``container`` access, reading a blob's properties for ``blob`` access), so the finding
says whether anyone really got in. The permissions a run needs are :data:`PERMISSIONS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from functools import partial
from typing import Any

from mlward._internal.cloud import sas
from mlward._internal.cloud.checks import Resource, World, check, flag
from mlward._internal.cloud.collect import Options, Run, sample
from mlward._internal.cloud.links import Links
from mlward.errors import MissingExtra, UsageError
from mlward.executors import ThreadExecutor
from mlward.findings import Finding, Location
from mlward.rules import (
    AZ_ACCOUNT_PUBLIC,
    AZ_CONTAINER_PUBLIC,
    AZ_NO_SOFT_DELETE,
    AZ_SAS_BROAD,
    AZ_SHARED_KEY,
)

SERVICES = ("storage", "accounts", "sas")
MANAGEMENT_ENDPOINT = "https://management.azure.com"
ARM_API_VERSION = "2023-05-01"
ACTIONS = ["Microsoft.Storage/storageAccounts/read",
           "Microsoft.Storage/storageAccounts/blobServices/read",
           "Microsoft.Storage/storageAccounts/blobServices/containers/read"]
"""Control-plane actions: account properties (with --subscription), blob service properties
(soft delete), containers and their public access level."""
DATA_ACTIONS = ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"]
"""Data-plane action: list blobs and read the first bytes of sampled ones (the built-in role
Storage Blob Data Reader has it)."""


def permission_role() -> dict[str, Any]:
    """The minimal permission set as an Azure custom role (``mlward cloud permissions
    azure``)."""
    return {"Name": "mlward cloud reader", "IsCustom": True,
            "Description": "Read-only access for mlward cloud azure",
            "Actions": ACTIONS, "NotActions": [], "DataActions": DATA_ACTIONS,
            "NotDataActions": [], "AssignableScopes": ["/subscriptions/<subscription-id>"]}


class _Missing(Exception):
    pass


def _call(run: Run, uri: str, what: str, fn: Any) -> Any:
    """``fn()``, or None (with an inconclusive skip) when refused or failed."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
    )

    try:
        return fn()
    except ResourceNotFoundError:
        raise _Missing from None
    except (ClientAuthenticationError, HttpResponseError) as exc:
        status = getattr(exc, "status_code", None)
        why = "denied" if status in (401, 403) else f"failed ({status})"
        run.skip(uri, f"{what} {why}: {str(exc.message or exc)[:200]}; the checks that "
                 "depend on it were not run")
    except (AzureError, OSError, ValueError) as exc:
        run.skip(uri, f"{what} failed: {exc}")
    return None


def _clients(options: Options, run: Run, credential: Any) -> list[Any]:
    try:
        from azure.storage.blob import BlobServiceClient
    except ImportError:
        raise MissingExtra("azure-storage-blob", "cloud") from None
    kwargs: dict[str, Any] = {
        "connection_timeout": options.timeout, "read_timeout": options.timeout,
        # azure-storage-blob counts retries after the first attempt; --retries is attempts.
        "retry_total": options.retries - 1, "retry_status": options.retries - 1,
        "retry_connect": options.retries - 1, "retry_read": options.retries - 1,
        "raw_response_hook": lambda response: run.count(f"{response.http_request.method} blob")}
    if options.connection_string:
        try:
            return [BlobServiceClient.from_connection_string(options.connection_string,
                                                             **kwargs)]
        except ValueError as exc:
            raise UsageError(f"Azure connection string: {exc}") from None
    if options.account_url:
        return [BlobServiceClient(options.account_url, credential=credential, **kwargs)]
    return []


def _default_credential() -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise MissingExtra("azure-identity", "cloud") from None
    return DefaultAzureCredential()


def collect(options: Options, run: Run, links: Links | None, *,
            credential: Any = None) -> World:
    """``credential`` (any azure-core token credential) defaults to
    ``DefaultAzureCredential``; the connection string, when given, serves the data plane."""
    if not (options.connection_string or options.account_url or options.subscription):
        raise UsageError("Azure: give --connection-string-env VAR, --account-url URL or "
                         "--subscription ID")
    needs_token = options.subscription or (options.account_url and not
                                           options.connection_string)
    if credential is None and needs_token:
        credential = _default_credential()
    resources: list[Resource] = []
    accounts = _arm_accounts(options, run, credential) if options.subscription else {}
    clients = _clients(options, run, credential)
    if not clients and accounts:
        from azure.storage.blob import BlobServiceClient

        clients = [BlobServiceClient(a["blob"], credential=credential)
                   for a in accounts.values() if a.get("blob")]
    for client in clients:
        if run.wants("storage"):
            resources += _account(client, run, options, links, accounts)
    for name, props in accounts.items():  # accounts whose data plane was not reached
        if not any(r.kind == "az_account" and r.name == name for r in resources):
            resources.append(Resource("az_account", f"az://{name}", name, dict(props)))
    if links and run.wants("sas"):
        resources += _sas_tokens(links)
    return World(resources, links)


def _arm_accounts(options: Options, run: Run, credential: Any) -> dict[str, dict[str, Any]]:
    """Storage accounts of the subscription with the properties the checks read."""
    import requests

    endpoint = (options.management_endpoint or MANAGEMENT_ENDPOINT).rstrip("/")
    url = (f"{endpoint}/subscriptions/{options.subscription}/providers/Microsoft.Storage/"
           f"storageAccounts?api-version={ARM_API_VERSION}")
    uri = f"{endpoint}/subscriptions/{options.subscription}"
    try:
        token = credential.get_token(f"{MANAGEMENT_ENDPOINT}/.default").token
    except Exception as exc:  # azure-identity raises its own hierarchy
        raise UsageError(f"Azure credentials: {exc}") from None
    out: dict[str, dict[str, Any]] = {}
    for _ in range(100):  # pages
        try:
            response = requests.get(url, headers={"Authorization": f"Bearer {token}"},
                                    timeout=options.timeout)
        except requests.RequestException as exc:
            run.skip(uri, f"storage accounts not listed: {exc}")
            return out
        run.count("GET storageAccounts")
        if response.status_code != 200:
            run.skip(uri, f"storage accounts not listed: HTTP {response.status_code} (needs "
                     "Microsoft.Storage/storageAccounts/read)")
            return out
        body = response.json()
        for account in body.get("value", []):
            props = account.get("properties") or {}
            out[str(account.get("name"))] = {
                "public_allowed": props.get("allowBlobPublicAccess") is not False,
                "shared_key": props.get("allowSharedKeyAccess") is not False,
                "blob": (props.get("primaryEndpoints") or {}).get("blob"),
                "id": account.get("id"),
            }
        url = body.get("nextLink")
        if not url:
            break
    return out


def _account(client: Any, run: Run, options: Options, links: Links | None,
             arm: dict[str, dict[str, Any]]) -> list[Resource]:
    name = client.account_name
    base = f"az://{name}"
    properties = _call(run, base, "blob service properties", client.get_service_properties)
    containers = _call(run, base, "containers.list", lambda: list(client.list_containers()))
    references = [r for r in (links.references if links else ())
                  if r.target.provider == "azure" and r.target.bucket.startswith(base + "/")]
    names = {c.name for c in containers or []}
    if options.buckets:
        names &= set(options.buckets)
    wanted = sorted(names | {r.target.bucket.split("/", 3)[3] for r in references})
    run.observer.on_start(len(wanted))
    out = []
    with ThreadExecutor(options.workers) as executor:
        for outcome in executor.map(partial(_container, client, run, options, references),
                                    wanted):
            container = wanted[outcome.unit]
            if outcome.error is not None:
                run.skip(f"{base}/{container}", f"container not examined: {outcome.error}")
            elif outcome.result is not None:
                out.append(outcome.result)
            run.observer.on_file(f"{base}/{container}")
    data: dict[str, Any] = dict(arm.get(name, {}))
    if properties is not None:
        retention = properties.get("delete_retention_policy")
        data["soft_delete"] = bool(retention and retention.enabled)
    data["holds_models"] = any(a.content.kind == "model" for r in out
                               for a in r.get("assets", ()))
    out.append(Resource("az_account", base, name, data))
    run.stats["containers"] = run.stats.get("containers", 0) + len(wanted)
    return out


def _container(client: Any, run: Run, options: Options, references: list[Any],
               name: str) -> Resource | None:
    uri = f"az://{client.account_name}/{name}"
    container = client.get_container_client(name)
    try:
        props = _call(run, uri, "container properties", container.get_container_properties)
    except _Missing:
        return Resource("az_container", uri, name, {"exists": False})
    if props is None:
        return None
    access = props.public_access  # None, "blob" or "container"
    data: dict[str, Any] = {"exists": True, "access": access or "private"}
    prefixes = [r.target.key for r in references if r.target.bucket == uri]
    keys: dict[str, int] = {}
    for prefix in ["", *sorted({p for p in prefixes if p})]:
        page = _call(run, uri, "blobs.list", partial(_list, container, prefix,
                                                     options.list_limit))
        keys.update({b.name: int(b.size or 0) for b in page or []})

    def head(key: str) -> bytes:
        try:
            got = _call(run, f"{uri}/{key}", "blob read", lambda: container.download_blob(
                key, offset=0, length=options.head_bytes).readall())
        except _Missing:
            return b""
        return bytes(got or b"")

    data["assets"], data["sampled"] = sample(list(keys.items()), head, options, prefixes)
    data["listed"] = len(keys)
    data["public"], data["confirmed"] = _anonymous(client, name, access, list(keys))
    data["public_write"] = False  # Azure public access levels are read-only
    return Resource("az_container", uri, name, data)


def _list(container: Any, prefix: str, limit: int) -> list[Any]:
    pages = container.list_blobs(name_starts_with=prefix or None,
                                 results_per_page=limit).by_page()
    return list(next(pages, []))


def _anonymous(client: Any, name: str, access: str | None, keys: list[str]
               ) -> tuple[list[str], bool | None]:
    """Why anyone can read the container, and whether one anonymous request confirmed it
    (None: not tried, e.g. an empty ``blob``-level container)."""
    if access not in ("blob", "container"):
        return [], None
    from azure.core.exceptions import AzureError
    from azure.storage.blob import ContainerClient

    reason = ("public access level 'container' (anyone lists and reads blobs)"
              if access == "container" else "public access level 'blob' (anyone reads blobs "
              "by name)")
    anonymous = ContainerClient(client.url, name, credential=None)
    try:
        if access == "container":
            list(next(anonymous.list_blobs(results_per_page=1).by_page(), []))
        elif keys:
            anonymous.get_blob_client(keys[0]).get_blob_properties()
        else:
            return [reason], None
    except (AzureError, OSError):
        return [reason], False
    return [reason + ", confirmed by an anonymous request"], True


def _sas_tokens(links: Links) -> list[Resource]:
    out = []
    now = datetime.now(timezone.utc)
    for uri, text in links.texts:
        for token in sas.find(text):
            if sas.is_broad(token, now):
                out.append(Resource("sas_token", uri, token.host, {"token": token}))
    return out


# --- checks ---------------------------------------------------------------------------------

@check(AZ_CONTAINER_PUBLIC, "az_container")
def _public(c: Resource, world: World) -> Iterator[Finding]:
    if c.get("access") in ("blob", "container"):
        confirmed = c.get("confirmed")
        note = {True: "; an anonymous request got in", False: "; an anonymous request was "
                "refused (the account disallows public access)", None: ""}[confirmed]
        yield AZ_CONTAINER_PUBLIC.finding(
            c.location, f"{c.uri} has public access level '{c.get('access')}'{note}",
            evidence=f"access {c.get('access')}",
            details={"access": c.get("access"), "confirmed_anonymous": confirmed})


flag(AZ_ACCOUNT_PUBLIC, "az_account", lambda a: bool(a.get("public_allowed")),
     "storage account {name} allows blob public access")
flag(AZ_SHARED_KEY, "az_account", lambda a: bool(a.get("shared_key")),
     "storage account {name} allows shared key access")
flag(AZ_NO_SOFT_DELETE, "az_account",
     lambda a: bool(a.get("holds_models")) and a.get("soft_delete") is False,
     "storage account {name} holds models and keeps no deleted blobs (soft delete off)")


@check(AZ_SAS_BROAD, "sas_token")
def _sas(r: Resource, world: World) -> Iterator[Finding]:
    token: sas.Sas = r.get("token")
    lifetime = token.lifetime(datetime.now(timezone.utc))
    life = f"valid for {lifetime.days} days" if lifetime is not None else "with no expiry"
    yield AZ_SAS_BROAD.finding(
        Location(r.uri, line=token.line),
        f"SAS token for {token.host or 'an Azure storage account'} grants "
        f"{', '.join(token.grants())}, {life}", evidence=token.evidence,
        details={"permissions": token.permissions, "host": token.host})
