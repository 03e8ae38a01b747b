"""What every condition engine (CEL, Rego) gives back, and how one is picked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

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

    def evaluate(self, doc: InputDocument) -> Outcome: ...


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
