"""What Terraform and CloudFormation declare, in one neutral form, and the checks over it.

Each language module turns its files into :class:`Decl` values (a bucket, a policy, a
notebook instance...) whose ``values`` use the same keys whatever the language, with the line
each came from. The checks below run once over those declarations, so that one concept (a
public bucket ACL) is one rule, judged the same way in Terraform and CloudFormation.

Checks register themselves in :data:`CHECKS` with the declaration kind they read; each
yields ``(decl, key, message, severity-or-None)`` and :func:`evaluate` turns those into
findings at the file and line of ``key``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from mlward._internal.cloud import awspolicy
from mlward.findings import Finding, Location, Severity
from mlward.rules import (
    IAC_AZ_ACCOUNT_PUBLIC,
    IAC_AZ_CONTAINER_PUBLIC,
    IAC_AZ_NO_SAS_POLICY,
    IAC_AZ_NO_SOFT_DELETE,
    IAC_AZ_SHARED_KEY,
    IAC_AZ_WEAK_TRANSPORT,
    IAC_BEDROCK_NO_CMK,
    IAC_BPA_DISABLED,
    IAC_BUCKET_CORS_ANY,
    IAC_BUCKET_NO_ENCRYPTION,
    IAC_BUCKET_NO_LOGGING,
    IAC_BUCKET_NO_VERSIONING,
    IAC_BUCKET_POLICY_PUBLIC,
    IAC_BUCKET_PUBLIC_ACL,
    IAC_BUCKET_WEBSITE,
    IAC_ENDPOINT_NO_CAPTURE,
    IAC_ENDPOINT_NO_KMS,
    IAC_GCS_NO_LOGGING,
    IAC_GCS_NO_PAP,
    IAC_GCS_NO_UBLA,
    IAC_GCS_NO_VERSIONING,
    IAC_GCS_PUBLIC_MEMBER,
    IAC_IAM_PASSROLE_ANY,
    IAC_IAM_SERVICE_WILDCARD,
    IAC_MODEL_FROM_PUBLIC_BUCKET,
    IAC_MODEL_NO_ISOLATION,
    IAC_NOTEBOOK_IMDSV1,
    IAC_NOTEBOOK_INTERNET,
    IAC_NOTEBOOK_NO_KMS,
    IAC_NOTEBOOK_NO_VPC,
    IAC_NOTEBOOK_ROOT,
    IAC_ROLE_ANY_PRINCIPAL,
    IAC_WORKBENCH_NO_CMEK,
    IAC_WORKBENCH_PUBLIC_IP,
    Rule,
)

PUBLIC_ACLS = frozenset({"public-read", "public-read-write", "authenticated-read",
                         "publicread", "publicreadwrite", "authenticatedread"})
PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
BPA_KEYS = ("block_public_acls", "ignore_public_acls", "block_public_policy",
            "restrict_public_buckets")
ML_WORDS = re.compile(r"model|dataset|artifact|checkpoint|mlflow|sagemaker|training|"
                      r"feature-store|weights|ml-|-ml\b|_ml\b|\bml_|vertex|bedrock", re.I)


class Decl(NamedTuple):
    """One declared resource in neutral form.

    ``kind`` is neutral (``bucket``, ``gcs_bucket``, ``az_container``, ``az_account``,
    ``iam_policy``, ``trust_policy``, ``notebook``, ``endpoint_config``, ``sagemaker_model``,
    ``bedrock_model``, ``workbench``, ``account_bpa``); ``ref`` names it as its language does
    (``aws_s3_bucket.models``, a CloudFormation logical id); ``where`` is the file and line
    that declare it; ``lines`` gives where each neutral key was declared (in Terraform a
    bucket's policy or versioning may sit in another resource, even in another file).
    """

    kind: str
    ref: str
    where: Location
    values: Mapping[str, Any]
    lines: Mapping[str, Location]

    def at(self, key: str) -> Location:
        return self.lines.get(key, self.where)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


Hit = tuple[Decl, str, str, Severity | None]
"""(declaration, the key whose line to point at, message, severity override)."""


class Check(NamedTuple):
    rule: Rule
    kind: str
    fn: Callable[[Decl, Mapping[str, list[Decl]]], Iterator[Hit]]


CHECKS: list[Check] = []


def check(rule: Rule, kind: str) -> Callable[[Callable[[Decl, Mapping[str, list[Decl]]],
                                                       Iterator[Hit]]],
                                             Callable[[Decl, Mapping[str, list[Decl]]],
                                                      Iterator[Hit]]]:
    """Register a check of ``rule`` over declarations of ``kind``."""
    def register(fn: Callable[[Decl, Mapping[str, list[Decl]]], Iterator[Hit]]
                 ) -> Callable[[Decl, Mapping[str, list[Decl]]], Iterator[Hit]]:
        CHECKS.append(Check(rule, kind, fn))
        return fn
    return register


def evaluate(decls: Iterable[Decl]) -> list[Finding]:
    """Every check over every declaration of its kind."""
    by_kind: dict[str, list[Decl]] = {}
    for d in decls:
        by_kind.setdefault(d.kind, []).append(d)
    findings = []
    for c in CHECKS:
        for decl in by_kind.get(c.kind, ()):
            for d, key, message, severity in c.fn(decl, by_kind):
                findings.append(c.rule.finding(d.at(key), message, evidence=f"{d.ref}",
                                               severity=severity,
                                               details={"resource": d.ref}))
    return findings


# --- buckets (S3) ---------------------------------------------------------------------------

def _name(d: Decl) -> str:
    return str(d.get("name") or d.ref)


def is_ml_bucket(d: Decl, everything: Mapping[str, list[Decl]]) -> bool:
    """Looks like ML storage: a model, training job or endpoint refers to it, or its name or
    tags say so."""
    if d.get("ml"):
        return True
    words = " ".join([d.ref, str(d.get("name") or ""),
                      *(f"{k} {v}" for k, v in (d.get("tags") or {}).items())])
    if ML_WORDS.search(words):
        return True
    return any(_refers_to(m, d) for m in everything.get("sagemaker_model", ()))


def _refers_to(model: Decl, bucket: Decl) -> bool:
    names = {bucket.ref, str(bucket.get("name") or "")} - {""}
    return any(b in names for b in model.get("buckets", ()))


def _bpa(d: Decl, setting: str) -> bool:
    return bool((d.get("bpa") or {}).get(setting))


def public_reasons(d: Decl) -> list[str]:
    """Why a declared storage resource is readable by anyone (empty when it is not)."""
    out = []
    if d.kind == "bucket":
        acl = str(d.get("acl") or "").lower()
        if acl in PUBLIC_ACLS and not _bpa(d, "ignore_public_acls"):
            out.append(f"ACL {d.get('acl')}")
        if not _bpa(d, "restrict_public_buckets") and any(
                awspolicy.is_public(s) and awspolicy.grants_read(s) for s in d.get("policy", ())):
            out.append("a policy that lets anyone read")
    elif d.kind == "gcs_bucket":
        out += [f"member {m}" for m in d.get("public_members", ())]
    elif d.kind == "az_container" and str(d.get("access") or "").lower() in ("blob", "container"):
        out.append(f"access type {d.get('access')}")
    return out


@check(IAC_BUCKET_PUBLIC_ACL, "bucket")
def _public_acl(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    acl = str(d.get("acl") or "")
    if acl.lower() in PUBLIC_ACLS:
        ignored = _bpa(d, "ignore_public_acls")
        yield (d, "acl", f"bucket {_name(d)} declared with ACL {acl}"
               + (" (ignored while ignore_public_acls is on)" if ignored else ""),
               Severity.MEDIUM if ignored else None)


@check(IAC_BUCKET_POLICY_PUBLIC, "bucket")
def _public_policy(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    for s in d.get("policy", ()):
        if awspolicy.is_public(s):
            actions = ", ".join(s.actions[:4]) or "?"
            yield (d, "policy", f"bucket {_name(d)} policy allows any principal ({actions}) "
                   "with no restricting condition", None)
            return


@check(IAC_BPA_DISABLED, "bucket")
def _bpa_off(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    bpa = d.get("bpa")
    if bpa is not None:
        off = [k for k in BPA_KEYS if not bpa.get(k)]
        if off:
            yield (d, "bpa", f"bucket {_name(d)}: public access block leaves "
                   f"{', '.join(off)} off", None)


@check(IAC_BPA_DISABLED, "account_bpa")
def _account_bpa_off(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    off = [k for k in BPA_KEYS if not (d.get("bpa") or {}).get(k)]
    if off:
        yield (d, "bpa", f"account public access block leaves {', '.join(off)} off", None)


@check(IAC_BUCKET_NO_ENCRYPTION, "bucket")
def _no_encryption(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("encryption"):
        yield (d, "name", f"bucket {_name(d)} declares no default encryption", None)


@check(IAC_BUCKET_NO_VERSIONING, "bucket")
def _no_versioning(d: Decl, everything: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("versioning"):
        ml = is_ml_bucket(d, everything)
        yield (d, "versioning", f"{'ML ' if ml else ''}bucket {_name(d)} declares no "
               "versioning", Severity.MEDIUM if ml else None)


@check(IAC_BUCKET_NO_LOGGING, "bucket")
def _no_logging(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("logging"):
        yield (d, "name", f"bucket {_name(d)} declares no access logging", None)


@check(IAC_BUCKET_CORS_ANY, "bucket")
def _cors_any(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if "*" in d.get("cors_origins", ()):
        yield (d, "cors_origins", f"bucket {_name(d)} allows CORS from any origin", None)


@check(IAC_BUCKET_WEBSITE, "bucket")
def _website(d: Decl, everything: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if d.get("website") and is_ml_bucket(d, everything):
        yield (d, "website", f"ML bucket {_name(d)} is declared as a static website", None)


# --- IAM ----------------------------------------------------------------------------------

@check(IAC_IAM_SERVICE_WILDCARD, "iam_policy")
def _service_wildcard(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    found = sorted({a for s in d.get("statements", ()) for a in awspolicy.wildcard_services(s)})
    if found:
        yield (d, "statements", f"{d.ref} allows {', '.join(found)} on every resource", None)


@check(IAC_IAM_PASSROLE_ANY, "iam_policy")
def _passrole(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if any(awspolicy.passrole_any(s) for s in d.get("statements", ())):
        yield (d, "statements", f"{d.ref} allows iam:PassRole on every role", None)


@check(IAC_ROLE_ANY_PRINCIPAL, "trust_policy")
def _any_principal(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if any(awspolicy.is_public(s) for s in d.get("statements", ())):
        yield (d, "statements", f"role {d.ref} can be assumed by any principal", None)


# --- SageMaker and Bedrock ------------------------------------------------------------------

@check(IAC_NOTEBOOK_INTERNET, "notebook")
def _nb_internet(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    value = str(d.get("internet") or "Enabled")
    if value.lower() != "disabled":
        yield (d, "internet", f"notebook {d.ref} has direct internet access"
               + ("" if "internet" in d.values else " (the default)"), None)


@check(IAC_NOTEBOOK_ROOT, "notebook")
def _nb_root(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    value = str(d.get("root") or "Enabled")
    if value.lower() != "disabled":
        yield (d, "root", f"notebook {d.ref} gives users root access"
               + ("" if "root" in d.values else " (the default)"), None)


@check(IAC_NOTEBOOK_NO_VPC, "notebook")
def _nb_vpc(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("subnet"):
        yield (d, "subnet", f"notebook {d.ref} declares no subnet", None)


@check(IAC_NOTEBOOK_NO_KMS, "notebook")
def _nb_kms(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("kms"):
        yield (d, "kms", f"notebook {d.ref} declares no KMS key", None)


@check(IAC_NOTEBOOK_IMDSV1, "notebook")
def _nb_imds(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if str(d.get("imds") or "1") != "2":
        yield (d, "imds", f"notebook {d.ref} allows IMDSv1", None)


@check(IAC_ENDPOINT_NO_KMS, "endpoint_config")
def _ep_kms(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("kms"):
        yield (d, "kms", f"endpoint configuration {d.ref} declares no KMS key", None)


@check(IAC_ENDPOINT_NO_CAPTURE, "endpoint_config")
def _ep_capture(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("capture"):
        yield (d, "capture", f"endpoint configuration {d.ref} declares no data capture", None)


@check(IAC_MODEL_NO_ISOLATION, "sagemaker_model")
def _model_isolation(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("isolation"):
        yield (d, "isolation", f"SageMaker model {d.ref} runs without network isolation", None)


@check(IAC_MODEL_FROM_PUBLIC_BUCKET, "sagemaker_model")
def _model_public(d: Decl, everything: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    storage = [*everything.get("bucket", ()), *everything.get("gcs_bucket", ()),
               *everything.get("az_container", ())]
    for b in storage:
        reasons = public_reasons(b)
        if reasons and _refers_to(d, b):
            yield (d, "buckets", f"{d.ref} loads its model from {_name(b)}, which "
                   f"{b.ref} makes public ({'; '.join(reasons)})", None)


@check(IAC_BEDROCK_NO_CMK, "bedrock_model")
def _bedrock_kms(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("kms"):
        yield (d, "kms", f"Bedrock custom model {d.ref} declares no customer-managed key", None)


# --- GCS and Vertex AI ----------------------------------------------------------------------

@check(IAC_GCS_PUBLIC_MEMBER, "gcs_bucket")
def _gcs_public(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    members = sorted(set(d.get("public_members", ())))
    if members:
        yield (d, "public_members", f"bucket {_name(d)} grants {', '.join(members)}", None)


@check(IAC_GCS_NO_UBLA, "gcs_bucket")
def _gcs_ubla(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("ubla"):
        yield (d, "ubla", f"bucket {_name(d)} keeps fine-grained (ACL) access", None)


@check(IAC_GCS_NO_PAP, "gcs_bucket")
def _gcs_pap(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if str(d.get("pap") or "").lower() != "enforced":
        yield (d, "pap", f"bucket {_name(d)} does not enforce public access prevention", None)


@check(IAC_GCS_NO_VERSIONING, "gcs_bucket")
def _gcs_versioning(d: Decl, everything: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("versioning") and not d.get("retention") and is_ml_bucket(d, everything):
        yield (d, "name", f"ML bucket {_name(d)} declares neither versioning nor retention",
               None)


@check(IAC_GCS_NO_LOGGING, "gcs_bucket")
def _gcs_logging(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("logging"):
        yield (d, "name", f"bucket {_name(d)} declares no access logging", None)


@check(IAC_WORKBENCH_NO_CMEK, "workbench")
def _workbench_cmek(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("cmek"):
        yield (d, "cmek", f"Workbench instance {d.ref} disks use Google-managed keys", None)


@check(IAC_WORKBENCH_PUBLIC_IP, "workbench")
def _workbench(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("no_public_ip"):
        yield (d, "no_public_ip", f"Workbench instance {d.ref} gets a public IP", None)


# --- Azure --------------------------------------------------------------------------------

@check(IAC_AZ_CONTAINER_PUBLIC, "az_container")
def _az_container(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if public_reasons(d):
        yield (d, "access", f"container {_name(d)} allows anonymous access "
               f"({d.get('access')})", None)


@check(IAC_AZ_ACCOUNT_PUBLIC, "az_account")
def _az_public(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if d.get("public", True):
        yield (d, "public", f"storage account {_name(d)} allows blob public access"
               + ("" if "public" in d.values else " (azurerm's default)"), None)


@check(IAC_AZ_SHARED_KEY, "az_account")
def _az_shared_key(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if d.get("shared_key", True):
        yield (d, "shared_key", f"storage account {_name(d)} allows shared key access"
               + ("" if "shared_key" in d.values else " (the default)"), None)


@check(IAC_AZ_WEAK_TRANSPORT, "az_account")
def _az_tls(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    tls = str(d.get("min_tls") or "")
    if tls.upper() in ("TLS1_0", "TLS1_1"):
        yield (d, "min_tls", f"storage account {_name(d)} accepts {tls}", None)
    if d.get("https_only", True) is False:
        yield (d, "https_only", f"storage account {_name(d)} accepts plain HTTP", None)


@check(IAC_AZ_NO_SOFT_DELETE, "az_account")
def _az_soft_delete(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("soft_delete"):
        yield (d, "name", f"storage account {_name(d)} keeps no deleted blobs", None)


@check(IAC_AZ_NO_SAS_POLICY, "az_account")
def _az_sas_policy(d: Decl, _: Mapping[str, list[Decl]]) -> Iterator[Hit]:
    if not d.get("sas_policy"):
        yield (d, "name", f"storage account {_name(d)} has no SAS expiration policy", None)
