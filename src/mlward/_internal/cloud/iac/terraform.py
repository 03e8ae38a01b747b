"""Terraform (HCL2, read with python-hcl2) to neutral declarations.

A Terraform module is a folder: a bucket may be declared in ``main.tf`` and its policy,
versioning or public access block in ``storage.tf``. :func:`declarations` therefore reads
every ``.tf`` file of the folder and joins the resources that configure a bucket
(``aws_s3_bucket_policy``, ``aws_s3_bucket_versioning``, ...) to the bucket they name, each
setting keeping the file and line it came from. Nothing is evaluated: a value that is not a
literal (``var.x``, ``local.y``, a function call) is left unknown, never guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from mlward._internal.cloud import awspolicy
from mlward._internal.cloud.iac.model import Decl
from mlward.findings import Location

_REF = re.compile(r"^\$\{([\w-]+\.[\w-]+)\.(?:id|bucket|name|arn)\}$")
_BUCKET_REF = re.compile(r"(aws_s3_bucket|google_storage_bucket|azurerm_storage_container)"
                         r"\.([\w-]+)")


class Block(NamedTuple):
    """A top-level block: ``resource "type" "name" { ... }``."""

    block: str
    labels: tuple[str, ...]
    values: dict[str, Any]
    lines: dict[str, int]
    line: int
    uri: str

    @property
    def ref(self) -> str:
        """``aws_s3_bucket.models`` (resources), ``data.aws_iam_policy_document.x`` (data)."""
        name = ".".join(self.labels)
        return name if self.block == "resource" else f"{self.block}.{name}"

    def loc(self, key: str | None = None) -> Location:
        return Location(self.uri, line=self.lines.get(key, self.line) if key else self.line)

    def first(self, key: str) -> dict[str, Any]:
        """The first nested block ``key`` (an empty dict when absent)."""
        value = self.values.get(key)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return value[0]
        return value if isinstance(value, dict) else {}


def parse(text: str, uri: str) -> list[Block]:
    """The top-level blocks of one file. Raises ValueError when it is not HCL2."""
    import hcl2
    from hcl2.rules.base import AttributeRule, BlockRule
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False,
                                   with_comments=False)
    try:
        tree = hcl2.parses(text, discard_comments=True)
    except Exception as exc:  # lark raises its own hierarchy of parse errors
        raise ValueError(f"not valid HCL2: {type(exc).__name__}") from None
    blocks = []
    for child in tree.body.children:
        if not isinstance(child, BlockRule):
            continue
        labels = tuple(str(label.serialize(options)) for label in child.labels)
        value: Any = child.serialize(options)
        for label in labels[1:]:
            value = value.get(label, {}) if isinstance(value, dict) else {}
        lines: dict[str, int] = {}
        for item in child.body.children:
            if isinstance(item, AttributeRule):
                name = str(item.children[0].serialize(options))
            elif isinstance(item, BlockRule):
                name = str(item.labels[0].serialize(options))
            else:
                continue
            lines.setdefault(name, item._meta.line)
        blocks.append(Block(labels[0], labels[1:], value if isinstance(value, dict) else {},
                            lines, child._meta.line, uri))
    return blocks


# --- values -----------------------------------------------------------------------------

def literal(value: object) -> str | None:
    """A string value that is a literal (not an interpolation or expression)."""
    if isinstance(value, str) and "${" not in value:
        return value
    return None


def _policy_document(value: object, data: Mapping[str, Block]) -> dict[str, Any] | None:
    """A policy from ``jsonencode({...})``, a heredoc or string of JSON, or a reference to a
    ``data "aws_iam_policy_document"``."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    m = re.fullmatch(r"\$\{(data\.aws_iam_policy_document\.[\w-]+)\.json\}", text)
    if m:
        block = data.get(m.group(1))
        return _policy_from_data(block) if block else None
    if text.startswith("${jsonencode(") and text.endswith(")}"):
        import hcl2
        from hcl2.utils import SerializationOptions

        try:
            parsed = hcl2.loads("x = " + text[len("${jsonencode("):-2], serialization_options=
                                SerializationOptions(strip_string_quotes=True,
                                                     explicit_blocks=False))
        except Exception:
            return None
        inner = parsed.get("x")
        return inner if isinstance(inner, dict) else None
    if text.startswith("<<"):
        text = "\n".join(text.splitlines()[1:-1])
    return awspolicy.parse_document(text)


def _policy_from_data(block: Block) -> dict[str, Any]:
    """An ``aws_iam_policy_document`` data block as the JSON policy it renders."""
    out = []
    for s in block.values.get("statement") or []:
        if not isinstance(s, dict):
            continue
        item: dict[str, Any] = {"Effect": s.get("effect", "Allow"),
                                "Action": s.get("actions", []),
                                "Resource": s.get("resources", ["*"] if "actions" in s else [])}
        if "not_actions" in s:
            item["NotAction"] = s["not_actions"]
        principals: dict[str, list[str]] = {}
        for p in s.get("principals") or []:
            if isinstance(p, dict):
                principals.setdefault(str(p.get("type")), []).extend(p.get("identifiers") or [])
        if principals:
            item["Principal"] = "*" if principals.get("*") == ["*"] else principals
        conditions: dict[str, dict[str, Any]] = {}
        for c in s.get("condition") or []:
            if isinstance(c, dict):
                conditions.setdefault(str(c.get("test")), {})[str(c.get("variable"))] = \
                    c.get("values")
        if conditions:
            item["Condition"] = conditions
        out.append(item)
    return {"Statement": out}


def _statements(value: object, data: Mapping[str, Block]) -> list[awspolicy.Statement]:
    return list(awspolicy.statements(_policy_document(value, data)))


def _target(block: Block, key: str = "bucket") -> str | None:
    """The bucket (or account, container...) a configuring resource names: a reference
    ``aws_s3_bucket.x`` or a literal name."""
    value = block.values.get(key)
    if isinstance(value, str):
        m = _REF.match(value)
        return m.group(1) if m else literal(value)
    return None


def _on(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "enabled"))


# --- declarations -----------------------------------------------------------------------

class _Module:
    """All blocks of one folder, joined into declarations."""

    def __init__(self, blocks: list[Block]) -> None:
        self.blocks = blocks
        self.data = {b.ref: b for b in blocks if b.block == "data"}
        self.decls: dict[str, tuple[str, dict[str, Any], dict[str, Location], Block]] = {}

    def declare(self, kind: str, block: Block) -> tuple[dict[str, Any], dict[str, Location]]:
        values: dict[str, Any] = {}
        lines: dict[str, Location] = {}
        self.decls[block.ref] = (kind, values, lines, block)
        return values, lines

    def find(self, target: str | None, kind: str) -> tuple[dict[str, Any],
                                                           dict[str, Location]] | None:
        """The declaration a configuring resource points to (by reference or by name)."""
        if target is None:
            return None
        found = self.decls.get(target)
        if found is None:
            found = next((d for d in self.decls.values()
                          if d[0] == kind and d[1].get("name") == target), None)
        return (found[1], found[2]) if found and found[0] == kind else None

    def result(self) -> list[Decl]:
        return [Decl(kind, block.ref, block.loc(), values, lines)
                for kind, values, lines, block in self.decls.values()]


def declarations(blocks: list[Block]) -> list[Decl]:
    """Neutral declarations of a module's blocks."""
    module = _Module(blocks)
    resources = [b for b in blocks if b.block == "resource" and b.labels]
    for b in resources:  # first the things others configure
        handler = _PRIMARY.get(b.labels[0])
        if handler:
            handler(module, b)
    for b in resources:
        handler = _CONFIGURING.get(b.labels[0])
        if handler:
            handler(module, b)
    return module.result()


def _s3_bucket(m: _Module, b: Block) -> None:
    v, lines = m.declare("bucket", b)
    v["name"] = literal(b.values.get("bucket"))
    v["tags"] = b.values.get("tags") if isinstance(b.values.get("tags"), dict) else {}
    lines["name"] = b.loc()
    # Settings inline in the bucket (AWS provider 3.x style).
    if "acl" in b.values:
        v["acl"], lines["acl"] = literal(b.values["acl"]), b.loc("acl")
    if "policy" in b.values:
        v["policy"], lines["policy"] = _statements(b.values["policy"], m.data), b.loc("policy")
    if "versioning" in b.values:
        v["versioning"] = _on(b.first("versioning").get("enabled"))
        lines["versioning"] = b.loc("versioning")
    v["encryption"] = "server_side_encryption_configuration" in b.values
    v["logging"] = "logging" in b.values
    if "website" in b.values:
        v["website"], lines["website"] = True, b.loc("website")
    origins = [o for rule in b.values.get("cors_rule") or [] if isinstance(rule, dict)
               for o in rule.get("allowed_origins") or []]
    if origins:
        v["cors_origins"], lines["cors_origins"] = origins, b.loc("cors_rule")


def _gcs_bucket(m: _Module, b: Block) -> None:
    v, lines = m.declare("gcs_bucket", b)
    v["name"] = literal(b.values.get("name"))
    v["tags"] = b.values.get("labels") if isinstance(b.values.get("labels"), dict) else {}
    v["public_members"] = []
    v["ubla"] = _on(b.values.get("uniform_bucket_level_access"))
    v["pap"] = literal(b.values.get("public_access_prevention"))
    v["versioning"] = _on(b.first("versioning").get("enabled"))
    v["retention"] = "retention_policy" in b.values
    v["logging"] = "logging" in b.values
    for key, attr in (("ubla", "uniform_bucket_level_access"), ("pap", "public_access_prevention"),
                      ("versioning", "versioning")):
        if attr in b.lines:
            lines[key] = b.loc(attr)


def _az_account(m: _Module, b: Block) -> None:
    v, lines = m.declare("az_account", b)
    v["name"] = literal(b.values.get("name"))
    v["soft_delete"] = "delete_retention_policy" in b.first("blob_properties")
    v["sas_policy"] = "sas_policy" in b.values
    for key, attrs in (("public", ("allow_nested_items_to_be_public", "allow_blob_public_access")),
                       ("shared_key", ("shared_access_key_enabled",)),
                       ("https_only", ("https_traffic_only_enabled", "enable_https_traffic_only")),
                       ("min_tls", ("min_tls_version",))):
        for attr in attrs:
            if attr in b.values:
                raw = b.values[attr]
                v[key] = raw if key == "min_tls" else _on(raw)
                lines[key] = b.loc(attr)


def _az_container(m: _Module, b: Block) -> None:
    v, lines = m.declare("az_container", b)
    v["name"] = literal(b.values.get("name"))
    v["access"] = literal(b.values.get("container_access_type")) or "private"
    if "container_access_type" in b.values:
        lines["access"] = b.loc("container_access_type")


def _notebook(m: _Module, b: Block) -> None:
    v, lines = m.declare("notebook", b)
    for key, attr in (("internet", "direct_internet_access"), ("root", "root_access")):
        if attr in b.values:
            v[key], lines[key] = b.values[attr], b.loc(attr)
    v["subnet"] = bool(b.values.get("subnet_id"))
    v["kms"] = bool(b.values.get("kms_key_id"))
    imds = b.first("instance_metadata_service_configuration")
    v["imds"] = str(imds.get("minimum_instance_metadata_service_version") or "1")
    if "instance_metadata_service_configuration" in b.lines:
        lines["imds"] = b.loc("instance_metadata_service_configuration")


def _endpoint_config(m: _Module, b: Block) -> None:
    v, _ = m.declare("endpoint_config", b)
    v["kms"] = bool(b.values.get("kms_key_arn"))
    v["capture"] = "data_capture_config" in b.values and _on(
        b.first("data_capture_config").get("enable_capture", True))


def _sagemaker_model(m: _Module, b: Block) -> None:
    v, lines = m.declare("sagemaker_model", b)
    v["isolation"] = _on(b.values.get("enable_network_isolation"))
    if "enable_network_isolation" in b.values:
        lines["isolation"] = b.loc("enable_network_isolation")
    text = json.dumps([b.values.get("primary_container"), b.values.get("container")])
    v["buckets"] = bucket_refs_in(text)
    for key in ("primary_container", "container"):
        if key in b.lines:
            lines["buckets"] = b.loc(key)
            break


def bucket_refs_in(text: str) -> list[str]:
    """Bucket references and ``s3://name``/``gs://name`` literals anywhere in ``text``."""
    refs = [f"{m.group(1)}.{m.group(2)}" for m in _BUCKET_REF.finditer(text)]
    refs += [m.group(1) for m in re.finditer(r"(?:s3|gs)://([a-z0-9][a-z0-9.\-_]{1,220})", text)]
    return sorted(set(refs))


def _bedrock_model(m: _Module, b: Block) -> None:
    v, _ = m.declare("bedrock_model", b)
    v["kms"] = bool(b.values.get("custom_model_kms_key_id"))


def _workbench(m: _Module, b: Block) -> None:
    v, lines = m.declare("workbench", b)
    if b.labels[0] == "google_notebooks_instance":
        v["no_public_ip"] = _on(b.values.get("no_public_ip"))
        v["cmek"] = str(b.values.get("disk_encryption")).upper() == "CMEK"
        if "no_public_ip" in b.lines:
            lines["no_public_ip"] = b.loc("no_public_ip")
    else:
        setup = b.first("gce_setup")
        v["no_public_ip"] = _on(setup.get("disable_public_ip"))
        disks = [d for key in ("boot_disk", "data_disks") for d in setup.get(key) or []
                 if isinstance(d, dict)]
        v["cmek"] = bool(disks) and all(str(d.get("disk_encryption")).upper() == "CMEK"
                                        for d in disks)
        if "gce_setup" in b.lines:
            lines["no_public_ip"] = lines["cmek"] = b.loc("gce_setup")


def _policy(m: _Module, b: Block) -> None:
    v, lines = m.declare("iam_policy", b)
    v["statements"] = _statements(b.values.get("policy"), m.data)
    lines["statements"] = b.loc("policy")


def _role(m: _Module, b: Block) -> None:
    v, lines = m.declare("trust_policy", b)
    v["statements"] = _statements(b.values.get("assume_role_policy"), m.data)
    lines["statements"] = b.loc("assume_role_policy")
    inline = [p for p in b.values.get("inline_policy") or [] if isinstance(p, dict)]
    if inline:
        statements = [s for p in inline for s in _statements(p.get("policy"), m.data)]
        m.decls[b.ref + "#inline"] = ("iam_policy", {"statements": statements},
                                      {"statements": b.loc("inline_policy")}, b)


def _account_bpa(m: _Module, b: Block) -> None:
    v, lines = m.declare("account_bpa", b)
    v["bpa"] = {k: _on(b.values.get(k)) for k in _BPA}
    lines["bpa"] = b.loc()


_BPA = ("block_public_acls", "ignore_public_acls", "block_public_policy",
        "restrict_public_buckets")

_PRIMARY = {
    "aws_s3_bucket": _s3_bucket,
    "google_storage_bucket": _gcs_bucket,
    "azurerm_storage_account": _az_account,
    "azurerm_storage_container": _az_container,
    "aws_sagemaker_notebook_instance": _notebook,
    "aws_sagemaker_endpoint_configuration": _endpoint_config,
    "aws_sagemaker_model": _sagemaker_model,
    "aws_bedrock_custom_model": _bedrock_model,
    "google_workbench_instance": _workbench,
    "google_notebooks_instance": _workbench,
    "aws_iam_policy": _policy,
    "aws_iam_role_policy": _policy,
    "aws_iam_user_policy": _policy,
    "aws_iam_group_policy": _policy,
    "aws_iam_role": _role,
    "aws_s3_account_public_access_block": _account_bpa,
}


# Resources that configure a bucket declared elsewhere: they set a key of its declaration.

def _bucket_setting(b: Block, m: _Module) -> tuple[dict[str, Any], dict[str, Location]] | None:
    return m.find(_target(b), "bucket")


def _bucket_acl(m: _Module, b: Block) -> None:
    found = _bucket_setting(b, m)
    if found is None:
        return
    v, lines = found
    acl = literal(b.values.get("acl"))
    grants = json.dumps(b.values.get("access_control_policy") or "")
    if acl is None and "acs.amazonaws.com/groups/global/AllUsers" in grants:
        acl = "public-read"
    if acl is not None:
        v["acl"], lines["acl"] = acl, b.loc("acl" if "acl" in b.values else None)


def _bucket_policy(m: _Module, b: Block) -> None:
    found = _bucket_setting(b, m)
    if found:
        found[0]["policy"] = _statements(b.values.get("policy"), m.data)
        found[1]["policy"] = b.loc("policy")


def _bucket_bpa(m: _Module, b: Block) -> None:
    found = _bucket_setting(b, m)
    if found:
        found[0]["bpa"] = {k: _on(b.values.get(k)) for k in _BPA}
        found[1]["bpa"] = b.loc()


def _bucket_versioning(m: _Module, b: Block) -> None:
    found = _bucket_setting(b, m)
    if found:
        status = b.first("versioning_configuration").get("status")
        found[0]["versioning"] = str(status).lower() == "enabled"
        found[1]["versioning"] = b.loc("versioning_configuration")


def _bucket_flag(key: str) -> Any:
    def handler(m: _Module, b: Block) -> None:
        found = _bucket_setting(b, m)
        if found:
            found[0][key] = True
            found[1][key] = b.loc()
    return handler


def _bucket_cors(m: _Module, b: Block) -> None:
    found = _bucket_setting(b, m)
    if found:
        found[0]["cors_origins"] = [o for rule in b.values.get("cors_rule") or []
                                    if isinstance(rule, dict)
                                    for o in rule.get("allowed_origins") or []]
        found[1]["cors_origins"] = b.loc("cors_rule")


def _gcs_member(m: _Module, b: Block) -> None:
    found = m.find(_target(b), "gcs_bucket")
    if found is None:
        return
    members = [b.values.get("member"), *list(b.values.get("members") or [])]
    members += [str(e).split(":", 1)[-1] for e in b.values.get("role_entity") or []]
    entity = b.values.get("entity")
    if entity:
        members.append(entity)
    for value in _policy_bindings(b.values.get("policy_data"), m):
        members.append(value)
    public = [x for x in members if x in ("allUsers", "allAuthenticatedUsers")]
    if public:
        found[0]["public_members"] = [*found[0].get("public_members", []), *public]
        found[1]["public_members"] = b.loc()


def _policy_bindings(value: object, m: _Module) -> Iterator[str]:
    """Members of a ``data "google_iam_policy"`` that ``policy_data`` refers to."""
    if not isinstance(value, str):
        return
    match = re.fullmatch(r"\$\{(data\.google_iam_policy\.[\w-]+)\.policy_data\}", value)
    block = m.data.get(match.group(1)) if match else None
    for binding in (block.values.get("binding") or []) if block else []:
        if isinstance(binding, dict):
            yield from (str(x) for x in binding.get("members") or [])


_CONFIGURING = {
    "aws_s3_bucket_acl": _bucket_acl,
    "aws_s3_bucket_policy": _bucket_policy,
    "aws_s3_bucket_public_access_block": _bucket_bpa,
    "aws_s3_bucket_versioning": _bucket_versioning,
    "aws_s3_bucket_server_side_encryption_configuration": _bucket_flag("encryption"),
    "aws_s3_bucket_logging": _bucket_flag("logging"),
    "aws_s3_bucket_website_configuration": _bucket_flag("website"),
    "aws_s3_bucket_cors_configuration": _bucket_cors,
    "google_storage_bucket_iam_member": _gcs_member,
    "google_storage_bucket_iam_binding": _gcs_member,
    "google_storage_bucket_iam_policy": _gcs_member,
    "google_storage_bucket_acl": _gcs_member,
    "google_storage_default_object_access_control": _gcs_member,
}
