"""What every condition engine (CEL, Rego) gives back, and how one is picked."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mlward.errors import MissingExtra, UsageError

if TYPE_CHECKING:
    from mlward._internal.policy.document import InputDocument
    from mlward._internal.policy.model import Policy

ENGINES = ("cel", "rego")


@dataclass
class Outcome:
    """Per rule id: the indices of the items that violate it (in item order) and the items
    its condition could not be evaluated on, with why."""

    hits: dict[str, list[int]] = field(default_factory=dict)
    errors: dict[str, list[tuple[int, str]]] = field(default_factory=dict)


class Engine(Protocol):
    name: str

    def evaluate(self, doc: InputDocument, *, project: bool = True) -> Outcome: ...


def make_engine(name: str, policy: Policy) -> Engine:
    """The engine called ``name``, with the policy's conditions compiled (a condition that
    does not compile is a :class:`~mlward._internal.policy.model.PolicyError`)."""
    if name == "cel":
        from mlward._internal.policy.cel import CelEngine

        return CelEngine(policy)
    if name == "rego":
        from mlward._internal.policy.rego import RegoEngine

        return RegoEngine(policy)
    raise UsageError(f"unknown policy engine {name!r} (choose from {', '.join(ENGINES)})")


def require(module: str, package: str) -> object:
    """Import ``module`` of the ``policy`` extra, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(package, "policy") from None


# --- reading only what the conditions read -----------------------------------------------------
#
# A condition sees its item only through the fields it names (``finding.rank``); items that
# agree on those fields get the same verdict. Both engines therefore evaluate each distinct
# projection once and give its verdict to every item that has it: 10,000 findings judged on
# their rank are five evaluations. A condition that uses its item whole (``size(finding)``,
# ``object.keys(model)``) or reaches a collection through ``input`` gets the items as they are.

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')


def fields_read(text: str, variable: str) -> frozenset[str] | None:
    """The top-level fields of ``variable`` a condition reads; None when it uses the whole
    item (or calls a method on it)."""
    code = _STRINGS.sub('""', text)
    out = set()
    for m in re.finditer(rf"(?<![\w.]){re.escape(variable)}\b(\s*\.\s*([A-Za-z_]\w*)(\s*\()?)?",
                         code):
        if m.group(1) is None or m.group(3):
            return None
        out.add(m.group(2))
    return frozenset(out)


def collections_through_input(text: str) -> frozenset[str] | None:
    """The document's top-level keys a condition names through ``input`` (None: all)."""
    code = _STRINGS.sub('""', text)
    out = set()
    for m in re.finditer(r"(?<![\w.])input\b(\s*\.\s*([A-Za-z_]\w*))?", code):
        if m.group(1) is None:
            return None
        out.add(m.group(2))
    return frozenset(out)


@dataclass
class Projection:
    """Distinct projections of one collection's items, and which items each stands for."""

    items: list[Any]
    members: list[list[int]]

    @classmethod
    def of(cls, items: Sequence[Any], fields: frozenset[str] | None) -> Projection:
        if fields is None:
            return cls(list(items), [[n] for n in range(len(items))])
        names = sorted(fields)
        seen: dict[str, int] = {}
        out: list[Any] = []
        members: list[list[int]] = []
        for n, item in enumerate(items):
            # repr, not the values: 1, 1.0 and True are equal in Python, not in CEL; lists
            # and objects are not hashable. (Equal objects written in another key order
            # only cost an extra evaluation.)
            key = repr(tuple(item.get(f, _MISSING) for f in names))
            slot = seen.get(key)
            if slot is None:
                seen[key] = slot = len(out)
                out.append({f: item[f] for f in names if f in item})
                members.append([])
            members[slot].append(n)
        return cls(out, members)

    def expand(self, hits: Iterable[int]) -> list[int]:
        return sorted(n for h in hits for n in self.members[h])


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
