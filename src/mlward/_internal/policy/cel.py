"""CEL conditions, evaluated with ``cel-python`` (Google's Common Expression Language).

Each rule's condition is compiled once (cel-python's transpiler: the expression becomes a
Python code object of operator calls, about six times faster than its tree interpreter) and
evaluated per item with the item bound to the collection's name (``finding``, ``model``...),
``params`` and, when the condition names it, ``input`` (the whole document, converted only
then). The policy is configuration the project wrote; scanned content only ever arrives as
data in the document.
"""

from __future__ import annotations

import logging
from typing import Any

from mlward._internal.policy.document import InputDocument, sample_item
from mlward._internal.policy.engine import (
    Outcome,
    Projection,
    collections_through_input,
    fields_read,
    require,
)
from mlward._internal.policy.model import Policy, PolicyError, PolicyRule


def load_celpy() -> Any:
    """cel-python, set up for this engine and the query language (which share it)."""
    celpy: Any = require("celpy", "cel-python")
    # cel-python logs every failed evaluation; the engine reports them itself.
    logging.getLogger("celpy").addHandler(logging.NullHandler())
    from celpy.celparser import CELParser

    # cel-python keeps one parser for the process, built with the tree class of the first
    # environment made; a parser made for the interpreter cannot feed the transpiler.
    parser = CELParser.CEL_PARSER
    if parser is not None and parser.options.tree_class is not celpy.CompiledRunner.tree_node_class:
        CELParser.CEL_PARSER = None
    return celpy


def cel_error_reason(exc: BaseException) -> str:
    """The innermost message of a CEL error (cel-python wraps the real one, e.g. "no such
    overload: DoubleType(7.5) != None", in an "evaluation error")."""
    args: Any = exc.args
    while args and isinstance(args[-1], tuple) and args[-1]:
        args = args[-1]
    text = str(args[0]) if args else str(exc)
    return text if text != "evaluation error" else str(exc)


class _Compiled:
    def __init__(self, rule: PolicyRule, program: Any, text: str) -> None:
        self.rule = rule
        self.program = program
        self.through_input = collections_through_input(text)
        self.fields = fields_read(text, rule.variable)


class CelEngine:
    """Evaluates a policy's CEL conditions."""

    name = "cel"

    def __init__(self, policy: Policy) -> None:
        celpy = load_celpy()
        self._celpy = celpy
        self.policy = policy
        env = celpy.Environment(runner_class=celpy.CompiledRunner)
        self._compiled = [self._compile(env, rule) for rule in policy.rules]
        self._params = celpy.json_to_cel(dict(policy.params))
        for c in self._compiled:
            self._check_type(c)

    def _compile(self, env: Any, rule: PolicyRule) -> _Compiled:
        text, line = rule.condition("cel")
        try:
            program = env.program(env.compile(text))
        except self._celpy.CELParseError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
            raise PolicyError(rule.origin, (line or rule.line or 1) + (exc.line or 1) - 1,
                              f"rule {rule.id}: CEL does not compile: {first}") from None
        except Exception as exc:  # the transpiler rejects some valid-looking trees
            raise PolicyError(rule.origin, line or rule.line,
                              f"rule {rule.id}: CEL does not compile: {exc}") from None
        return _Compiled(rule, program, text)

    def _check_type(self, c: _Compiled) -> None:
        """Run the condition once on a made-up item of the right shape: a condition that
        compares a string with a number, or does not give true or false, fails on load."""
        item = sample_item(c.rule.collection)
        document = self._celpy.json_to_cel(sample_item(None))
        result = self._run(c, self._celpy.json_to_cel(item), document)
        if isinstance(result, str) and ("overload" in result or "true or false" in result):
            _, line = c.rule.condition("cel")
            raise PolicyError(c.rule.origin, line or c.rule.line,
                              f"rule {c.rule.id}: {result}")

    def _run(self, c: _Compiled, item: Any, document: Any) -> bool | str:
        """True/False, or the error message when the condition cannot be evaluated."""
        activation = {c.rule.variable: item, "params": self._params}
        if c.through_input != frozenset():
            activation["input"] = document
        try:
            value = c.program.evaluate(activation)
        except self._celpy.CELEvalError as exc:
            return f"CEL error: {cel_error_reason(exc)}"
        except (TypeError, ValueError, KeyError, ArithmeticError, RecursionError) as exc:
            return f"CEL error: {type(exc).__name__}: {exc}"
        if isinstance(value, self._celpy.CELEvalError):
            return f"CEL error: {cel_error_reason(value)}"
        if not isinstance(value, (bool, self._celpy.celtypes.BoolType)):
            return f"the condition gave {type(value).__name__}, not true or false"
        return bool(value)

    def evaluate(self, doc: InputDocument, *, project: bool = True) -> Outcome:
        """Every rule over its collection; with ``project``, once per distinct projection of
        the items onto the fields the rule reads (the same verdicts, far fewer evaluations)."""
        outcome = Outcome()
        converted: dict[tuple[str, frozenset[str] | None], tuple[Projection, list[Any]]] = {}
        # ``input`` holds what the conditions name through it (converting 10,000 findings
        # for a condition that reads input.project would cost more than judging them).
        names: set[str] = set()
        for c in self._compiled:
            names |= set(doc.data) if c.through_input is None else c.through_input
        document = self._celpy.json_to_cel({k: doc.data[k] for k in names if k in doc.data})
        for c in self._compiled:
            key = (c.rule.collection, c.fields if project else None)
            if key not in converted:
                proj = Projection.of(doc.items(c.rule.collection), key[1])
                converted[key] = proj, [self._celpy.json_to_cel(i) for i in proj.items]
            proj, items = converted[key]
            hits = []
            for n, item in enumerate(items):
                result = self._run(c, item, document)
                if result is True:
                    hits.append(n)
                elif result is not False:
                    outcome.errors.setdefault(c.rule.id, []).extend(
                        (m, str(result)) for m in proj.members[n])
            outcome.hits[c.rule.id] = proj.expand(hits)
        return outcome
