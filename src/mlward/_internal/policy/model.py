"""Policies: rules over the input document, loaded from YAML or TOML and checked on load.

A policy file::

    version: 1
    extends: [baseline]            # packs (baseline, strict) or other policy files
    params: {production_paths: [production/]}
    disable: [no-medium-findings]  # rules of an extended policy to leave out
    rules:
      - id: safetensors-in-production
        title: Only safetensors models in production/
        severity: high
        for: models                # findings, models, notebooks, dependencies, storage, bom,
                                   # project
        cel: model.path.startsWith("production/") && model.family != "safetensors"
        rego: |
          startswith(model.path, "production/")
          model.family != "safetensors"
        remediation: Convert the model to safetensors.

A condition is true for an item that violates the rule. A rule has a CEL condition, a Rego
one, or both (the same rule in two languages; the engine picked at run time reads its own).
A rule with the id of an inherited rule replaces it. Everything is checked when the file is
read: unknown keys, wrong types, unknown fields of the input document named in a condition,
and conditions that do not compile, each reported with the file and line.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mlward._internal.policy.document import COLLECTIONS, input_schema
from mlward.errors import UsageError
from mlward.findings import Severity

PACKS = ("baseline", "strict")
MAX_POLICY_BYTES = 1 << 20
MAX_EXTENDS_DEPTH = 8
_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
_TOP_KEYS = ("version", "name", "description", "extends", "params", "disable", "rules")
_RULE_KEYS = ("id", "title", "severity", "for", "cel", "rego", "remediation", "description")


class PolicyError(UsageError):
    """A policy that cannot be used: where (file and line) and why."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        super().__init__(f"{source}{f':{line}' if line else ''}: {message}")
        self.source = source
        self.line = line


@dataclass(frozen=True)
class PolicyRule:
    id: str
    title: str
    severity: Severity
    collection: str
    cel: str | None
    rego: str | None
    remediation: str
    description: str
    origin: str
    """Where the rule is declared: ``pack:baseline`` or a file path."""
    line: int | None = None
    cel_line: int | None = None
    """The line the CEL condition starts on (errors inside it count from there)."""
    rego_line: int | None = None

    @property
    def variable(self) -> str:
        """The name an item of the rule's collection has in its condition."""
        return COLLECTIONS[self.collection]

    @property
    def where(self) -> str:
        return f"{self.origin}{f':{self.line}' if self.line else ''}"

    def condition(self, engine: str) -> tuple[str, int | None]:
        text, line = (self.cel, self.cel_line) if engine == "cel" else (self.rego, self.rego_line)
        if text is None:
            raise PolicyError(self.origin, self.line,
                              f"rule {self.id} has no {engine} condition (the {engine} engine "
                              "needs one in every rule)")
        return text, line

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "severity": self.severity.label,
                "for": self.collection, "cel": self.cel, "rego": self.rego,
                "remediation": self.remediation, "description": self.description,
                "origin": self.where}


@dataclass(frozen=True)
class Policy:
    name: str
    rules: tuple[PolicyRule, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # As sigstore refuses an empty AllOf: a policy with no rules would pass everything.
        if not self.rules:
            raise PolicyError(self.sources[0] if self.sources else self.name, None,
                              "the policy has no rules (an empty policy would pass anything)")

    @property
    def digest(self) -> str:
        """SHA-256 of what the policy decides (rules and parameters, canonical JSON): the
        ledger records it, so an auditor can tell which policy a run enforced."""
        body = json.dumps({"rules": [r.to_dict() | {"origin": None} for r in self.rules],
                           "params": self.params}, sort_keys=True, separators=(",", ":"),
                          default=str)
        return "sha256:" + hashlib.sha256(body.encode()).hexdigest()

    def with_params(self, overrides: Mapping[str, Any]) -> Policy:
        return Policy(self.name, self.rules, {**self.params, **overrides}, self.sources)


# --- reading YAML and TOML with line numbers ----------------------------------------------

Lines = dict[tuple[Any, ...], int]


def _yaml_lines(text: str, source: str) -> Lines:
    """Line of every key and list item, by its path in the document. YAML aliases are
    refused: a policy needs none, and nested ones expand to billions of values ("billion
    laughs") once the parameters are serialised."""
    import yaml

    lines: Lines = {}
    seen: set[int] = set()

    def visit(node: Any, path: tuple[Any, ...]) -> None:
        if id(node) in seen:
            raise PolicyError(source, node.start_mark.line + 1, "YAML anchors and aliases "
                              "are not allowed in a policy")
        if not isinstance(node, yaml.ScalarNode):
            seen.add(id(node))
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*path, k.value)
                lines[key] = k.start_mark.line + 1
                visit(v, key)
                if isinstance(v, yaml.ScalarNode) and v.style in ("|", ">"):
                    lines[(*key, "value")] = v.start_mark.line + 2  # block text: next line
                else:
                    lines[(*key, "value")] = v.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for n, item in enumerate(node.value):
                visit(item, (*path, n))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        visit(root, ())
    return lines


_TOML_TABLE = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"]+)\s*\]\]?")
_TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=\s*(.?)(.?)(.?)")


def _toml_lines(text: str) -> Lines:
    """Line of every key in the tables a policy uses (``[params]``, ``[[rules]]``)."""
    lines: Lines = {}
    table: tuple[Any, ...] = ()
    rules = -1
    for number, raw in enumerate(text.splitlines(), 1):
        m = _TOML_TABLE.match(raw)
        if m:
            name = m.group(2).strip('"')
            if m.group(1) == "[[" and name == "rules":
                rules += 1
                table = ("rules", rules)
            else:
                table = tuple(name.split("."))
            lines.setdefault(table, number)
            continue
        k = _TOML_KEY.match(raw)
        if k:
            key = (*table, k.group(1))
            lines.setdefault(key, number)
            multiline = k.group(2) + k.group(3) + k.group(4) in ('"""', "'''")
            lines.setdefault((*key, "value"), number + 1 if multiline else number)
    return lines


def _parse(text: str, source: str) -> tuple[Any, Lines]:
    if source.endswith(".toml"):
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            return tomllib.loads(text), _toml_lines(text)
        except tomllib.TOMLDecodeError as exc:
            at = re.search(r"at line (\d+)", str(exc))
            raise PolicyError(source, int(at.group(1)) if at else None,
                              f"not valid TOML: {str(exc).split(' (at line')[0]}") from None
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicyError(source, mark.line + 1 if mark else None,
                          f"not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    return data, _yaml_lines(text, source)


# --- validation -------------------------------------------------------------------------------


class _Reader:
    def __init__(self, source: str, lines: Lines) -> None:
        self.source = source
        self.lines = lines

    def fail(self, path: tuple[Any, ...], message: str) -> PolicyError:
        while path and path not in self.lines:
            path = path[:-1]
        return PolicyError(self.source, self.lines.get(path), message)

    def keys(self, data: Mapping[str, Any], known: Sequence[str], path: tuple[Any, ...],
             what: str) -> None:
        for key in data:
            if key not in known:
                near = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise self.fail((*path, key), f"unknown key {key!r} in {what}{hint}; "
                                f"known: {', '.join(known)}")

    def text(self, data: Mapping[str, Any], key: str, path: tuple[Any, ...], *,
             required: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(path, f"{key} is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail((*path, key), f"{key} must be a non-empty string "
                            f"(got {type(value).__name__})")
        return value.strip()

    def line(self, path: tuple[Any, ...]) -> int | None:
        return self.lines.get(path)


def _rule(item: Any, n: int, r: _Reader) -> PolicyRule:
    path: tuple[Any, ...] = ("rules", n)
    if not isinstance(item, Mapping):
        raise r.fail(path, f"rule {n + 1} must be a mapping of keys")
    r.keys(item, _RULE_KEYS, path, f"rule {n + 1}")
    rid = r.text(item, "id", path, required=True)
    assert rid is not None
    if not _ID.fullmatch(rid):
        raise r.fail((*path, "id"), f"rule id {rid!r} must be lower-case letters, digits, "
                     "'.', '_' or '-' (at most 80)")
    title = r.text(item, "title", path, required=True)
    sev = r.text(item, "severity", path, required=True)
    try:
        severity = Severity.parse(sev or "")
    except ValueError as exc:
        raise r.fail((*path, "severity"), f"rule {rid}: {exc}") from None
    collection = r.text(item, "for", path, required=True)
    if collection not in COLLECTIONS:
        raise r.fail((*path, "for"), f"rule {rid}: for must be one of "
                     f"{', '.join(COLLECTIONS)} (got {collection!r})")
    cel, rego = r.text(item, "cel", path), r.text(item, "rego", path)
    if cel is None and rego is None:
        raise r.fail(path, f"rule {rid} needs a condition: cel, rego or both")
    rule = PolicyRule(
        id=rid, title=title or rid, severity=severity, collection=collection, cel=cel,
        rego=rego, remediation=r.text(item, "remediation", path) or "",
        description=r.text(item, "description", path) or "", origin=r.source,
        line=r.line(path), cel_line=r.line((*path, "cel", "value")),
        rego_line=r.line((*path, "rego", "value")))
    for language, text in (("cel", cel), ("rego", rego)):
        if text is not None:
            _check_references(rule, language, text, r)
    return rule


# ``name.field.field`` where the name is an item, ``input`` or ``params``; a segment followed
# by ``(`` is a method or macro (``exists``, ``startsWith``), not a field.
_REFERENCE = re.compile(r"(?<![\w.\"'])([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)+)(\s*\()?")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')


def _check_references(rule: PolicyRule, language: str, text: str, r: _Reader) -> None:
    """Every field a condition names must exist in the input document: a misspelt field is
    an error on load, not a rule that silently never matches."""
    schema = input_schema()
    roots: dict[str, Any] = {"input": schema}
    items = schema["properties"]["project"] if rule.collection == "project" \
        else schema["properties"][rule.collection]["items"]
    roots[rule.variable] = items
    code = _STRING.sub('""', text)
    for m in _REFERENCE.finditer(code):
        name, chain, call = m.group(1), m.group(2).split(".")[1:], m.group(3)
        if name not in roots:
            continue
        if call:
            chain = chain[:-1]
        node = roots[name]
        walked = [name]
        for part in chain:
            props = node.get("properties")
            if props is None:  # free-form (details, params) or a list: nothing to check
                break
            if part not in props:
                near = difflib.get_close_matches(part, list(props), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                line = rule.cel_line if language == "cel" else rule.rego_line
                raise PolicyError(r.source, line or rule.line,
                                  f"rule {rule.id} ({language}): {'.'.join(walked)} has no "
                                  f"field {part!r}{hint}; fields: {', '.join(props)}")
            node = props[part]
            walked.append(part)


def _strings(value: Any, key: str, r: _Reader) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise r.fail((key,), f"{key} must be a string or a list of strings")
    return list(value)


@dataclass
class _Loaded:
    name: str
    rules: dict[str, PolicyRule]
    params: dict[str, Any]
    sources: list[str]


def _pack_text(name: str) -> str:
    return resources.files("mlward._internal.policy").joinpath(f"packs/{name}.yaml").read_text(
        encoding="utf-8")


def _load(spec: str, base: Path, depth: int, origin: str | None) -> _Loaded:
    if depth > MAX_EXTENDS_DEPTH:
        raise PolicyError(origin or spec, None, f"extends nests deeper than {MAX_EXTENDS_DEPTH} "
                          "policies (a loop?)")
    if spec in PACKS:
        source, text, folder = f"pack:{spec}", _pack_text(spec), base
    else:
        path = (base / spec).resolve() if not Path(spec).is_absolute() else Path(spec)
        source, folder = str(path), path.parent
        if path.suffix not in (".yaml", ".yml", ".toml"):
            raise PolicyError(origin or str(path), None,
                              f"{spec}: a policy is a .yaml, .yml or .toml file, or a pack "
                              f"({', '.join(PACKS)})")
        try:
            if path.stat().st_size > MAX_POLICY_BYTES:
                raise PolicyError(source, None, f"larger than {MAX_POLICY_BYTES} bytes")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError(origin or source, None, f"policy file {spec} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(source, None, f"cannot read the policy: {exc}") from None
    data, lines = _parse(text, source)
    r = _Reader(source, lines)
    if not isinstance(data, Mapping):
        raise PolicyError(source, 1, "a policy is a mapping with version and rules")
    r.keys(data, _TOP_KEYS, (), "the policy")
    if data.get("version") != 1:
        raise r.fail(("version",), f"version must be 1 (got {data.get('version')!r})")
    loaded = _Loaded(str(data.get("name") or Path(source).stem.removeprefix("pack:")), {}, {},
                     [])
    for parent in _strings(data.get("extends"), "extends", r):
        inherited = _load(parent, folder, depth + 1, f"{source}:{r.line(('extends',)) or 1}")
        loaded.rules.update(inherited.rules)
        loaded.params.update(inherited.params)
        loaded.sources += inherited.sources
    params = data.get("params", {})
    if not isinstance(params, Mapping):
        raise r.fail(("params",), "params must be a mapping")
    loaded.params.update(params)
    for rid in _strings(data.get("disable"), "disable", r):
        if rid not in loaded.rules:
            raise r.fail(("disable",), f"disable names {rid!r}, which no extended policy has "
                         f"(known: {', '.join(loaded.rules) or 'none'})")
        del loaded.rules[rid]
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise r.fail(("rules",), "rules must be a list")
    own: set[str] = set()
    for n, item in enumerate(raw_rules):
        rule = _rule(item, n, r)
        if rule.id in own:
            raise r.fail(("rules", n, "id"), f"rule id {rule.id} is declared twice")
        own.add(rule.id)
        loaded.rules[rule.id] = rule  # replaces an inherited rule of the same id
    loaded.sources.append(source)
    return loaded


def load_policy(specs: Sequence[str], *, base: Path,
                params: Mapping[str, Any] | None = None) -> Policy:
    """The policy made of ``specs`` (pack names or files relative to ``base``), later ones
    extending earlier ones, with ``params`` (the ``[policy]`` settings) over their params."""
    if not specs:
        raise UsageError("no policy given (--policy FILE, or policy = ... in [gate])")
    rules: dict[str, PolicyRule] = {}
    merged: dict[str, Any] = {}
    sources: list[str] = []
    names = []
    for spec in specs:
        loaded = _load(spec, base, 0, None)
        rules.update(loaded.rules)
        merged.update(loaded.params)
        sources += loaded.sources
        names.append(loaded.name)
    for key in params or {}:
        if key not in merged:
            near = difflib.get_close_matches(str(key), list(merged), n=1)
            raise UsageError(f"[policy] sets {key!r}, which is not a parameter of the policy"
                             + (f" (did you mean {near[0]!r}?)" if near else "")
                             + f"; its parameters: {', '.join(merged) or 'none'}")
    merged.update(params or {})
    return Policy("+".join(names), tuple(rules.values()), merged,
                  tuple(dict.fromkeys(sources)))
