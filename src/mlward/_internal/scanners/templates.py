"""Jinja template analysis, shared by GGUF chat templates and Hugging Face tokenizer configs.

A chat template is Jinja that the serving process renders. Servers that render it without a
sandbox (llama-cpp-python before 0.2.72, CVE-2024-34359; the same root cause in vLLM and
SGLang) run whatever Python the template reaches through object internals. The template is
parsed with Jinja's own parser (never compiled or rendered) and its syntax tree is walked for:

- dunder and private attribute access (``x.__class__``, ``x['__globals__']``, ``x|attr(...)``,
  ``map(attribute=...)``), including names built from string pieces (``'__cla' ~ 'ss__'``,
  ``['__', 'class', '__']|join``) and format strings that reach attributes;
- imports and includes;
- attribute access on the Jinja globals that escape chains start from (``cycler``, ``lipsum``,
  ``self``, ...).

Each template gets a verdict: dangerous (an escape), suspicious (unusual constructs) or clean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlward._internal.scanners.interface import ScanContext
from mlward.findings import Location, Verdict
from mlward.rules import TEMPLATE_ESCAPE, TEMPLATE_SUSPICIOUS

MAX_TEMPLATE_CHARS = 1 << 20
"""Real chat templates are a few kilobytes; larger ones are judged suspicious unparsed."""

# Jinja globals (and Flask's) that published sandbox escapes start from.
GADGET_GLOBALS = frozenset({
    "cycler", "joiner", "lipsum", "range", "dict", "self", "request", "config", "url_for",
    "get_flashed_messages",
})
# Filters that take an attribute name, and the keyword that carries it.
_ATTRIBUTE_KWARG_FILTERS = frozenset({"map", "selectattr", "rejectattr", "sort", "groupby",
                                      "unique", "sum", "min", "max"})
_DUNDER = re.compile(r"__\w+__")
# A format-string field that reaches an attribute or item: "{0.__class__}", "{x[__globals__]}".
_FORMAT_REACH = re.compile(r"\{[^{}]*[.\[][^{}]*\}")


@dataclass(frozen=True)
class TemplateIssue:
    dangerous: bool
    message: str
    evidence: str
    line: int | None


@dataclass
class TemplateAnalysis:
    issues: list[TemplateIssue] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        if any(i.dangerous for i in self.issues):
            return Verdict.DANGEROUS
        return Verdict.SUSPICIOUS if self.issues else Verdict.CLEAN


def analyse_template(text: str) -> TemplateAnalysis:
    """Parse ``text`` as Jinja (never render it) and list what it reaches."""
    result = TemplateAnalysis()
    if len(text) > MAX_TEMPLATE_CHARS:
        result.issues.append(TemplateIssue(
            False, f"template of {len(text)} characters is too large to judge", "", None))
        return result
    import jinja2  # ImportError reaches the caller, which reports an inconclusive skip

    try:
        tree = jinja2.Environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        result.issues.append(TemplateIssue(
            False, f"template does not parse: {exc.message}", "", exc.lineno))
        return result
    except RecursionError:
        result.issues.append(TemplateIssue(False, "template nested too deep to parse", "", None))
        return result
    _Walker(result).visit(tree)
    return result


def report_template(text: str, location: Location, ctx: ScanContext) -> Verdict | None:
    """Analyse a template and report findings at ``location``; None when jinja2 is missing."""
    try:
        analysis = analyse_template(text)
    except ImportError:
        ctx.skip(location, "Jinja template not analysed: jinja2 is not installed "
                 "(pip install 'mlward[templates]')", inconclusive=True)
        return None
    except RecursionError:
        ctx.skip(location, "Jinja template nested too deep to analyse", inconclusive=True)
        return None
    ctx.examined(location, "jinja-template")
    for issue in analysis.issues:
        r = TEMPLATE_ESCAPE if issue.dangerous else TEMPLATE_SUSPICIOUS
        ctx.add(r.finding(location.at(line=issue.line), issue.message,
                          evidence=issue.evidence or None,
                          details={"verdict": str(analysis.verdict)}))
    return analysis.verdict


class _Walker:
    def __init__(self, result: TemplateAnalysis) -> None:
        self.result = result

    def add(self, dangerous: bool, message: str, evidence: str, node: object) -> None:
        line = getattr(node, "lineno", None)
        self.result.issues.append(TemplateIssue(dangerous, message, evidence, line))

    def visit(self, tree: object) -> None:
        from jinja2 import nodes

        stack = [tree]
        while stack:
            node = stack.pop()
            if not isinstance(node, nodes.Node):
                continue
            self.check(node)
            stack.extend(node.iter_child_nodes())

    def check(self, node: object) -> None:
        from jinja2 import nodes

        if isinstance(node, nodes.Getattr):
            self.check_name(node.attr, node, "attribute")
            self.check_gadget(node.node, node.attr, node)
        elif isinstance(node, nodes.Getitem):
            self.check_key(node.arg, node)
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                self.check_gadget(node.node, node.arg.value, node)
        elif isinstance(node, nodes.Filter):
            self.check_filter(node)
        elif isinstance(node, (nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)):
            self.add(False, f"template uses {type(node).__name__.lower()}",
                     type(node).__name__.lower(), node)
        elif isinstance(node, nodes.Const) and isinstance(node.value, str):
            self.check_literal(node.value, node)

    def check_name(self, name: str, node: object, how: str) -> None:
        if name.startswith("_"):
            kind = "dunder" if _DUNDER.fullmatch(name) else "private"
            self.add(True, f"template reads the {kind} {how} {name!r}", name, node)

    def check_key(self, key: object, node: object) -> None:
        from jinja2 import nodes

        folded = _fold(key)
        if folded is not None:
            self.check_name(folded, node, "item")
        elif isinstance(key, (nodes.Concat, nodes.Add, nodes.Filter, nodes.Mod)):
            self.add(False, "template computes an attribute or item name at run time",
                     type(key).__name__, node)

    def check_gadget(self, target: object, attr: str, node: object) -> None:
        from jinja2 import nodes

        if isinstance(target, nodes.Name) and target.name in GADGET_GLOBALS:
            self.add(False, f"template reaches into the Jinja global {target.name!r}",
                     f"{target.name}.{attr}", node)

    def check_filter(self, node: object) -> None:
        from jinja2 import nodes

        assert isinstance(node, nodes.Filter)
        if node.name == "attr" and node.args:
            self.check_key(node.args[0], node)
        if node.name in _ATTRIBUTE_KWARG_FILTERS:
            for kw in node.kwargs:
                if kw.key == "attribute":
                    self.check_key(kw.value, node)
        if node.name == "join" and node.node is not None:
            folded = _fold(node)
            if folded is not None and _DUNDER.search(folded):
                self.add(True, "template builds a dunder name by joining strings", folded, node)

    def check_literal(self, value: str, node: object) -> None:
        # str.format / format_map on such a literal reaches attributes ("{0.__class__}").
        if _DUNDER.search(value):
            self.add(False, "template contains a dunder name in a string", value[:80], node)
        if _FORMAT_REACH.search(value) and "__" in value:
            self.add(True, "template format string reaches attributes", value[:80], node)


def _fold(node: object) -> str | None:
    """The string an expression always evaluates to, if it is built from literals only."""
    from jinja2 import nodes

    if isinstance(node, nodes.Const):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, nodes.Concat):
        parts = [_fold(n) for n in node.nodes]
        return None if any(p is None for p in parts) else "".join(p for p in parts if p)
    if isinstance(node, nodes.Add):
        left, right = _fold(node.left), _fold(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, nodes.Filter) and node.node is not None:
        inner = _fold_list(node.node) if node.name == "join" else _fold(node.node)
        if inner is None:
            return None
        if node.name == "join":
            sep = _fold(node.args[0]) if node.args else ""
            return None if sep is None else sep.join(inner)
        if node.name in {"lower", "upper", "string", "trim"}:
            text = inner if isinstance(inner, str) else None
            if text is None:
                return None
            return {"lower": text.lower, "upper": text.upper, "trim": text.strip}.get(
                node.name, lambda: text)()
    return None


def _fold_list(node: object) -> list[str] | str | None:
    from jinja2 import nodes

    if isinstance(node, (nodes.List, nodes.Tuple)):
        items = [_fold(n) for n in node.items]
        return None if any(i is None for i in items) else [i for i in items if i is not None]
    return _fold(node)
