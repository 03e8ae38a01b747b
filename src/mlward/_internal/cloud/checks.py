"""The live checks: what the providers collected, and the registry of checks over it.

Each provider module (:mod:`~mlward._internal.cloud.aws`, ``gcp``, ``azure``) turns API
answers into :class:`Resource` values (a bucket, a role, a notebook instance) with neutral
keys where the concept is shared (``public``, ``assets``, ``versioning`` for every kind of
bucket), and registers its own checks with :func:`check`. The checks that only make sense
with the project's links (a public bucket holding a model that something uses, a
referenced bucket that does not exist) are here, and run the same way for every provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from mlward._internal.cloud.content import Content
from mlward._internal.cloud.links import Links, Reference
from mlward.findings import Fact, Finding, Location, Severity, Skipped
from mlward.rules import (
    OBJECT_PUBLIC_ACL,
    PUBLIC_ML_ASSET,
    PUBLIC_ML_ASSET_IN_USE,
    REFERENCED_BUCKET_MISSING,
    SCANNER_CRASH,
    Rule,
)

BUCKET_KINDS = ("s3_bucket", "gcs_bucket", "az_container")


class Asset(NamedTuple):
    """An object recognised as a model or dataset by its first bytes."""

    key: str
    content: Content
    public_acl: bool = False
    """The object's own ACL lets anyone read it (S3 object ACLs, GCS fine-grained ACLs)."""


class Resource(NamedTuple):
    """Something a provider reported: ``kind`` (``s3_bucket``, ``iam_role``,
    ``sm_notebook``, ...), its location URI (``s3://name``, an ARN), a display name, and
    what was read about it."""

    kind: str
    uri: str
    name: str
    data: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    @property
    def location(self) -> Location:
        return Location(self.uri)


class World:
    """Everything one run collected, as the checks see it."""

    def __init__(self, resources: Iterable[Resource], links: Links | None = None, *,
                 account: str | None = None, trusted: Iterable[str] = (),
                 references: Iterable[Reference] = ()) -> None:
        self.resources = list(resources)
        self.by_kind: dict[str, list[Resource]] = {}
        for r in self.resources:
            self.by_kind.setdefault(r.kind, []).append(r)
        self.links = links
        self.account = account
        self.trusted = set(trusted)
        self.references = [*(links.references if links else ()), *references]

    def kind(self, kind: str) -> list[Resource]:
        return self.by_kind.get(kind, [])

    def refs(self, bucket: str) -> list[Reference]:
        """References into a bucket (``s3://name``, ``gs://name``, ``az://acct/container``)."""
        return [r for r in self.references if r.target.bucket == bucket]

    def bucket(self, uri: str) -> Resource | None:
        return next((r for k in BUCKET_KINDS for r in self.kind(k) if r.uri == uri), None)

    def is_ml(self, bucket: Resource) -> bool:
        """Holds models or datasets (by content), or something in the project or account
        points at it."""
        return bool(bucket.get("assets")) or bool(self.refs(bucket.uri))


Fn = Callable[[Resource, World], Iterator[Finding]]


class Check(NamedTuple):
    rule: Rule
    kind: str
    fn: Fn


CHECKS: list[Check] = []


def check(rule: Rule, *kinds: str) -> Callable[[Fn], Fn]:
    """Register ``fn`` as the check of ``rule`` over resources of ``kinds``."""
    def register(fn: Fn) -> Fn:
        CHECKS.extend(Check(rule, kind, fn) for kind in kinds)
        return fn
    return register


def flag(rule: Rule, kind: str, bad: Callable[[Resource], bool], message: str) -> None:
    """Register the check of one condition on one resource: ``message`` (formatted with the
    resource's ``name``, ``uri`` and data) for each resource of ``kind`` where ``bad``
    holds."""
    def fn(resource: Resource, world: World) -> Iterator[Finding]:
        if bad(resource):
            yield rule.finding(resource.location, message.format(
                **{**resource.data, "name": resource.name, "uri": resource.uri}))
    check(rule, kind)(fn)


def evaluate(world: World) -> tuple[list[Finding], list[Skipped]]:
    """Every check over every resource of its kind. A check that fails on a resource makes
    that resource inconclusive (and an MW001 finding); the other checks still run."""
    findings: list[Finding] = []
    skipped: list[Skipped] = []
    for c in CHECKS:
        for resource in world.kind(c.kind):
            try:
                findings.extend(c.fn(resource, world))
            except Exception as exc:
                message = f"check {c.rule.id} failed: {type(exc).__name__}: {exc}"
                findings.append(SCANNER_CRASH.finding(resource.location, message))
                skipped.append(Skipped(resource.location, message, True))
    return findings, skipped


def bucket_fact(bucket: Resource, world: World) -> Fact:
    """What the dashboard and policies read about a bucket: exposure, settings, the ML
    assets found and what refers to it."""
    data = {k: v for k, v in bucket.data.items() if k not in ("assets", "policy")}
    if "policy" in bucket.data:
        data["policy"] = [{"sid": s.sid, "effect": s.effect, "principals": dict(s.principals),
                           "actions": list(s.actions), "resources": list(s.resources),
                           "condition": dict(s.condition)} for s in bucket.data["policy"]]
    data["provider"] = {"s3_bucket": "aws", "gcs_bucket": "gcp"}.get(bucket.kind, "azure")
    data["assets"] = [{"key": a.key, "kind": a.content.kind, "format": a.content.format,
                       "sensitive": list(a.content.sensitive), "public_acl": a.public_acl}
                      for a in bucket.get("assets", ())]
    data["references"] = [{"what": r.what, "source": r.source, "line": r.line,
                           "prefix": r.target.key} for r in world.refs(bucket.uri)]
    return Fact(bucket.location, "bucket", data)


# --- checks shared by every provider -------------------------------------------------------

def _asset_names(asset: Asset, refs: list[Reference], world: World) -> list[str]:
    names = [r.asset for r in refs if r.asset]
    dvc = world.links.asset_name(asset.key) if world.links else None
    return list(dict.fromkeys([*names, *([dvc] if dvc else [])]))


@check(PUBLIC_ML_ASSET_IN_USE, *BUCKET_KINDS)
def _public_asset_in_use(bucket: Resource, world: World) -> Iterator[Finding]:
    reasons = bucket.get("public") or []
    refs = world.refs(bucket.uri)
    for asset in bucket.get("assets", ()):
        public = reasons or (["the object's ACL lets anyone read it"] if asset.public_acl
                             else [])
        using = [r for r in refs if r.covers(asset.key)]
        if not public or not using:
            continue
        names = _asset_names(asset, using, world)
        what = asset.content.kind
        label = f"{what} '{names[0]}'" if names else f"{what} {asset.key}"
        writable = " and writable" if bucket.get("public_write") else ""
        yield PUBLIC_ML_ASSET_IN_USE.finding(
            Location(f"{bucket.uri}/{asset.key}"),
            f"{bucket.uri} is readable{writable} by anyone ({'; '.join(public)}) and holds the "
            f"{label} ({asset.content.format} at {bucket.uri}/{asset.key}), used by "
            + "; ".join(r.describe() for r in using[:5])
            + (f" and {len(using) - 5} more" if len(using) > 5 else ""),
            evidence=f"{bucket.uri}/{asset.key}",
            details={"bucket": bucket.uri, "asset": asset.key, "names": names,
                     "format": asset.content.format, "public": public,
                     "referenced_by": [{"what": r.what, "source": r.source, "line": r.line}
                                       for r in using]})


@check(PUBLIC_ML_ASSET, *BUCKET_KINDS)
def _public_assets(bucket: Resource, world: World) -> Iterator[Finding]:
    reasons = bucket.get("public") or []
    refs = world.refs(bucket.uri)
    loose = [a for a in bucket.get("assets", ()) if (reasons or a.public_acl)
             and not any(r.covers(a.key) for r in refs)]
    if not loose:
        return
    sensitive = sorted({k for a in loose for k in a.content.sensitive})
    shown = ", ".join(f"{a.key} ({a.content.format})" for a in loose[:5])
    more = f" and {len(loose) - 5} more" if len(loose) > 5 else ""
    why = "; ".join(reasons) or "object ACLs let anyone read them"
    yield PUBLIC_ML_ASSET.finding(
        bucket.location,
        f"{bucket.uri} is readable by anyone ({why}) and holds {len(loose)} model or data "
        f"file(s): {shown}{more}"
        + (f"; datasets hold personal data ({', '.join(sensitive)})" if sensitive else ""),
        evidence=bucket.uri, severity=Severity.CRITICAL if sensitive else None,
        details={"assets": [a.key for a in loose], "sensitive": sensitive})


@check(REFERENCED_BUCKET_MISSING, *BUCKET_KINDS)
def _missing(bucket: Resource, world: World) -> Iterator[Finding]:
    refs = world.refs(bucket.uri)
    if bucket.get("exists", True) or not refs:
        return
    yield REFERENCED_BUCKET_MISSING.finding(
        bucket.location, f"{bucket.uri} does not exist, yet "
        + "; ".join(r.describe() for r in refs[:5]) + " points to it",
        evidence=bucket.uri,
        details={"referenced_by": [{"what": r.what, "source": r.source} for r in refs]})


@check(OBJECT_PUBLIC_ACL, "s3_bucket", "gcs_bucket")
def _object_acls(bucket: Resource, world: World) -> Iterator[Finding]:
    for a in bucket.get("assets", ()):
        if a.public_acl:
            yield OBJECT_PUBLIC_ACL.finding(
                Location(f"{bucket.uri}/{a.key}"), f"{a.content.kind} {bucket.uri}/{a.key} "
                f"({a.content.format}) has an ACL that lets anyone read it",
                evidence=f"{bucket.uri}/{a.key}")
