"""CloudFormation templates (YAML or JSON, short-form intrinsic functions) to neutral
declarations.

A template is self-contained: a bucket policy names its bucket with ``!Ref``, a SageMaker
model names its artifact bucket with ``!Ref``, ``!Sub "s3://${Bucket}/..."`` or ``!Join``;
those references are resolved to the logical ids they name. Functions are never evaluated:
a value built by one is unknown, never a wildcard.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlward._internal.cloud import awspolicy
from mlward._internal.cloud.iac.model import Decl
from mlward._internal.cloud.iac.yamlines import LineDict
from mlward.findings import Location

_BPA = {"BlockPublicAcls": "block_public_acls", "IgnorePublicAcls": "ignore_public_acls",
        "BlockPublicPolicy": "block_public_policy",
        "RestrictPublicBuckets": "restrict_public_buckets"}


def is_template(doc: object) -> bool:
    """A CloudFormation template: a version marker, or resources typed ``AWS::``."""
    if not isinstance(doc, Mapping):
        return False
    if "AWSTemplateFormatVersion" in doc:
        return True
    resources = doc.get("Resources")
    return isinstance(resources, Mapping) and any(
        isinstance(r, Mapping) and str(r.get("Type", "")).startswith("AWS::")
        for r in resources.values())


def _line(mapping: object, key: str | None = None) -> int | None:
    if isinstance(mapping, LineDict):
        return mapping.line_of(key) if key else mapping.line
    return None


def _refs(value: object) -> set[str]:
    """Logical ids a value refers to (``Ref``, ``Fn::GetAtt``, ``${Name}`` in ``Fn::Sub``),
    and bucket names in ``s3://`` URLs."""
    out: set[str] = set()
    stack = [value]
    budget = 10_000
    while stack and budget > 0:
        budget -= 1
        item = stack.pop()
        if isinstance(item, Mapping):
            ref, att = item.get("Ref"), item.get("Fn::GetAtt")
            if isinstance(ref, str):
                out.add(ref)
            if isinstance(att, list) and att and isinstance(att[0], str):
                out.add(att[0])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            out |= set(re.findall(r"\$\{([\w]+)[}.]", item))
            out |= set(re.findall(r"(?:s3|gs)://([a-z0-9][a-z0-9.\-_]{1,220})", item))
    return out


def _on(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "enabled"))


def declarations(template: Mapping[str, Any], uri: str) -> list[Decl]:
    """Neutral declarations of one template."""
    resources = template.get("Resources")
    if not isinstance(resources, Mapping):
        return []
    decls: dict[str, Decl] = {}
    configuring = []
    for logical_id, res in list(resources.items())[:10_000]:
        if not isinstance(res, Mapping):
            continue
        kind = str(res.get("Type", ""))
        props = res.get("Properties") if isinstance(res.get("Properties"), Mapping) else {}
        assert isinstance(props, Mapping)
        where = Location(uri, line=_line(resources, str(logical_id)))

        def at(key: str, props: Mapping[str, Any] = props, where: Location = where) -> Location:
            line = _line(props, key)
            return where if line is None else where.at(line=line)

        handler = _HANDLERS.get(kind)
        if handler is not None:
            for decl in handler(str(logical_id), props, where, at):
                decls[decl.ref] = decl
        elif kind == "AWS::S3::BucketPolicy":
            configuring.append((props, at))
    for props, at in configuring:  # bucket policies: added to the bucket they name
        for target in _refs(props.get("Bucket")):
            bucket = decls.get(target) or next(
                (d for d in decls.values() if d.kind == "bucket" and d.get("name") == target),
                None)
            if bucket is not None and bucket.kind == "bucket":
                values = {**bucket.values,
                          "policy": list(awspolicy.statements(props.get("PolicyDocument")))}
                decls[bucket.ref] = bucket._replace(
                    values=values, lines={**bucket.lines, "policy": at("PolicyDocument")})
    return list(decls.values())


At = Any  # (key) -> Location


def _bucket(ref: str, p: Mapping[str, Any], where: Location, at: At) -> list[Decl]:
    values: dict[str, Any] = {"name": p.get("BucketName") if isinstance(p.get("BucketName"),
                                                                         str) else None}
    lines = {"name": where}
    tags = p.get("Tags")
    values["tags"] = {str(t.get("Key")): str(t.get("Value")) for t in tags
                      if isinstance(t, Mapping)} if isinstance(tags, list) else {}
    if isinstance(p.get("AccessControl"), str):
        values["acl"], lines["acl"] = p["AccessControl"], at("AccessControl")
    bpa = p.get("PublicAccessBlockConfiguration")
    if isinstance(bpa, Mapping):
        values["bpa"] = {neutral: _on(bpa.get(key)) for key, neutral in _BPA.items()}
        lines["bpa"] = at("PublicAccessBlockConfiguration")
    values["encryption"] = "BucketEncryption" in p
    versioning = p.get("VersioningConfiguration")
    values["versioning"] = isinstance(versioning, Mapping) and \
        str(versioning.get("Status")).lower() == "enabled"
    if "VersioningConfiguration" in p:
        lines["versioning"] = at("VersioningConfiguration")
    values["logging"] = "LoggingConfiguration" in p
    if "WebsiteConfiguration" in p:
        values["website"], lines["website"] = True, at("WebsiteConfiguration")
    cors = p.get("CorsConfiguration")
    rules = cors.get("CorsRules") if isinstance(cors, Mapping) else None
    if isinstance(rules, list):
        values["cors_origins"] = [o for r in rules if isinstance(r, Mapping)
                                  for o in r.get("AllowedOrigins") or [] if isinstance(o, str)]
        lines["cors_origins"] = at("CorsConfiguration")
    return [Decl("bucket", ref, where, values, lines)]


def _iam_policy(ref: str, p: Mapping[str, Any], where: Location, at: At) -> list[Decl]:
    return [Decl("iam_policy", ref, where,
                 {"statements": list(awspolicy.statements(p.get("PolicyDocument")))},
                 {"statements": at("PolicyDocument")})]


def _principal(ref: str, p: Mapping[str, Any], where: Location, at: At) -> list[Decl]:
    """Roles (trust policy and inline policies), users and groups (inline policies)."""
    out = []
    if "AssumeRolePolicyDocument" in p:
        out.append(Decl("trust_policy", ref, where,
                        {"statements": list(awspolicy.statements(
                            p.get("AssumeRolePolicyDocument")))},
                        {"statements": at("AssumeRolePolicyDocument")}))
    inline = p.get("Policies")
    if isinstance(inline, list) and inline:
        statements = [s for item in inline if isinstance(item, Mapping)
                      for s in awspolicy.statements(item.get("PolicyDocument"))]
        out.append(Decl("iam_policy", f"{ref}.Policies", where, {"statements": statements},
                        {"statements": at("Policies")}))
    return out


def _notebook(ref: str, p: Mapping[str, Any], where: Location, at: At) -> list[Decl]:
    values: dict[str, Any] = {"subnet": bool(p.get("SubnetId")), "kms": bool(p.get("KmsKeyId"))}
    imds = p.get("InstanceMetadataServiceConfiguration")
    values["imds"] = str((imds if isinstance(imds, Mapping) else {}).get(
        "MinimumInstanceMetadataServiceVersion") or "1")
    lines = {"imds": at("InstanceMetadataServiceConfiguration")} \
        if "InstanceMetadataServiceConfiguration" in p else {}
    for key, prop in (("internet", "DirectInternetAccess"), ("root", "RootAccess")):
        if prop in p:
            values[key], lines[key] = p[prop], at(prop)
    return [Decl("notebook", ref, where, values, lines)]


def _endpoint_config(ref: str, p: Mapping[str, Any], where: Location, at: At) -> list[Decl]:
    capture = p.get("DataCaptureConfig")
    return [Decl("endpoint_config", ref, where,
                 {"kms": bool(p.get("KmsKeyId")),
                  "capture": isinstance(capture, Mapping)
                  and _on(capture.get("EnableCapture", True))}, {})]


def _model(ref: str, p: Mapping[str, Any], where: Location, at: At) -> list[Decl]:
    containers = [p.get("PrimaryContainer"), p.get("Containers")]
    lines = {"isolation": at("EnableNetworkIsolation")} if "EnableNetworkIsolation" in p else {}
    key = "PrimaryContainer" if "PrimaryContainer" in p else "Containers"
    lines["buckets"] = at(key)
    return [Decl("sagemaker_model", ref, where,
                 {"isolation": _on(p.get("EnableNetworkIsolation")),
                  "buckets": sorted(_refs(containers))}, lines)]


_HANDLERS = {
    "AWS::S3::Bucket": _bucket,
    "AWS::IAM::Policy": _iam_policy,
    "AWS::IAM::ManagedPolicy": _iam_policy,
    "AWS::IAM::Role": _principal,
    "AWS::IAM::User": _principal,
    "AWS::IAM::Group": _principal,
    "AWS::SageMaker::NotebookInstance": _notebook,
    "AWS::SageMaker::EndpointConfig": _endpoint_config,
    "AWS::SageMaker::Model": _model,
}
