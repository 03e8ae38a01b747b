"""AWS policy documents (bucket policies, IAM policies, role trust policies), read as data.

One reading serves the live checks (documents fetched from the account) and the IaC checks
(documents declared in Terraform or CloudFormation), so that a statement is judged the same
way before and after deployment. Values that are not literal (a Terraform reference, a
CloudFormation ``!Ref``) are never taken for a wildcard.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

ML_SERVICES = ("s3", "sagemaker", "bedrock")
# Condition keys that narrow who a "Principal: *" statement lets in. A statement with one
# of these is not public (Access Analyzer's reading, simplified to the key's presence).
RESTRICTING_KEYS = frozenset(k.lower() for k in (
    "aws:SourceVpce", "aws:SourceVpc", "aws:SourceIp", "aws:VpcSourceIp",
    "aws:PrincipalOrgID", "aws:PrincipalOrgPaths", "aws:PrincipalAccount", "aws:PrincipalArn",
    "aws:SourceArn", "aws:SourceAccount", "aws:SourceOrgID", "aws:SourceOrgPaths",
    "aws:userid", "aws:username", "aws:PrincipalServiceName", "sts:ExternalId",
    "s3:DataAccessPointAccount", "s3:DataAccessPointArn", "aws:CalledVia",
))
_ACCOUNT_ARN = re.compile(r"^arn:aws[\w-]*:(?:iam|sts)::(\d{12}):")


class Statement(NamedTuple):
    """One statement, normalised: lists everywhere, keys as AWS spells them."""

    effect: str
    principals: Mapping[str, tuple[str, ...]]
    """``{"AWS": (...), "Service": (...), "*": ("*",)}``; empty when the statement names none
    (an identity policy)."""
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Mapping[str, Any]
    not_action: bool = False
    sid: str = ""

    @property
    def allows(self) -> bool:
        return self.effect.lower() == "allow"


def parse_document(doc: object) -> dict[str, Any] | None:
    """A policy document as a dict, from a dict or a JSON string (URL-encoded JSON, as IAM
    returns it, is decoded too); None when it is neither."""
    if isinstance(doc, Mapping):
        return dict(doc)
    if isinstance(doc, str):
        text = doc.strip()
        if text.startswith(("%7B", "%7b")):
            from urllib.parse import unquote

            text = unquote(text)
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    return None


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def statements(doc: object) -> Iterator[Statement]:
    """The statements of a policy document (malformed parts are skipped)."""
    parsed = parse_document(doc)
    if parsed is None:
        return
    raw = parsed.get("Statement")
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, Mapping) else []
    for item in items[:1000]:
        if not isinstance(item, Mapping):
            continue
        principal = item.get("Principal")
        principals: dict[str, tuple[str, ...]] = {}
        if principal == "*":
            principals["*"] = ("*",)
        elif isinstance(principal, Mapping):
            for key, value in principal.items():
                principals[str(key)] = _strings(value)
        condition = item.get("Condition")
        not_action = "NotAction" in item
        yield Statement(
            effect=str(item.get("Effect", "")),
            principals=principals,
            actions=_strings(item.get("NotAction" if not_action else "Action")),
            resources=_strings(item.get("Resource", item.get("NotResource"))),
            condition=condition if isinstance(condition, Mapping) else {},
            not_action=not_action,
            sid=str(item.get("Sid", "")),
        )


def condition_keys(stmt: Statement) -> set[str]:
    """Condition keys of a statement, lower case (``aws:sourcevpce``)."""
    keys: set[str] = set()
    for block in stmt.condition.values():
        if isinstance(block, Mapping):
            keys.update(str(k).lower() for k in block)
    return keys


def public_principal(stmt: Statement) -> bool:
    """``Principal: "*"`` or ``{"AWS": "*"}`` (anyone, any account)."""
    return "*" in stmt.principals or "*" in stmt.principals.get("AWS", ())


def is_public(stmt: Statement) -> bool:
    """An Allow to any principal with no condition that narrows who matches."""
    return (stmt.allows and public_principal(stmt)
            and not (condition_keys(stmt) & RESTRICTING_KEYS))


def grants_read(stmt: Statement) -> bool:
    """Whether the statement's actions include reading objects (s3:GetObject)."""
    return any(a in ("*", "s3:*", "s3:Get*", "s3:GetObject", "s3:GetObject*")
               or a.lower() == "s3:getobject" for a in stmt.actions) or stmt.not_action


def grants_write(stmt: Statement) -> bool:
    return any(a in ("*", "s3:*", "s3:Put*", "s3:PutObject") or a.lower() == "s3:putobject"
               for a in stmt.actions) or stmt.not_action


def accounts(stmt: Statement) -> set[str]:
    """The 12-digit AWS accounts an Allow statement names as principals."""
    out = set()
    for value in stmt.principals.get("AWS", ()):
        if re.fullmatch(r"\d{12}", value):
            out.add(value)
        elif m := _ACCOUNT_ARN.match(value):
            out.add(m.group(1))
    return out


def wildcard_services(stmt: Statement) -> list[str]:
    """``s3:*``-style actions of ML services (or ``*``) granted on every resource."""
    if not stmt.allows or stmt.not_action or "*" not in stmt.resources:
        return []
    wanted = {f"{s}:*" for s in ML_SERVICES} | {"*"}
    return sorted({a for a in stmt.actions if a.lower() in wanted})


def passrole_any(stmt: Statement) -> bool:
    """``iam:PassRole`` (or ``iam:*``/``*``) on every resource, with no PassedToService
    condition."""
    if not stmt.allows or stmt.not_action or "*" not in stmt.resources:
        return False
    if "iam:passedtoservice" in condition_keys(stmt):
        return False
    return any(a.lower() in ("iam:passrole", "iam:*", "*", "iam:pass*") for a in stmt.actions)
