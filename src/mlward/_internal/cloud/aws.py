"""AWS, read-only: S3 (and S3-compatible stores through ``endpoint_url``), S3 Control, IAM,
STS, Organizations, SageMaker and Bedrock, through boto3's standard credential chain
(profiles, environment, SSO, instance and task roles).

Every API operation mlward calls is listed in :data:`ACTIONS` with the IAM action that
allows it: that list is the documented minimal permission set (the README prints it, and a
test checks that a full run calls nothing else). Calls run with timeouts and botocore's
adaptive retry mode (client-side rate limiting on throttling); buckets are examined in
parallel threads. A call that is denied or fails makes what depended on it a skipped,
inconclusive item that names the missing permission: never a silent pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from mlward._internal.cloud import awspolicy
from mlward._internal.cloud.checks import Asset, Resource, World, check, flag
from mlward._internal.cloud.collect import Options, Run, sample
from mlward._internal.cloud.links import Links, Reference, parse_uri
from mlward.errors import MissingExtra, UsageError
from mlward.executors import ThreadExecutor
from mlward.findings import Finding, Severity
from mlward.rules import (
    BEDROCK_CUSTOM_NO_CMK,
    BEDROCK_NO_LOGGING,
    IAM_PASSROLE_ANY,
    IAM_ROLE_ANY_PRINCIPAL,
    IAM_SERVICE_WILDCARD,
    S3_ACCOUNT_BPA_OFF,
    S3_BUCKET_BPA_OFF,
    S3_CORS_ANY,
    S3_CROSS_ACCOUNT,
    S3_MODEL_NO_OBJECT_LOCK,
    S3_MODEL_NO_VERSIONING,
    S3_NO_ACCESS_LOGGING,
    S3_NO_ENCRYPTION,
    S3_PUBLIC_ACL,
    S3_PUBLIC_POLICY,
    S3_REPLICATION_EXTERNAL,
    S3_WEBSITE,
    SM_ENDPOINT_NO_CAPTURE,
    SM_ENDPOINT_NO_KMS,
    SM_MODEL_WEAK_BUCKET,
    SM_NOTEBOOK_INTERNET,
    SM_NOTEBOOK_NO_KMS,
    SM_NOTEBOOK_NO_VPC,
    SM_NOTEBOOK_ROOT,
    SM_TRAINING_NO_ICE,
    SM_TRAINING_NO_ISOLATION,
)

SERVICES = ("s3", "iam", "sagemaker", "bedrock")
MAX_TRAINING_JOBS = 100
MAX_LISTED = 10_000
ACTIONS: dict[str, str] = {
    "sts:GetCallerIdentity": "sts:GetCallerIdentity",
    "s3control:GetPublicAccessBlock": "s3:GetAccountPublicAccessBlock",
    "organizations:ListAccounts": "organizations:ListAccounts",
    "s3:ListBuckets": "s3:ListAllMyBuckets",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:GetBucketAcl": "s3:GetBucketAcl",
    "s3:GetBucketPolicy": "s3:GetBucketPolicy",
    "s3:GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "s3:GetBucketLogging": "s3:GetBucketLogging",
    "s3:GetBucketCors": "s3:GetBucketCORS",
    "s3:GetBucketReplication": "s3:GetReplicationConfiguration",
    "s3:GetBucketVersioning": "s3:GetBucketVersioning",
    "s3:GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketWebsite": "s3:GetBucketWebsite",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:GetObject": "s3:GetObject",
    "s3:GetObjectAcl": "s3:GetObjectAcl",
    "iam:GetAccountAuthorizationDetails": "iam:GetAccountAuthorizationDetails",
    "sagemaker:ListNotebookInstances": "sagemaker:ListNotebookInstances",
    "sagemaker:DescribeNotebookInstance": "sagemaker:DescribeNotebookInstance",
    "sagemaker:ListTrainingJobs": "sagemaker:ListTrainingJobs",
    "sagemaker:DescribeTrainingJob": "sagemaker:DescribeTrainingJob",
    "sagemaker:ListEndpoints": "sagemaker:ListEndpoints",
    "sagemaker:DescribeEndpoint": "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig": "sagemaker:DescribeEndpointConfig",
    "sagemaker:ListModels": "sagemaker:ListModels",
    "sagemaker:DescribeModel": "sagemaker:DescribeModel",
    "bedrock:GetModelInvocationLoggingConfiguration":
        "bedrock:GetModelInvocationLoggingConfiguration",
    "bedrock:ListCustomModels": "bedrock:ListCustomModels",
    "bedrock:GetCustomModel": "bedrock:GetCustomModel",
}
"""API operation -> the IAM action that allows it: the minimal read-only permission set.
(``s3:GetObject`` is only ever a ranged GET of an object's first bytes.)"""


def permission_policy() -> dict[str, Any]:
    """The minimal permission set as an IAM policy document (``mlward cloud permissions
    aws``)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "MlwardCloudReadOnly", "Effect": "Allow",
        "Action": sorted(set(ACTIONS.values())), "Resource": "*"}]}

_PUBLIC_GROUPS = {"http://acs.amazonaws.com/groups/global/AllUsers": "AllUsers",
                  "http://acs.amazonaws.com/groups/global/AuthenticatedUsers":
                      "AuthenticatedUsers"}
_NOT_CONFIGURED = frozenset({
    "NoSuchBucketPolicy", "NoSuchPublicAccessBlockConfiguration",
    "ServerSideEncryptionConfigurationNotFoundError", "NoSuchCORSConfiguration",
    "NoSuchWebsiteConfiguration", "ReplicationConfigurationNotFoundError",
    "ObjectLockConfigurationNotFoundError", "NoSuchLifecycleConfiguration",
})
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "AllAccessDisabled",
                     "UnauthorizedOperation", "AuthorizationError", "InvalidAccessKeyId",
                     "SignatureDoesNotMatch", "ExpiredToken"})
BPA_KEYS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
            "RestrictPublicBuckets")


class _Missing(Exception):
    """The bucket does not exist."""


class Unknown:
    """A call that was denied or failed (what depends on it is not judged)."""


UNKNOWN: Unknown = Unknown()


class Api:
    """boto3 clients of one run, with the run's timeouts, retries and call counting."""

    def __init__(self, options: Options, run: Run) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise MissingExtra("boto3", "cloud") from None
        self.options = options
        self.run = run
        try:
            self.session = boto3.Session(profile_name=options.profile)
        except Exception as exc:  # botocore's ProfileNotFound and friends
            raise UsageError(f"AWS credentials: {exc}") from None
        self.session.events.register("before-call", self._count)
        if options.endpoint_url:
            self.session.events.register("before-sign.s3-control", self._unprefix)
        self.config = Config(connect_timeout=options.timeout, read_timeout=options.timeout,
                             retries={"total_max_attempts": options.retries, "mode": "adaptive"},
                             user_agent_extra="mlward-cloud", max_pool_connections=64)
        self._clients: dict[tuple[str, str], Any] = {}

    def _count(self, model: Any, **_: Any) -> None:
        self.run.count(f"{model.service_model.service_name}:{model.name}")

    def _unprefix(self, request: Any, **_: Any) -> None:
        """S3 Control puts the account id in front of the host name; a custom endpoint
        (a local or S3-compatible server) answers on its own name only."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(request.url)
        wanted = urlsplit(str(self.options.endpoint_url)).netloc
        if parts.netloc != wanted and parts.netloc.endswith("." + wanted):
            request.url = urlunsplit(parts._replace(netloc=wanted))
            if "Host" in request.headers:
                request.headers.replace_header("Host", wanted)

    @property
    def default_region(self) -> str:
        return self.session.region_name or "us-east-1"

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.default_region
        if (service, region) not in self._clients:
            config = self.config
            if service == "s3" and self.options.endpoint_url:
                config = config.merge(type(config)(s3={"addressing_style": "path"}))
            self._clients[(service, region)] = self.session.client(
                service, region_name=region, endpoint_url=self.options.endpoint_url,
                config=config)
        return self._clients[(service, region)]


def _error(exc: BaseException) -> tuple[str, str]:
    """(code, message) of a botocore error."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        err = response.get("Error") or {}
        return str(err.get("Code", type(exc).__name__)), str(err.get("Message", exc))
    return type(exc).__name__, str(exc)


def _call(api: Api, uri: str, service: str, operation: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or None when the resource has no such configuration, or :data:`UNKNOWN`
    (recorded as an inconclusive skip naming the permission) when the call failed."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn()
    except ClientError as exc:
        code, message = _error(exc)
        if code in _NOT_CONFIGURED:
            return None
        if code in ("NoSuchBucket", "404", "NotFound"):
            raise _Missing from None
        action = ACTIONS.get(f"{service}:{operation}", f"{service}:{operation}")
        why = "denied" if code in _DENIED else f"failed ({code})"
        api.run.skip(uri, f"{service}:{operation} {why}: {message[:200]} (needs {action}); "
                     "the checks that depend on it were not run")
    except BotoCoreError as exc:
        api.run.skip(uri, f"{service}:{operation} failed: {exc}")
    return UNKNOWN


# --- collection -----------------------------------------------------------------------------

def collect(options: Options, run: Run, links: Links | None) -> World:
    """Everything the checks need, read from the account the credentials belong to."""
    api = Api(options, run)
    sts = api.client("sts")
    identity = _call(api, "aws://sts", "sts", "GetCallerIdentity", sts.get_caller_identity)
    if identity is UNKNOWN or identity is None:
        raise UsageError("AWS: the credentials were refused (sts:GetCallerIdentity failed); "
                         "check the profile, the environment or the instance role")
    account = str(identity["Account"])
    if options.account and options.account != account:
        raise UsageError(f"AWS: the credentials belong to account {account}, not "
                         f"{options.account} (--account)")
    run.stats["account"] = account
    resources: list[Resource] = []
    references: list[Reference] = []
    trusted = {account, *options.trusted_accounts, *_organisation(api, run)}
    regions = options.regions or (api.default_region,)
    account_bpa: Mapping[str, bool] | Unknown = UNKNOWN
    if run.wants("s3"):
        account_bpa = _account_bpa(api, account)
        resources.append(Resource("aws_account", f"arn:aws:iam::{account}:root", account,
                                  {"bpa": account_bpa}))
    if run.wants("iam"):
        resources += _guarded(run, f"arn:aws:iam::{account}:root", "IAM",
                              partial(_iam, api, account))
    for region in regions:
        if run.wants("sagemaker"):
            found = _guarded(run, f"arn:aws:sagemaker:{region}:{account}:", "SageMaker",
                             partial(_sagemaker, api, region, account))
            resources += found
            references += _sagemaker_references(found)
        if run.wants("bedrock"):
            resources += _guarded(run, f"arn:aws:bedrock:{region}:{account}:", "Bedrock",
                                  partial(_bedrock, api, region, account))
    if run.wants("s3"):
        world_refs = [*(links.references if links else ()), *references]
        resources += _buckets(api, options, run, account_bpa, world_refs)
    return World(resources, links, account=account, trusted=trusted, references=references)


def _guarded(run: Run, uri: str, what: str, fn: Callable[[], list[Resource]]
             ) -> list[Resource]:
    """``fn()``; an answer mlward did not expect (a field missing) makes that service an
    inconclusive skip instead of stopping the run."""
    try:
        return fn()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        run.skip(uri, f"{what} not examined: unexpected answer ({type(exc).__name__}: {exc})")
        return []


def _organisation(api: Api, run: Run) -> list[str]:
    """The organisation's accounts, when the credentials may list them (else none: only
    the scanned account and the trusted accounts count as inside)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        pages = api.client("organizations").get_paginator("list_accounts").paginate()
        return [a["Id"] for page in pages for a in page.get("Accounts", [])]
    except (ClientError, BotoCoreError) as exc:
        run.stats["organisation"] = f"accounts not listed ({_error(exc)[0]})"
        return []


def _account_bpa(api: Api, account: str) -> Mapping[str, bool] | Unknown:
    uri = f"arn:aws:iam::{account}:root"
    try:
        got = _call(api, uri, "s3control", "GetPublicAccessBlock", lambda: api.client(
            "s3control").get_public_access_block(AccountId=account))
    except _Missing:
        got = None
    if isinstance(got, Unknown):
        return got
    config: Mapping[str, Any] = (got or {}).get("PublicAccessBlockConfiguration", {})
    return {k: bool(config.get(k)) for k in BPA_KEYS}


def _buckets(api: Api, options: Options, run: Run, account_bpa: Mapping[str, bool] | Unknown,
             references: list[Reference]) -> list[Resource]:
    s3 = api.client("s3")
    owned: list[str] = list(options.buckets)
    if not owned:
        listing = _call(api, "s3://", "s3", "ListBuckets", s3.list_buckets)
        if listing is UNKNOWN:
            owned = []
        else:
            owned = [b["Name"] for b in (listing or {}).get("Buckets", [])]
    owned = owned[:options.max_buckets]
    referenced = sorted({r.target.name for r in references if r.target.provider == "aws"}
                        - set(owned))
    prefixes: dict[str, list[str]] = {}
    for r in references:
        if r.target.provider == "aws":
            prefixes.setdefault(r.target.name, []).append(r.target.key)
    units = [(name, name not in referenced) for name in [*owned, *referenced]]
    run.observer.on_start(len(units))
    before = sum(run.calls.values())
    out = []
    bpa = account_bpa if not isinstance(account_bpa, Unknown) else {}
    with ThreadExecutor(options.workers) as executor:
        fn = partial(_bucket_unit, api, s3, bpa, prefixes)
        for outcome in executor.map(fn, units):
            name = units[outcome.unit][0]
            if outcome.error is not None:
                run.skip(f"s3://{name}", f"bucket not examined: {outcome.error}")
            elif outcome.result is not None:
                out.append(outcome.result)
            run.observer.on_file(f"s3://{name}")
    run.stats["buckets"] = len(units)
    run.stats["bucket_api_calls"] = sum(run.calls.values()) - before
    return out


def _bucket_unit(api: Api, s3: Any, account_bpa: Mapping[str, bool],
                 prefixes: Mapping[str, list[str]], unit: tuple[str, bool]) -> Resource | None:
    name, owned = unit
    uri = f"s3://{name}"
    try:
        if not owned:  # referenced by the project: does it exist, and is it ours to read?
            status = _head(api, s3, name)
            if status == "missing":
                return Resource("s3_bucket", uri, name, {"exists": False})
            if status == "foreign":
                return None
        return _bucket(api, s3, name, account_bpa, prefixes.get(name, []))
    except _Missing:
        return Resource("s3_bucket", uri, name, {"exists": False})


def _head(api: Api, s3: Any, name: str) -> str:
    """``ok``, ``missing`` (nobody owns the name) or ``foreign`` (it exists, but these
    credentials may not read it: another account's bucket)."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=name)
        return "ok"
    except ClientError as exc:
        code = _error(exc)[0]
        if code in ("404", "NoSuchBucket", "NotFound"):
            return "missing"
        api.run.skip(f"s3://{name}", f"referenced bucket not examined: HeadBucket answered "
                     f"{code} (it exists but these credentials may not read it)",
                     inconclusive=False)
        return "foreign"


def _public_grants(grants: list[Mapping[str, Any]]) -> list[str]:
    out = []
    for g in grants:
        group = _PUBLIC_GROUPS.get(str((g.get("Grantee") or {}).get("URI", "")))
        if group:
            out.append(f"{group} {g.get('Permission')}")
    return out


def _bucket(api: Api, s3: Any, name: str, account_bpa: Mapping[str, bool],
            prefixes: list[str]) -> Resource:
    uri = f"s3://{name}"

    def call(operation: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        return _call(api, uri, "s3", operation, lambda: fn(Bucket=name, **kwargs))

    data: dict[str, Any] = {"exists": True}
    acl = call("GetBucketAcl", s3.get_bucket_acl)
    if acl is not UNKNOWN:
        data["acl_public"] = _public_grants(acl.get("Grants", []))
    policy = call("GetBucketPolicy", s3.get_bucket_policy)
    if policy is not UNKNOWN:
        data["policy"] = list(awspolicy.statements((policy or {}).get("Policy")))
    bpa = call("GetPublicAccessBlock", s3.get_public_access_block)
    if bpa is not UNKNOWN:
        config = (bpa or {}).get("PublicAccessBlockConfiguration", {})
        data["bpa"] = {k: bool(config.get(k)) for k in BPA_KEYS}
    encryption = call("GetBucketEncryption", s3.get_bucket_encryption)
    if encryption is not UNKNOWN:
        data["encryption"] = bool((encryption or {}).get("ServerSideEncryptionConfiguration"))
    logging_ = call("GetBucketLogging", s3.get_bucket_logging)
    if logging_ is not UNKNOWN:
        data["logging"] = "LoggingEnabled" in (logging_ or {})
    cors = call("GetBucketCors", s3.get_bucket_cors)
    if cors is not UNKNOWN:
        data["cors_origins"] = sorted({o for rule in (cors or {}).get("CORSRules", [])
                                       for o in rule.get("AllowedOrigins", [])})
    replication = call("GetBucketReplication", s3.get_bucket_replication)
    if replication is not UNKNOWN:
        rules = ((replication or {}).get("ReplicationConfiguration") or {}).get("Rules", [])
        data["replication"] = [r.get("Destination", {}) for r in rules
                               if r.get("Status") == "Enabled"]
    effective = {k: bool(account_bpa.get(k)) or bool((data.get("bpa") or {}).get(k))
                 for k in BPA_KEYS}
    if account_bpa or all(effective.values()):  # else the account's settings are unknown
        data["bpa_effective"] = effective
    _exposure(data, effective)
    data["assets"], data["listed"], data["sampled"] = _sample(api, s3, uri, name, prefixes)
    if data["assets"] and not effective["IgnorePublicAcls"]:
        data["assets"] = [_object_acl(api, s3, uri, name, a) for a in data["assets"]]
    if data["assets"] or prefixes:  # ML storage: the settings that protect models
        versioning = call("GetBucketVersioning", s3.get_bucket_versioning)
        if versioning is not UNKNOWN:
            data["versioning"] = (versioning or {}).get("Status") == "Enabled"
        lock = call("GetObjectLockConfiguration", s3.get_object_lock_configuration)
        if lock is not UNKNOWN:
            data["object_lock"] = ((lock or {}).get("ObjectLockConfiguration") or {}).get(
                "ObjectLockEnabled") == "Enabled"
        website = call("GetBucketWebsite", s3.get_bucket_website)
        if website is not UNKNOWN:
            data["website"] = website is not None
    return Resource("s3_bucket", uri, name, data)


def _exposure(data: dict[str, Any], effective: Mapping[str, bool]) -> None:
    """``public``: why anyone can read the bucket's objects (what Block Public Access lets
    through); ``public_write``: whether anyone can also write."""
    reasons = []
    write = False
    grants = data.get("acl_public") or []
    if grants and not effective["IgnorePublicAcls"]:
        reasons += [f"ACL grants {g}" for g in grants
                    if g.split()[-1] in ("READ", "FULL_CONTROL")]
        write = any(g.split()[-1] in ("WRITE", "FULL_CONTROL") for g in grants)
    statements = [s for s in data.get("policy", ()) if awspolicy.is_public(s)]
    if statements and not effective["RestrictPublicBuckets"]:
        if any(awspolicy.grants_read(s) for s in statements):
            reasons.append("bucket policy lets any principal read objects")
        write = write or any(awspolicy.grants_write(s) for s in statements)
    data["public"] = reasons
    data["public_write"] = write


def _sample(api: Api, s3: Any, uri: str, name: str,
            prefixes: list[str]) -> tuple[list[Asset], int, int]:
    options = api.options
    keys: dict[str, int] = {}
    for prefix in ["", *sorted({p for p in prefixes if p})]:
        got = _call(api, uri, "s3", "ListObjectsV2", partial(
            s3.list_objects_v2, Bucket=name, Prefix=prefix,
            MaxKeys=min(options.list_limit, 1000)))
        if got is UNKNOWN:
            return [], 0, 0
        for item in (got or {}).get("Contents", [])[:MAX_LISTED]:
            keys[item["Key"]] = int(item.get("Size", 0))

    def head(key: str) -> bytes:
        got = _call(api, f"{uri}/{key}", "s3", "GetObject", lambda: s3.get_object(
            Bucket=name, Key=key, Range=f"bytes=0-{options.head_bytes - 1}"))
        if got is UNKNOWN or got is None:
            return b""
        with contextlib.closing(got["Body"]) as body:
            return bytes(body.read(options.head_bytes))

    assets, sampled = sample(list(keys.items()), head, options, prefixes)
    return assets, len(keys), sampled


def _object_acl(api: Api, s3: Any, uri: str, name: str, asset: Asset) -> Asset:
    got = _call(api, f"{uri}/{asset.key}", "s3", "GetObjectAcl",
                lambda: s3.get_object_acl(Bucket=name, Key=asset.key))
    if got is UNKNOWN or got is None:
        return asset
    readable = [g for g in _public_grants(got.get("Grants", []))
                if g.split()[-1] in ("READ", "FULL_CONTROL")]
    return asset._replace(public_acl=bool(readable))


def _pages(api: Api, uri: str, service: str, operation: str, client: Any, method: str,
           key: str, **kwargs: Any) -> list[Any] | Unknown:
    """All items under ``key`` of a paginated list call."""
    def fetch() -> list[Any]:
        paginator = client.get_paginator(method)
        return [item for page in paginator.paginate(**kwargs) for item in page.get(key, [])]
    result: list[Any] | Unknown = _call(api, uri, service, operation, fetch)
    return result


def _iam(api: Api, account: str) -> list[Resource]:
    uri = f"arn:aws:iam::{account}:root"
    iam = api.client("iam")

    def fetch() -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"Policies": [], "RoleDetailList": [],
                                     "UserDetailList": [], "GroupDetailList": []}
        paginator = iam.get_paginator("get_account_authorization_details")
        for page in paginator.paginate(Filter=["LocalManagedPolicy", "Role", "User", "Group"]):
            for k in out:
                out[k] += page.get(k, [])
        return out

    details = _call(api, uri, "iam", "GetAccountAuthorizationDetails", fetch)
    if details is UNKNOWN or details is None:
        return []
    out = []
    for policy in details["Policies"]:
        document = next((v.get("Document") for v in policy.get("PolicyVersionList", [])
                         if v.get("IsDefaultVersion")), None)
        name = policy.get("PolicyName") or str(policy["Arn"]).rsplit("/", 1)[-1]
        out.append(Resource("iam_policy", policy["Arn"], name,
                            {"statements": list(awspolicy.statements(document)),
                             "attachments": policy.get("AttachmentCount", 0)}))
    for kind, items, inline_key in (("role", details["RoleDetailList"], "RolePolicyList"),
                                    ("user", details["UserDetailList"], "UserPolicyList"),
                                    ("group", details["GroupDetailList"], "GroupPolicyList")):
        for item in items:
            name = item.get(f"{kind.capitalize()}Name", "?")
            for inline in item.get(inline_key, []):
                out.append(Resource("iam_policy", item["Arn"],
                                    f"{kind} {name}, inline policy {inline.get('PolicyName')}",
                                    {"statements": list(awspolicy.statements(
                                        inline.get("PolicyDocument")))}))
            if kind == "role":
                out.append(Resource("iam_role", item["Arn"], name, {
                    "trust": list(awspolicy.statements(item.get("AssumeRolePolicyDocument")))}))
    return out


def _sagemaker(api: Api, region: str, account: str) -> list[Resource]:
    sm = api.client("sagemaker", region)
    base = f"arn:aws:sagemaker:{region}:{account}:"
    out: list[Resource] = []

    def describe(operation: str, fn: Callable[[], Any]) -> Any:
        try:
            got = _call(api, base, "sagemaker", operation, fn)
        except _Missing:
            return None
        return None if got is UNKNOWN else got

    notebooks = _pages(api, base, "sagemaker", "ListNotebookInstances", sm,
                       "list_notebook_instances", "NotebookInstances")
    for nb in notebooks if isinstance(notebooks, list) else []:
        d = describe("DescribeNotebookInstance", partial(
            sm.describe_notebook_instance, NotebookInstanceName=nb["NotebookInstanceName"]))
        if d:
            out.append(Resource("sm_notebook", d["NotebookInstanceArn"],
                                d["NotebookInstanceName"], {
                                    "internet": d.get("DirectInternetAccess", "Enabled"),
                                    "root": d.get("RootAccess", "Enabled"),
                                    "subnet": d.get("SubnetId"), "kms": d.get("KmsKeyId"),
                                    "role": d.get("RoleArn")}))
    jobs = describe("ListTrainingJobs", lambda: sm.list_training_jobs(
        MaxResults=MAX_TRAINING_JOBS, SortBy="CreationTime", SortOrder="Descending"))
    for job in (jobs or {}).get("TrainingJobSummaries", []):
        d = describe("DescribeTrainingJob", partial(
            sm.describe_training_job, TrainingJobName=job["TrainingJobName"]))
        if d:
            inputs = [c.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri")
                      for c in d.get("InputDataConfig", [])]
            out.append(Resource("sm_training_job", d["TrainingJobArn"], d["TrainingJobName"], {
                "isolation": bool(d.get("EnableNetworkIsolation")),
                "encryption": bool(d.get("EnableInterContainerTrafficEncryption")),
                "role": d.get("RoleArn"), "inputs": [i for i in inputs if i]}))
    endpoints = _pages(api, base, "sagemaker", "ListEndpoints", sm, "list_endpoints",
                       "Endpoints")
    for ep in endpoints if isinstance(endpoints, list) else []:
        d = describe("DescribeEndpoint", partial(sm.describe_endpoint,
                                                 EndpointName=ep["EndpointName"]))
        config = d and describe("DescribeEndpointConfig", partial(
            sm.describe_endpoint_config, EndpointConfigName=d["EndpointConfigName"]))
        if d and config:
            capture = config.get("DataCaptureConfig") or {}
            out.append(Resource("sm_endpoint", d["EndpointArn"], d["EndpointName"], {
                "kms": config.get("KmsKeyId"), "config": d["EndpointConfigName"],
                "capture": bool(capture) and capture.get("EnableCapture", True) is not False}))
    models = _pages(api, base, "sagemaker", "ListModels", sm, "list_models", "Models")
    for model in models if isinstance(models, list) else []:
        d = describe("DescribeModel", partial(sm.describe_model, ModelName=model["ModelName"]))
        if d:
            containers = [d.get("PrimaryContainer") or {}, *d.get("Containers", [])]
            urls = [c.get("ModelDataUrl") or ((c.get("ModelDataSource") or {}).get(
                "S3DataSource") or {}).get("S3Uri") for c in containers]
            out.append(Resource("sm_model", d["ModelArn"], d["ModelName"], {
                "data_urls": [u for u in urls if u], "role": d.get("ExecutionRoleArn"),
                "isolation": bool(d.get("EnableNetworkIsolation"))}))
    return out


def _sagemaker_references(resources: list[Resource]) -> list[Reference]:
    """What SageMaker itself loads: model artifacts (ModelDataUrl) and training data."""
    out = []
    for r in resources:
        if r.kind == "sm_model":
            for url in r.get("data_urls", ()):
                target = parse_uri(url)
                if target:
                    out.append(Reference(target, f"SageMaker model '{r.name}'", r.uri,
                                         asset=r.name))
        elif r.kind == "sm_training_job":
            for url in r.get("inputs", ()):
                target = parse_uri(url)
                if target:
                    out.append(Reference(target, f"SageMaker training job '{r.name}' "
                                         "(training data)", r.uri))
    return out


def _bedrock(api: Api, region: str, account: str) -> list[Resource]:
    br = api.client("bedrock", region)
    base = f"arn:aws:bedrock:{region}:{account}:"
    out = []
    try:
        logging_ = _call(api, base, "bedrock", "GetModelInvocationLoggingConfiguration",
                         br.get_model_invocation_logging_configuration)
    except _Missing:
        logging_ = None
    if logging_ is not UNKNOWN:
        config = (logging_ or {}).get("loggingConfig") or {}
        enabled = bool(config.get("cloudWatchConfig") or config.get("s3Config"))
        out.append(Resource("bedrock_region", f"{base}model-invocation-logging", region,
                            {"logging": enabled}))
    models = _pages(api, base, "bedrock", "ListCustomModels", br, "list_custom_models",
                    "modelSummaries")
    for m in models if isinstance(models, list) else []:
        try:
            d = _call(api, base, "bedrock", "GetCustomModel",
                      partial(br.get_custom_model, modelIdentifier=m["modelArn"]))
        except _Missing:
            continue
        if d is not UNKNOWN and d:
            out.append(Resource("bedrock_custom_model", d["modelArn"], d["modelName"],
                                {"kms": d.get("modelKmsKeyArn")}))
    return out


# --- checks ---------------------------------------------------------------------------------

@check(S3_PUBLIC_ACL, "s3_bucket")
def _acl(b: Resource, world: World) -> Iterator[Finding]:
    grants = b.get("acl_public") or []
    if grants:
        ignored = (b.get("bpa_effective") or {}).get("IgnorePublicAcls")
        yield S3_PUBLIC_ACL.finding(
            b.location, f"{b.uri} ACL grants {', '.join(grants)}"
            + (" (ignored while Block Public Access ignores public ACLs)" if ignored else ""),
            evidence=", ".join(grants), severity=Severity.MEDIUM if ignored else None,
            details={"grants": grants})


@check(S3_PUBLIC_POLICY, "s3_bucket")
def _policy(b: Resource, world: World) -> Iterator[Finding]:
    public = [s for s in b.get("policy", ()) if awspolicy.is_public(s)]
    if public:
        restricted = (b.get("bpa_effective") or {}).get("RestrictPublicBuckets")
        actions = sorted({a for s in public for a in s.actions})
        yield S3_PUBLIC_POLICY.finding(
            b.location, f"{b.uri} policy allows any principal {', '.join(actions[:5])} "
            "with no restricting condition"
            + (" (restricted while Block Public Access restricts public buckets)"
               if restricted else ""),
            evidence=", ".join(s.sid or "statement" for s in public),
            severity=Severity.MEDIUM if restricted else None, details={"actions": actions})


@check(S3_ACCOUNT_BPA_OFF, "aws_account")
def _account_bpa_check(a: Resource, world: World) -> Iterator[Finding]:
    bpa = a.get("bpa")
    if isinstance(bpa, Mapping):
        off = [k for k in BPA_KEYS if not bpa.get(k)]
        if off:
            yield S3_ACCOUNT_BPA_OFF.finding(
                a.location, f"account {a.name}: Block Public Access leaves {', '.join(off)} off",
                evidence=", ".join(off))


@check(S3_BUCKET_BPA_OFF, "s3_bucket")
def _bucket_bpa(b: Resource, world: World) -> Iterator[Finding]:
    if "bpa" not in b.data:
        return
    off = [k for k, on in (b.get("bpa_effective") or {}).items() if not on]
    if off:
        yield S3_BUCKET_BPA_OFF.finding(
            b.location, f"{b.uri}: neither the account nor the bucket turns on "
            f"{', '.join(off)}", evidence=", ".join(off))


@check(S3_MODEL_NO_VERSIONING, "s3_bucket")
def _versioning(b: Resource, world: World) -> Iterator[Finding]:
    if b.get("versioning") is False and world.is_ml(b):
        yield S3_MODEL_NO_VERSIONING.finding(
            b.location, f"{b.uri} holds {_ml_summary(b, world)} with versioning off")


@check(S3_MODEL_NO_OBJECT_LOCK, "s3_bucket")
def _object_lock(b: Resource, world: World) -> Iterator[Finding]:
    if b.get("object_lock") is False and any(a.content.kind == "model"
                                             for a in b.get("assets", ())):
        yield S3_MODEL_NO_OBJECT_LOCK.finding(
            b.location, f"{b.uri} holds models without object lock")


@check(S3_CORS_ANY, "s3_bucket")
def _cors(b: Resource, world: World) -> Iterator[Finding]:
    if "*" in (b.get("cors_origins") or ()):
        yield S3_CORS_ANY.finding(b.location, f"{b.uri} CORS allows any origin (*)",
                                  evidence="AllowedOrigins *")


def _outsiders(accounts: set[str], world: World) -> list[str]:
    return sorted(accounts - world.trusted)


@check(S3_CROSS_ACCOUNT, "s3_bucket")
def _cross_account(b: Resource, world: World) -> Iterator[Finding]:
    accounts = {a for s in b.get("policy", ()) if s.allows for a in awspolicy.accounts(s)}
    others = _outsiders(accounts, world)
    if others:
        yield S3_CROSS_ACCOUNT.finding(
            b.location, f"{b.uri} policy grants account(s) {', '.join(others)}",
            evidence=", ".join(others), details={"accounts": others})


@check(S3_WEBSITE, "s3_bucket")
def _website(b: Resource, world: World) -> Iterator[Finding]:
    if b.get("website") and world.is_ml(b):
        yield S3_WEBSITE.finding(b.location, f"{b.uri} serves a static website and holds "
                                 f"{_ml_summary(b, world)}")


@check(S3_REPLICATION_EXTERNAL, "s3_bucket")
def _replication(b: Resource, world: World) -> Iterator[Finding]:
    accounts = {str(d.get("Account")) for d in b.get("replication", ()) if d.get("Account")}
    others = _outsiders(accounts, world)
    if others:
        yield S3_REPLICATION_EXTERNAL.finding(
            b.location, f"{b.uri} replicates to account(s) {', '.join(others)}",
            evidence=", ".join(others), details={"accounts": others})


def _ml_summary(b: Resource, world: World) -> str:
    assets = b.get("assets", ())
    if assets:
        kinds = sorted({a.content.kind for a in assets})
        return f"{len(assets)} {' and '.join(kinds)} file(s)"
    refs = world.refs(b.uri)
    return "ML artifacts of " + "; ".join(r.what for r in refs[:3])


def _sagemaker_roles(world: World) -> list[str]:
    return sorted({str(r.get("role")) for kind in ("sm_notebook", "sm_training_job", "sm_model")
                   for r in world.kind(kind) if r.get("role")})


@check(IAM_SERVICE_WILDCARD, "iam_policy")
def _service_wildcard(p: Resource, world: World) -> Iterator[Finding]:
    found = sorted({a for s in p.get("statements", ()) for a in awspolicy.wildcard_services(s)})
    if found:
        yield IAM_SERVICE_WILDCARD.finding(
            p.location, f"{p.name} allows {', '.join(found)} on every resource",
            evidence=f"{p.name}: {', '.join(found)}")


@check(IAM_PASSROLE_ANY, "iam_policy")
def _passrole(p: Resource, world: World) -> Iterator[Finding]:
    if any(awspolicy.passrole_any(s) for s in p.get("statements", ())):
        roles = _sagemaker_roles(world)
        yield IAM_PASSROLE_ANY.finding(
            p.location, f"{p.name} allows iam:PassRole on every role"
            + (f", including the roles SageMaker runs as ({', '.join(roles[:3])})"
               if roles else ""), evidence=f"{p.name}: iam:PassRole *",
            details={"sagemaker_roles": roles})


@check(IAM_ROLE_ANY_PRINCIPAL, "iam_role")
def _any_principal(r: Resource, world: World) -> Iterator[Finding]:
    if any(awspolicy.is_public(s) for s in r.get("trust", ())):
        yield IAM_ROLE_ANY_PRINCIPAL.finding(
            r.location, f"role {r.name} can be assumed by any principal",
            evidence=f"role {r.name}")


@check(SM_MODEL_WEAK_BUCKET, "sm_model")
def _model_bucket(r: Resource, world: World) -> Iterator[Finding]:
    for url in r.get("data_urls", ()):
        target = parse_uri(url)
        bucket = world.bucket(target.bucket) if target else None
        if bucket is None or not bucket.get("exists", True):
            continue
        key = target.key if target else ""
        public = list(bucket.get("public") or []) + [
            f"the object {a.key} has a public ACL" for a in bucket.get("assets", ())
            if a.public_acl and (a.key == key or a.key.startswith(key.rstrip("/") + "/"))]
        if public:
            yield SM_MODEL_WEAK_BUCKET.finding(
                r.location, f"model {r.name} loads {url} from {bucket.uri}, which anyone can "
                f"read ({'; '.join(public)})", evidence=url, severity=Severity.CRITICAL)
        elif bucket.get("versioning") is False:
            yield SM_MODEL_WEAK_BUCKET.finding(
                r.location, f"model {r.name} loads {url} from {bucket.uri}, which keeps no "
                "versions", evidence=url)


# Checks that are one condition on one resource: (rule, kind, condition, message).
for _rule, _kind, _bad, _message in [
    (S3_NO_ENCRYPTION, "s3_bucket", lambda r: r.get("encryption") is False,
     "{uri} has no default encryption"),
    (S3_NO_ACCESS_LOGGING, "s3_bucket", lambda r: r.get("logging") is False,
     "{uri} has no server access logging"),
    (SM_NOTEBOOK_INTERNET, "sm_notebook", lambda r: r.get("internet") != "Disabled",
     "notebook instance {name} has direct internet access"),
    (SM_NOTEBOOK_ROOT, "sm_notebook", lambda r: r.get("root") != "Disabled",
     "notebook instance {name} gives users root access"),
    (SM_NOTEBOOK_NO_VPC, "sm_notebook", lambda r: not r.get("subnet"),
     "notebook instance {name} is not in a VPC subnet"),
    (SM_NOTEBOOK_NO_KMS, "sm_notebook", lambda r: not r.get("kms"),
     "notebook instance {name} has no KMS key"),
    (SM_TRAINING_NO_ISOLATION, "sm_training_job", lambda r: not r.get("isolation"),
     "training job {name} ran without network isolation"),
    (SM_TRAINING_NO_ICE, "sm_training_job", lambda r: not r.get("encryption"),
     "training job {name} ran without inter-container traffic encryption"),
    (SM_ENDPOINT_NO_KMS, "sm_endpoint", lambda r: not r.get("kms"),
     "endpoint {name} (configuration {config}) has no KMS key"),
    (SM_ENDPOINT_NO_CAPTURE, "sm_endpoint", lambda r: not r.get("capture"),
     "endpoint {name} captures no requests or responses"),
    (BEDROCK_NO_LOGGING, "bedrock_region", lambda r: not r.get("logging"),
     "Bedrock model invocation logging is off in {name}"),
    (BEDROCK_CUSTOM_NO_CMK, "bedrock_custom_model", lambda r: not r.get("kms"),
     "custom model {name} is encrypted with an AWS-owned key"),
]:
    flag(_rule, _kind, _bad, _message)
