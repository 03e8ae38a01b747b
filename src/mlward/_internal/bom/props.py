"""Properties in the ``mlward:`` namespace: how both BOM formats carry what they have no field
for, so that each reads back into the same inventory.

A property holds one text value: text as it is, anything else as compact JSON; the keys in
:data:`REPEATED` hold lists written as one property per item.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

NS = "mlward:"
REPEATED = frozenset({"finding", "incomplete", "used_in", "declared_in"})


def encode(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, text) pairs for ``values``, sorted by name; empty values are left out."""
    out: list[tuple[str, str]] = []
    for key, value in sorted(values.items()):
        if value in (None, "", [], (), {}):
            continue
        items = value if key in REPEATED and isinstance(value, (list, tuple)) else [value]
        out.extend((f"{NS}{key}", text(v)) for v in items)
    return out


def text(value: Any) -> str:
    """A property value: text as it is, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"),
                                                           sort_keys=True)


def decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The values :func:`encode` wrote (properties of other namespaces are ignored)."""
    out: dict[str, Any] = {}
    for name, raw in pairs:
        if not name.startswith(NS):
            continue
        key = name[len(NS):]
        if key in REPEATED:
            out.setdefault(key, []).append(raw)
            continue
        out[key] = _value(raw)
    return out


def _value(raw: str) -> Any:
    if raw[:1] in ("[", "{") or raw in ("true", "false", "null") or _number(raw):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _number(raw: str) -> bool:
    try:
        float(raw)
    except ValueError:
        return False
    return raw.strip() == raw and raw[:1] not in ("+",) and "_" not in raw
