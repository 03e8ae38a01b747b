"""YAML (and JSON) read with line numbers, and CloudFormation's short-form functions.

Findings point to the line that causes them, so every mapping remembers where it and each of
its keys start. ``!Ref x`` and the other intrinsic-function tags become the long form
(``{"Ref": "x"}``, ``{"Fn::GetAtt": [...]}``), as CloudFormation itself reads them. Only
PyYAML's safe constructors run: no tag makes an object.
"""

from __future__ import annotations

import itertools
from typing import Any

import yaml

MAX_DOCUMENTS = 1000


class LineDict(dict):  # type: ignore[type-arg]
    """A mapping that knows the line it starts on and the line of each key (1-based)."""

    line: int = 0
    lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


class LineList(list):  # type: ignore[type-arg]
    line: int = 0


def _function_name(tag: str) -> str:
    name = tag.lstrip("!")
    return name if name in ("Ref", "Condition") else f"Fn::{name}"


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:
        self.flatten_mapping(node)
        out = LineDict()
        out.line = node.start_mark.line + 1
        out.lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue
            out[key] = self.construct_object(value_node, deep=True)
            out.lines[str(key)] = key_node.start_mark.line + 1
        return out

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LineList:
        out = LineList(self.construct_object(child, deep=True)
                       for child in node.value)
        out.line = node.start_mark.line + 1
        return out


def _intrinsic(loader: _Loader, tag_suffix: str, node: yaml.Node) -> LineDict:
    name = _function_name("!" + tag_suffix)
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node)
    else:
        value = loader.construct_mapping(node)  # type: ignore[arg-type]
    out = LineDict({name: value})
    out.line = node.start_mark.line + 1
    out.lines = {name: out.line}
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                        _Loader.construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
                        _Loader.construct_sequence)
_Loader.add_multi_constructor("!", _intrinsic)


def load_all(text: str) -> list[Any]:
    """The documents of a YAML stream (JSON is YAML too), at most :data:`MAX_DOCUMENTS`.

    Raises ``yaml.YAMLError`` when the text is not YAML.
    """
    return list(itertools.islice(yaml.load_all(text, Loader=_Loader), MAX_DOCUMENTS))
