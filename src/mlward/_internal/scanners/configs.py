"""Configuration files, read for what a loader takes from them: chat templates, and pickles
or code hidden in encoded strings.

- Chat templates wherever they live: a loose ``*.jinja`` file (``chat_template.jinja`` or any
  other), ``chat_template.json``, ``tokenizer_config.json`` and ``processor_config.json`` under
  any key (every string there that holds Jinja), and any other JSON file under a key whose
  name says template. Each is judged as in :mod:`.templates`. A file is judged the same
  whether it is scanned alone, in a folder or inside an archive.
- Encoded payloads in JSON and YAML (:mod:`.encoded`).

The secrets pass (the ``text`` scanner) still runs over these files after this one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from mlward._internal.scanners.encoded import report_encoded
from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.scanners.secrets.text import looks_like_text, read_text
from mlward._internal.sources import Source

TEMPLATE_SUFFIXES = (".jinja", ".jinja2", ".j2")
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
TEMPLATE_CONFIGS = frozenset({"tokenizer_config.json", "chat_template.json",
                              "processor_config.json"})
"""Hugging Face files whose every string holding Jinja is a template a server may render."""
MAX_CONFIG_BYTES = 32 << 20
MAX_STRINGS = 1_000_000
"""Strings walked in one JSON document (a vocabulary has a few hundred thousand)."""


def has_jinja(text: str) -> bool:
    return "{%" in text or "{{" in text


def json_templates(document: Any, every_string: bool) -> Iterator[tuple[str, str]]:
    """(member path, template) for the templates in a parsed JSON document: strings holding
    Jinja under a key naming a template (at any depth), or anywhere when ``every_string``.
    Hugging Face's named templates (``[{"name": ..., "template": ...}]``) are named
    ``key[name]``."""
    stack: list[tuple[str, Any, bool]] = [("", document, False)]
    walked = 0
    while stack and walked < MAX_STRINGS:
        path, value, keyed = stack.pop()
        walked += 1
        if isinstance(value, dict):
            for key, item in reversed(value.items()):
                child = f"{path}.{key}" if path else str(key)
                stack.append((child, item, keyed or "template" in str(key).lower()))
        elif isinstance(value, list):
            for i, item in reversed(list(enumerate(value))):
                if (isinstance(item, dict) and isinstance(item.get("name"), str)
                        and isinstance(item.get("template"), str)):
                    stack.append((f"{path}[{item['name']}]", item["template"], True))
                else:
                    stack.append((f"{path}[{i}]", item, keyed))
        elif isinstance(value, str) and (keyed or every_string) and has_jinja(value):
            yield path, value


class ConfigScanner(Scanner):
    """JSON and YAML configs and Jinja template files."""

    name = "config"
    priority = 880

    def sniff(self, source: Source) -> bool:
        return (source.name.lower().endswith(TEMPLATE_SUFFIXES + CONFIG_SUFFIXES)
                and source.size is not None and source.size <= MAX_CONFIG_BYTES
                and looks_like_text(source.head()))

    def scan(self, source: Source, ctx: ScanContext) -> None:
        from mlward._internal.scanners.templates import report_template

        loc = source.location
        text = read_text(source, MAX_CONFIG_BYTES)
        lower = source.name.lower()
        if lower.endswith(TEMPLATE_SUFFIXES):
            report_template(text, loc, ctx)
            return
        ctx.examined(loc, self.name)
        report_encoded(text, loc, ctx, "this file")
        if not lower.endswith(".json") or not has_jinja(text):
            return
        try:
            document = json.loads(text)
        except ValueError:
            return  # not JSON: no key holds a template a loader would find
        except RecursionError:
            ctx.skip(loc, "JSON nested too deep to look for chat templates",
                     inconclusive=True)
            return
        for member, template in json_templates(document, source.name in TEMPLATE_CONFIGS):
            report_template(template, loc.child(member), ctx)
