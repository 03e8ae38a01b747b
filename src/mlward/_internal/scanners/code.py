"""Unsafe ML code in Python files and notebook code cells: an AST pass plus shell commands.

Own visitor rather than bandit: bandit's library API is not stable, it brings its own
configuration, reporting and plugin loading, and it knows none of the ML loaders
(torch.load, numpy allow_pickle, trust_remote_code, Keras safe_mode), which are most of what
matters here. The generic checks it would add (eval/exec, shell=True, verify=False, yaml.load)
are a few lines each once names are resolved through the imports.

IPython syntax (``!cmd``, ``%pip``, ``%%bash`` cells) is split off before parsing: line numbers
are kept, and the shell commands go through :func:`check_shell`, which also collects the
requirements that ``pip``/``conda install`` lines declare.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlward._internal.scanners.interface import ScanContext
from mlward.errors import MissingExtra
from mlward.findings import Location, Severity
from mlward.rules import (
    CODE_EVAL,
    CODE_KERAS_UNSAFE,
    CODE_NUMPY_PICKLE,
    CODE_PICKLE_LOAD,
    CODE_REMOTE_CODE,
    CODE_SHELL,
    CODE_TLS_OFF,
    CODE_TORCH_LOAD,
    CODE_YAML_LOAD,
    NOTEBOOK_DEPENDENCIES,
    SHELL_PIP_UNSAFE,
    SHELL_PIPE_TO_SHELL,
    UNPINNED_HUB_MODEL,
    Rule,
)

MAX_PYTHON_BYTES = 8 << 20
MAX_EVIDENCE = 120

# --- IPython magics ------------------------------------------------------------------------

_SHELL_CELL_MAGICS = frozenset({"bash", "sh", "system", "script"})
_PYTHON_CELL_MAGICS = frozenset({"capture", "time", "timeit", "prun", "debug"})
_SHELL_LINE_MAGICS = {"pip": "pip ", "conda": "conda ", "mamba": "mamba ", "system": "",
                      "sx": "", "uv": "uv "}
_MAGIC_LINE = re.compile(r"^(\s*)(?:[A-Za-z_][\w.]*\s*=\s*)?([!%])(.*)$")
_JUPYTEXT_MAGIC = re.compile(r"^\s*#\s*([!%])(.*)$")


@dataclass
class CodeUnit:
    """One piece of Python source: a file or a code cell, with its IPython parts split off."""

    python: str | None
    """The source with magic lines replaced by ``pass`` (None for a non-Python cell magic)."""
    shell: list[tuple[int, str]] = field(default_factory=list)
    """Shell commands with their 1-based line: ``!cmd``, ``%pip ...``, ``%%bash`` bodies."""


def split_magics(source: str, *, commented: bool = False) -> CodeUnit:
    """Separate IPython magics from Python, keeping line numbers.

    ``commented`` also reads Jupytext's commented magics (``# !pip install x``).
    """
    lines = source.split("\n")
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        name, _, rest = first[2:].partition(" ")
        if name in _SHELL_CELL_MAGICS and (name != "script" or re.match(r"\s*(ba|z)?sh\b", rest)):
            return CodeUnit(None, [(n, line) for n, line in enumerate(lines[1:], 2)
                                   if line.strip()])
        if name not in _PYTHON_CELL_MAGICS:
            return CodeUnit(None)
        lines = ["", *lines[1:]]
    out: list[str] = []
    shell: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _MAGIC_LINE.match(line)
        jm = _JUPYTEXT_MAGIC.match(line) if commented and not m else None
        if not m and not jm:
            out.append(line)
            i += 1
            continue
        indent, kind, body = (m.group(1), m.group(2), m.group(3)) if m else \
            ("", jm.group(1), jm.group(2)) if jm else ("", "", "")
        start = i + 1
        out.append(line if jm else f"{indent}pass")
        while body.endswith("\\") and i + 1 < len(lines):
            i += 1
            nxt = re.sub(r"^\s*#\s?", "", lines[i]) if jm else lines[i]
            body = body[:-1] + " " + nxt.strip()
            out.append(lines[i] if jm else "")
        command = _magic_command(kind, body)
        if command:
            shell.append((start, command))
        i += 1
    return CodeUnit("\n".join(out), shell)


def _magic_command(kind: str, body: str) -> str | None:
    if kind == "!":
        return body.lstrip("!").strip() or None
    name, _, rest = body.partition(" ")
    prefix = _SHELL_LINE_MAGICS.get(name)
    return prefix + rest.strip() if prefix is not None else None


# --- shell commands ------------------------------------------------------------------------

_PIPE_TO_SHELL = re.compile(
    r"\b(?:curl|wget)\b[^|;&]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:env\s+)?"
    r"(?:(?:ba|z|da|k|fi)?sh|python[\d.]*|perl|ruby)\b"
    r"|\b(?:ba|z)?sh\s+(?:-\w+\s+)*[\"']?(?:\$\(|<\()\s*(?:curl|wget)\b",
    re.IGNORECASE)
_PIP = re.compile(r"pip(?:\d+(?:\.\d+)?)?$")
_PYTHON = re.compile(r"python(?:\d+(?:\.\d+)?)?$")
_PIP_VALUE_OPTS = frozenset({
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url",
    "--extra-index-url", "-f", "--find-links", "--trusted-host", "-t", "--target", "--prefix",
    "--root", "--platform", "--python-version", "--implementation", "--abi", "--src",
    "--upgrade-strategy", "--progress-bar", "--cache-dir", "--log", "--python", "--index",
    "--default-index", "--report",
})
_CONDA_VALUE_OPTS = frozenset({"-c", "--channel", "-n", "--name", "-p", "--prefix",
                               "--file", "--override-channels"})


@dataclass(frozen=True)
class ShellIssue:
    rule: Rule
    severity: Severity
    message: str


@dataclass(frozen=True)
class ShellReport:
    issues: tuple[ShellIssue, ...]
    requirements: tuple[str, ...]


def check_shell(command: str) -> ShellReport:
    """Risky patterns in one shell command line, and the packages it installs."""
    issues: list[ShellIssue] = []
    reqs: list[str] = []
    if _PIPE_TO_SHELL.search(command):
        issues.append(ShellIssue(SHELL_PIPE_TO_SHELL, Severity.HIGH,
                                 "downloaded script piped into an interpreter"))
    for segment in re.split(r"&&|\|\||;|\|", command):
        try:
            tokens = shlex.split(segment, comments=True)
        except ValueError:
            tokens = segment.split()
        while tokens and (tokens[0] == "sudo" or re.match(r"\w+=", tokens[0])):
            tokens = tokens[1:]
        args, tool = _install_args(tokens)
        if tool == "pip":
            _pip_args(args, issues, reqs)
        elif tool == "conda":
            _conda_args(args, reqs)
    return ShellReport(tuple(issues), tuple(reqs))


def _install_args(tokens: list[str]) -> tuple[list[str], str | None]:
    name = [Path(t).name for t in tokens[:4]]
    if len(name) >= 2 and _PIP.match(name[0]) and name[1] == "install":
        return tokens[2:], "pip"
    if len(name) >= 4 and _PYTHON.match(name[0]) and name[1:4] == ["-m", "pip", "install"]:
        return tokens[4:], "pip"
    if len(name) >= 3 and name[0] == "uv" and name[1:3] == ["pip", "install"]:
        return tokens[3:], "pip"
    if len(name) >= 2 and name[0] in {"conda", "mamba", "micromamba"} and name[1] == "install":
        return tokens[2:], "conda"
    return [], None


def _pip_args(args: Sequence[str], issues: list[ShellIssue], reqs: list[str]) -> None:
    it = iter(args)
    for tok in it:
        if tok.startswith((">", "2>", "&", "1>")):
            break
        if tok.startswith("-"):
            opt, eq, value = tok.partition("=")
            if opt in _PIP_VALUE_OPTS and not eq:
                value = next(it, "")
            if opt == "--trusted-host":
                issues.append(ShellIssue(SHELL_PIP_UNSAFE, Severity.HIGH,
                                         f"pip install with --trusted-host {value}"))
            elif opt in {"-i", "--index-url", "--extra-index-url", "-f", "--find-links",
                         "--index", "--default-index"}:
                if value.startswith("http://"):
                    issues.append(ShellIssue(SHELL_PIP_UNSAFE, Severity.HIGH,
                                             f"pip install from a plain-http index ({opt})"))
                elif opt == "--extra-index-url":
                    issues.append(ShellIssue(
                        SHELL_PIP_UNSAFE, Severity.MEDIUM,
                        "pip install with --extra-index-url (dependency confusion risk)"))
            elif opt in {"-e", "--editable"} and value:
                _requirement(value, issues, reqs)
            continue
        _requirement(tok, issues, reqs)


def _requirement(req: str, issues: list[ShellIssue], reqs: list[str]) -> None:
    reqs.append(req)
    if req.startswith("http://") or "+http://" in req:
        issues.append(ShellIssue(SHELL_PIP_UNSAFE, Severity.HIGH,
                                 "pip install from a plain-http URL"))
    elif "://" in req or req.startswith("git+"):
        issues.append(ShellIssue(SHELL_PIP_UNSAFE, Severity.MEDIUM,
                                 "pip install from a URL or repository, not a pinned index "
                                 "release"))


def _conda_args(args: Sequence[str], reqs: list[str]) -> None:
    it = iter(args)
    for tok in it:
        if tok.startswith((">", "2>", "&")):
            break
        if tok.startswith("-"):
            if tok in _CONDA_VALUE_OPTS:
                next(it, "")
            continue
        reqs.append(tok)


# --- the AST pass --------------------------------------------------------------------------

_DEFAULT_ALIASES = {"np": "numpy", "pd": "pandas", "tf": "tensorflow"}
_PICKLE_CALLS = frozenset({
    f"{mod}.{fn}" for mod in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle")
    for fn in ("load", "loads", "Unpickler")
} | {"joblib.load", "sklearn.externals.joblib.load", "pandas.read_pickle", "shelve.open",
     "jsonpickle.decode", "torch.serialization.pickle.load"})
_TORCH_LOAD = frozenset({"torch.load", "torch.serialization.load"})
_YAML_LOAD = frozenset({"yaml.load", "yaml.load_all"})
_YAML_UNSAFE = frozenset({"yaml.unsafe_load", "yaml.unsafe_load_all"})
_SAFE_LOADERS = frozenset({"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"})
_SHELL_ALWAYS = frozenset({"os.system", "os.popen", "subprocess.getoutput",
                           "subprocess.getstatusoutput", "commands.getoutput", "os.popen2",
                           "os.popen3", "os.popen4"})
_SUBPROCESS = frozenset({"subprocess.run", "subprocess.call", "subprocess.check_call",
                         "subprocess.check_output", "subprocess.Popen"})
_HTTP_ROOTS = frozenset({"requests", "httpx", "urllib3", "aiohttp"})
_HTTP_NAMES = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "request",
                         "stream", "Client", "AsyncClient", "Session", "send"})


@dataclass(frozen=True)
class CodeIssue:
    rule: Rule
    severity: Severity
    message: str
    evidence: str
    line: int
    column: int


def aliases_of(trees: Iterable[ast.AST]) -> dict[str, str]:
    """Local name -> dotted module path, from every import in ``trees`` (cells share them)."""
    out = dict(_DEFAULT_ALIASES)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        out[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        out[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _qualname(node: ast.expr, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(aliases.get(node.id, node.id))
        return ".".join(reversed(parts))
    if isinstance(node, ast.Call):
        inner = _qualname(node.func, aliases)
        if inner:
            parts.append(inner + "()")
            return ".".join(reversed(parts))
    return None


def _const(node: ast.expr | None) -> object:
    return node.value if isinstance(node, ast.Constant) else ...


def check_tree(tree: ast.AST, aliases: dict[str, str]) -> Iterator[CodeIssue]:
    """Unsafe calls in one parsed module or cell."""
    calls: list[ast.Call] = []
    safe_names: set[str] = set()  # variables assigned something that names a safe loader
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            calls.append(node)
        elif isinstance(node, ast.Assign) and _names_safe_loader(node.value):
            safe_names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ClassDef) and any(
                _names_safe_loader(b) or (isinstance(b, ast.Name) and b.id in safe_names)
                for b in node.bases):
            safe_names.add(node.name)  # a subclass of a safe loader builds no objects either
    for call in calls:
        yield from _check_call(call, aliases, safe_names)


def _names_safe_loader(value: ast.expr) -> bool:
    for node in ast.walk(value):
        name = node.attr if isinstance(node, ast.Attribute) else node.id \
            if isinstance(node, ast.Name) else node.value if isinstance(node, ast.Constant) \
            else None
        if name in _SAFE_LOADERS:
            return True
    return False


def _check_call(node: ast.Call, aliases: dict[str, str],
                safe_names: set[str]) -> Iterator[CodeIssue]:
    q = _qualname(node.func, aliases) or ""
    kw = {k.arg: k.value for k in node.keywords if k.arg}
    last = q.rsplit(".", 1)[-1]

    def issue(rule: Rule, message: str, severity: Severity | None = None) -> CodeIssue:
        return CodeIssue(rule, severity or rule.severity, message, q[:MAX_EVIDENCE],
                         node.lineno, node.col_offset + 1)

    if q in _PICKLE_CALLS:
        yield issue(CODE_PICKLE_LOAD, f"{q} deserialises pickle data (runs code it carries)")
    elif q in _TORCH_LOAD:
        weights_only = _const(kw.get("weights_only"))
        if weights_only is False:
            yield issue(CODE_TORCH_LOAD, "torch.load with weights_only=False unpickles the file",
                        Severity.HIGH)
        elif weights_only is not True:
            yield issue(CODE_TORCH_LOAD, "torch.load without weights_only=True (unpickles the "
                        "file on PyTorch before 2.6)")
    elif q == "numpy.load" and _const(kw.get("allow_pickle")) is True:
        yield issue(CODE_NUMPY_PICKLE, "numpy.load with allow_pickle=True")
    elif q in _YAML_UNSAFE:
        yield issue(CODE_YAML_LOAD, f"{q} builds arbitrary Python objects")
    elif q in _YAML_LOAD:
        loader = kw.get("Loader") or (node.args[1] if len(node.args) > 1 else None)
        name = (_qualname(loader, aliases) or "") if loader is not None else ""
        if name.rsplit(".", 1)[-1] not in _SAFE_LOADERS and name not in safe_names:
            yield issue(CODE_YAML_LOAD, f"{q} without a safe loader"
                        + (f" (Loader={name.rsplit('.', 1)[-1]})" if name else ""))
    elif (q in {"eval", "exec", "builtins.eval", "builtins.exec"}
          and isinstance(node.func, (ast.Name, ast.Attribute))):
        yield issue(CODE_EVAL, f"{last}() runs a string as code")
    elif q in _SHELL_ALWAYS or (q in _SUBPROCESS and _const(kw.get("shell")) is True):
        yield issue(CODE_SHELL, f"{q} passes a command string to the shell")
        command = _const(node.args[0]) if node.args else ...
        if isinstance(command, str):
            for s in check_shell(command).issues:
                yield issue(s.rule, s.message, s.severity)
    if _const(kw.get("trust_remote_code")) is True:
        yield issue(CODE_REMOTE_CODE, f"{q or 'call'} with trust_remote_code=True runs code "
                    "from the model repository")
    if _const(kw.get("safe_mode")) is False:
        yield issue(CODE_KERAS_UNSAFE, f"{q or 'call'} with safe_mode=False")
    if _const(kw.get("verify")) is False and (q.split(".")[0] in _HTTP_ROOTS
                                              or last in _HTTP_NAMES):
        yield issue(CODE_TLS_OFF, f"{q} with verify=False")


# --- models and AI services the code reaches ------------------------------------------

_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?")
_HF_DOWNLOADS = frozenset({"huggingface_hub.hf_hub_download", "huggingface_hub.snapshot_download",
                           "huggingface_hub.file_download.hf_hub_download"})
_HF_NAMED = frozenset({"transformers.pipeline", "sentence_transformers.SentenceTransformer",
                       "sentence_transformers.CrossEncoder"})
_TORCH_HUB = frozenset({"torch.hub.load", "torch.hub.load_state_dict_from_url"})
AI_SERVICES = {
    "openai": "OpenAI", "anthropic": "Anthropic", "cohere": "Cohere", "mistralai": "Mistral AI",
    "groq": "Groq", "together": "Together AI", "replicate": "Replicate",
    "vertexai": "Google Vertex AI", "google.cloud.aiplatform": "Google Vertex AI",
    "google.generativeai": "Google Gemini API", "google.genai": "Google Gemini API",
    "langchain_openai": "OpenAI", "langchain_anthropic": "Anthropic",
    "langchain_google_vertexai": "Google Vertex AI", "langchain_aws": "AWS Bedrock",
    "huggingface_hub.InferenceClient": "Hugging Face Inference",
    "huggingface_hub.AsyncInferenceClient": "Hugging Face Inference",
    "openai.AzureOpenAI": "Azure OpenAI", "openai.AsyncAzureOpenAI": "Azure OpenAI",
    "langchain_openai.AzureChatOpenAI": "Azure OpenAI",
}
"""Client modules (or classes) of hosted model APIs -> the service's name."""


@dataclass(frozen=True)
class ModelUse:
    """A model the code pulls at run time (``kind`` ``model-source``) or a hosted model API it
    calls (``ai-service``)."""

    kind: str
    provider: str
    name: str | None
    revision: str | None
    pinned: bool | None
    line: int
    column: int
    call: str


def _service_of(name: str) -> str | None:
    parts = name.split(".")
    return next((AI_SERVICES[".".join(parts[:n])] for n in range(len(parts), 0, -1)
                 if ".".join(parts[:n]) in AI_SERVICES), None)


def model_uses(tree: ast.AST, aliases: dict[str, str]) -> Iterator[ModelUse]:
    """Hub models loaded by name and hosted AI services used, in one module or cell."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield from _model_call(node, aliases)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                f"{node.module}.{a.name}" for a in node.names] if node.module else []
            for name in names:
                service = _service_of(name)
                if service:
                    yield ModelUse("ai-service", service, None, None, None, node.lineno,
                                   node.col_offset + 1, name[:MAX_EVIDENCE])


def _model_call(node: ast.Call, aliases: dict[str, str]) -> Iterator[ModelUse]:
    q = _qualname(node.func, aliases) or ""
    kw = {k.arg: k.value for k in node.keywords if k.arg}
    first = _const(node.args[0]) if node.args else ...

    def use(provider: str, name: object, revision: object, pinned: bool | None = None
            ) -> ModelUse:
        rev = revision if isinstance(revision, str) else None
        return ModelUse("model-source", provider, str(name), rev,
                        bool(rev and _COMMIT.fullmatch(rev)) if pinned is None else pinned,
                        node.lineno, node.col_offset + 1, q[:MAX_EVIDENCE])

    if q.endswith(".from_pretrained") or q in _HF_NAMED or q in _HF_DOWNLOADS:
        name = _const(kw.get("repo_id", kw.get("model", kw.get(
            "pretrained_model_name_or_path", node.args[0] if node.args else None))))
        if q == "transformers.pipeline":
            name = _const(kw.get("model"))
        if isinstance(name, str) and _is_hub_id(name):
            yield use("huggingface", name, _const(kw.get("revision")))
    elif q in _TORCH_HUB and isinstance(first, str) and q == "torch.hub.load":
        source = _const(kw.get("source"))
        if source != "local" and _is_hub_id(first.split(":")[0]):
            repo, _, ref = first.partition(":")
            yield use("github", repo, ref or None)
    elif q.startswith("mlflow.") and q.endswith(("load_model", "download_artifacts")):
        uri = _const(kw.get("model_uri", kw.get("artifact_uri", node.args[0] if node.args
                                                 else None)))
        if isinstance(uri, str) and uri.startswith(("models:/", "runs:/")):
            path = uri.split(":/", 1)[1].strip("/")
            name, _, version = path.partition("/")
            if uri.startswith("runs:/"):  # a run id names one immutable run
                yield use("mlflow", uri, name, pinned=True)
            else:
                yield use("mlflow", name.split("@")[0], version or name.partition("@")[2] or None,
                          pinned=version.isdigit())
    service = _service_of(q) if q else None
    if service is not None and (q.endswith(("OpenAI", "Anthropic", "Client", "Chat"))
                                or "." not in q):
        yield ModelUse("ai-service", service, None, None, None, node.lineno,
                       node.col_offset + 1, q[:MAX_EVIDENCE])
    if q.endswith("boto3.client") and first in ("bedrock-runtime", "bedrock",
                                                "bedrock-agent-runtime"):
        yield ModelUse("ai-service", "AWS Bedrock", None, None, None, node.lineno,
                       node.col_offset + 1, q[:MAX_EVIDENCE])


def _is_hub_id(name: str) -> bool:
    """A hub id (``org/name`` or a legacy ``name``), not a local path or URL."""
    return bool(_HUB_ID.fullmatch(name)) and not name.startswith(".") \
        and not name.endswith((".pt", ".bin", ".safetensors", ".onnx", ".pkl", ".h5"))


def report_model_uses(ctx: ScanContext, tree: ast.AST, aliases: dict[str, str],
                      loc: Location, cell_of_line: dict[int, int] | None) -> None:
    """``model-source`` and ``ai-service`` facts, and MW751 for an unpinned hub model."""
    for u in model_uses(tree, aliases):
        cell = cell_of_line.get(u.line) if cell_of_line else loc.cell
        where = loc.at(line=u.line, column=u.column, cell=cell)
        ctx.fact(where, u.kind, provider=u.provider, name=u.name, revision=u.revision,
                 pinned=u.pinned, call=u.call)
        if u.kind == "model-source" and not u.pinned:
            moving = f"revision {u.revision!r}, a name that can be moved" if u.revision \
                else "no revision"
            ctx.add(UNPINNED_HUB_MODEL.finding(
                where, f"{u.call} loads {u.provider} model {u.name!r} with {moving}",
                evidence=f"{u.provider}:{u.name}",
                severity=Severity.LOW if u.revision else None,
                details={"provider": u.provider, "model": u.name, "revision": u.revision}))


def parse(unit: CodeUnit) -> ast.Module | None:
    """The unit's Python AST, or None when it is not Python or does not parse."""
    if unit.python is None:
        return None
    try:
        return ast.parse(unit.python)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


@dataclass
class CodeResult:
    requirements: list[str] = field(default_factory=list)
    unparsed: list[Location] = field(default_factory=list)


def report_code(ctx: ScanContext, units: Sequence[tuple[Location, CodeUnit]],
                cell_of_line: dict[int, int] | None = None) -> CodeResult:
    """Run the AST and shell checks over ``units`` (imports are shared between them).

    Each unit's location carries its cell; lines are relative to the unit. ``cell_of_line``
    maps absolute lines to cells for Jupytext scripts (a single unit).
    """
    result = CodeResult()
    trees = [(loc, unit, parse(unit)) for loc, unit in units]
    aliases = aliases_of(t for _, _, t in trees if t is not None)
    for loc, unit, tree in trees:
        if tree is None and unit.python is not None and unit.python.strip():
            result.unparsed.append(loc)
        for issue in check_tree(tree, aliases) if tree is not None else ():
            cell = cell_of_line.get(issue.line) if cell_of_line else loc.cell
            ctx.add(issue.rule.finding(
                loc.at(line=issue.line, column=issue.column, cell=cell),
                issue.message, evidence=issue.evidence, severity=issue.severity))
        if tree is not None:
            report_model_uses(ctx, tree, aliases, loc, cell_of_line)
        for line, command in unit.shell:
            shell = check_shell(command)
            result.requirements.extend(shell.requirements)
            cell = cell_of_line.get(line) if cell_of_line else loc.cell
            for s in shell.issues:
                ctx.add(s.rule.finding(loc.at(line=line, cell=cell), s.message,
                                       evidence=_safe_evidence(command), severity=s.severity))
    return result


def _safe_evidence(command: str) -> str:
    """The command, shortened, with any secret in it masked."""
    from mlward._internal.scanners.secrets.detect import redact_secrets

    try:
        command = redact_secrets(command)[0]
    except MissingExtra:
        command = re.sub(r"://[^\s/@]+@", "://***@", command)
    return command if len(command) <= MAX_EVIDENCE else command[:MAX_EVIDENCE - 1] + "…"


def report_requirements(ctx: ScanContext, location: Location, requirements: list[str],
                        where: str) -> None:
    if requirements:
        unique = list(dict.fromkeys(requirements))
        ctx.add(NOTEBOOK_DEPENDENCIES.finding(
            location, f"{where} installs {len(unique)} package(s) with pip/conda commands",
            evidence=", ".join(unique)[:MAX_EVIDENCE], details={"requirements": unique}))


# --- Python files --------------------------------------------------------------------------

_JUPYTEXT_CELL = re.compile(r"^# %%", re.MULTILINE)
_JUPYTEXT_HEADER = re.compile(r"\A(?:#!.*\n)?# ---\n# jupyter:", re.MULTILINE)


def jupytext_cells(text: str) -> list[tuple[int, str]] | None:
    """(first line, text) per ``# %%`` cell of a Jupytext percent script, else None."""
    if not (_JUPYTEXT_CELL.search(text) or _JUPYTEXT_HEADER.search(text)):
        return None
    cells: list[tuple[int, list[str]]] = [(1, [])]
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("# %%"):
            cells.append((number, [line]))
        else:
            cells[-1][1].append(line)
    if not cells[0][1] or not "".join(cells[0][1]).strip():
        cells = cells[1:]
    return [(start, "\n".join(lines)) for start, lines in cells]


def python_requirements(text: str) -> list[str]:
    """Packages that ``pip``/``conda install`` magics or commented magics in a script install."""
    unit = split_magics(text, commented=jupytext_cells(text) is not None)
    return [r for _, cmd in unit.shell for r in check_shell(cmd).requirements]
