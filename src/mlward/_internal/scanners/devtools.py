"""ML tools exposed by a project's own configuration: Jupyter configs, MLflow, Ray,
TensorBoard, Streamlit and Gradio command lines (scripts, Dockerfiles, compose files,
Kubernetes manifests, Python launch calls), and ML tool ports published by containers.

A supplementary per-file :class:`Scanner`: the verdict on a file is the same whether it was
named, found in a folder or found inside an archive, and the file still gets the secrets pass
(or the Python scan) after this one. Nothing is executed: Python is read as text and with
:mod:`ast` literals only, YAML with ``safe_load`` and a bound on the nodes walked. Evidence
quotes command lines with their credentials redacted (:meth:`mlward.rules.Rule.finding`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mlward._internal.lazy import lazy_module
from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.sources import Source
from mlward.findings import Finding, Location, Severity
from mlward.rules import (
    GRADIO_SHARE,
    JUPYTER_NO_AUTH,
    JUPYTER_PUBLIC,
    JUPYTER_ROOT,
    JUPYTER_WEAK_ORIGIN,
    MLFLOW_ARTIFACTS,
    MLFLOW_EXPOSED,
    PUBLISHED_PORT,
    RAY_EXPOSED,
    TOOL_PUBLIC,
)

if TYPE_CHECKING:
    import ast
else:
    ast = lazy_module("ast")  # the parser loads when a config or script needs it

MAX_FILE_BYTES = 2 << 20
MAX_YAML_NODES = 200_000
PUBLIC_HOSTS = frozenset({"0.0.0.0", "::", "[::]", "*", ""})
ML_PORTS = {8888: "Jupyter", 5000: "MLflow", 8265: "Ray dashboard", 10001: "Ray client",
            6006: "TensorBoard", 7860: "Gradio", 8501: "Streamlit"}
_HIGH_PORTS = frozenset({8888, 8265, 10001})

_JUPYTER_CONFIG = re.compile(r"^jupyter_(server|notebook|lab)_config\.(py|json)$")
_COMPOSE = re.compile(r"^(docker-)?compose[\w.\-]*\.ya?ml$")
_SCRIPT = re.compile(r"(\.(sh|bash|zsh)$|^(Dockerfile|Containerfile)([.\-]\w+)?$|\.dockerfile$"
                     r"|^(Makefile|Procfile|entrypoint[\w.\-]*)$)")
_TOOL_WORDS = (b"mlflow", b"jupyter", b"ray", b"tensorboard", b"streamlit", b"gradio")
_TOOL_NAMES = {"mlflow": "MLflow", "jupyter": "Jupyter", "ray": "Ray",
               "tensorboard": "TensorBoard", "streamlit": "Streamlit", "gradio": "Gradio"}
_TOOL_WORD = re.compile(r"\b(mlflow|jupyter|ray|tensorboard|streamlit|gradio)\b", re.IGNORECASE)


def tools_named(text: str) -> list[str]:
    """The ML tools a config or launch script names (for the ``ml-tool-config`` fact)."""
    return sorted({_TOOL_NAMES[m.lower()] for m in _TOOL_WORD.findall(text)})


def _line_of(text: str, *needles: str) -> int | None:
    for n, line in enumerate(text.splitlines(), 1):
        if all(x in line for x in needles):
            return n
    return None


# --- command lines ----------------------------------------------------------------------

def _options(words: list[str]) -> dict[str, str]:
    """``--name value`` and ``--name=value`` options (flags map to ``"true"``)."""
    out: dict[str, str] = {}
    for i, w in enumerate(words):
        if not w.startswith("-"):
            continue
        name, eq, value = w.partition("=")
        if eq:
            out[name] = value
        elif i + 1 < len(words) and not words[i + 1].startswith("-"):
            out[name] = words[i + 1]
        else:
            out[name] = "true"
    return out


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command, comments=True)
    except ValueError:
        return command.split()


def check_command(command: str, loc: Location) -> list[Finding]:
    """Findings for one shell command line that starts an ML tool."""
    findings: list[Finding] = []
    words = _words(command)
    for i, w in enumerate(words):
        tool = w.rsplit("/", 1)[-1]
        rest = words[i + 1:]
        sub = rest[0] if rest else ""
        opts = _options(rest)
        if tool == "mlflow" and sub in ("server", "ui"):
            host = opts.get("--host", opts.get("-h", "127.0.0.1"))
            if host in PUBLIC_HOSTS and "--app-name" not in opts:
                findings.append(MLFLOW_EXPOSED.finding(
                    loc, f"mlflow {sub} listens on {host} without an auth app",
                    evidence=command.strip()[:200]))
                store = opts.get("--backend-store-uri", "./mlruns")
                if "--serve-artifacts" in opts or store.startswith(("file:", "/", ".")):
                    what = ("proxies artifacts (--serve-artifacts)" if "--serve-artifacts"
                            in opts else f"keeps its tracking data in the file store {store}")
                    findings.append(MLFLOW_ARTIFACTS.finding(
                        loc, f"publicly bound mlflow {sub} {what}",
                        evidence=command.strip()[:200]))
        elif tool == "ray" and sub == "start":
            host = opts.get("--dashboard-host", "127.0.0.1")
            if host in PUBLIC_HOSTS:
                findings.append(RAY_EXPOSED.finding(
                    loc, f"Ray dashboard and jobs API bound to {host}",
                    evidence=command.strip()[:200]))
        elif tool in ("jupyter", "jupyter-lab", "jupyter-notebook", "jupyter-server") or (
                tool == "start-notebook.sh"):
            findings.extend(_jupyter_settings(_jupyter_cli(opts), loc, command.strip()[:200]))
        elif tool == "tensorboard":
            if "--bind_all" in opts or opts.get("--host") in PUBLIC_HOSTS - {""}:
                findings.append(TOOL_PUBLIC.finding(
                    loc, "TensorBoard listens on every interface",
                    evidence=command.strip()[:200]))
        elif (tool == "streamlit" and sub == "run"
              and opts.get("--server.address") in PUBLIC_HOSTS - {""}):
            findings.append(TOOL_PUBLIC.finding(
                loc, "Streamlit listens on every interface", evidence=command.strip()[:200]))
    return findings


def _jupyter_cli(opts: Mapping[str, str]) -> dict[str, Any]:
    """Jupyter settings from ``--ServerApp.token=''``, ``--ip=0.0.0.0`` style options."""
    settings: dict[str, Any] = {name.lstrip("-").rsplit(".", 1)[-1]: value
                                for name, value in opts.items()}
    if "allow-root" in settings:  # a flag on the command line, allow_root in configs
        settings["allow_root"] = True
    return settings


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1", "yes"))


def _jupyter_settings(settings: Mapping[str, Any], loc: Location,
                      evidence: str) -> list[Finding]:
    findings = []
    ip = settings.get("ip")
    public = isinstance(ip, str) and ip in PUBLIC_HOSTS
    no_token = "token" in settings and settings["token"] in ("", None)
    password = settings.get("password") or settings.get("hashed_password")
    if no_token and not password:
        findings.append(JUPYTER_NO_AUTH.finding(
            loc, "Jupyter server with an empty token and no password"
            + (f", listening on {ip!r}" if public else ""), evidence=evidence,
            severity=Severity.CRITICAL if public else Severity.HIGH))
    if public:
        findings.append(JUPYTER_PUBLIC.finding(loc, f"Jupyter server listens on {ip!r}",
                                               evidence=evidence))
    origin = settings.get("allow_origin")
    if origin == "*" or _truthy(settings.get("disable_check_xsrf")):
        what = "allow_origin='*'" if origin == "*" else "disable_check_xsrf=True"
        findings.append(JUPYTER_WEAK_ORIGIN.finding(loc, f"Jupyter server sets {what}",
                                                    evidence=evidence))
    if _truthy(settings.get("allow_root")):
        findings.append(JUPYTER_ROOT.finding(loc, "Jupyter server may run as root",
                                             evidence=evidence))
    return findings


# --- Jupyter config files ----------------------------------------------------------------

_ASSIGN = re.compile(r"^\s*c\.(\w+)\.(\w+)\s*=\s*(.+?)\s*$")


def check_jupyter_py(text: str, loc: Location) -> list[Finding]:
    """``c.ServerApp.token = ''`` lines, read with literal_eval (never executed)."""
    settings: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = _ASSIGN.match(line)
        if not m:
            continue
        try:
            settings[m.group(2)] = ast.literal_eval(m.group(3))
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            continue
        lines[m.group(2)] = n
    return _located(_jupyter_settings(settings, loc, "config"), lines, loc)


def check_jupyter_json(text: str, loc: Location) -> list[Finding]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return []
    settings: dict[str, Any] = {}
    if isinstance(data, dict):
        for section in data.values():
            if isinstance(section, dict):
                settings.update(section)
    return _located(_jupyter_settings(settings, loc, "config"), {}, loc, text)


def _located(findings: list[Finding], lines: Mapping[str, int], loc: Location,
             text: str = "") -> list[Finding]:
    """Each finding placed on the config line that causes it."""
    keys = {"MW601": "token", "MW602": "ip", "MW603": "allow_origin", "MW604": "allow_root"}
    out = []
    for f in findings:
        key = keys.get(f.rule_id, "")
        if f.rule_id == "MW603" and "xsrf" in f.message:
            key = "disable_check_xsrf"
        line = lines.get(key) or (_line_of(text, f'"{key}"') if text else None)
        out.append(f._replace(location=loc.at(line=line), evidence=f"{key} setting"))
    return out


# --- scripts, Python launch calls ---------------------------------------------------------

def script_commands(text: str) -> Iterator[tuple[int, str]]:
    """(line, command) of a shell script or Dockerfile, continuations joined."""
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        line = raw.rstrip()
        if line.endswith("\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = " ".join(buf).strip()
        buf = []
        joined = re.sub(r"^(RUN|CMD|ENTRYPOINT)\s+", "", joined)
        if joined.startswith("["):  # exec form: ["mlflow", "server", ...]
            with contextlib.suppress(ValueError, TypeError):
                joined = " ".join(shlex.quote(str(w)) for w in json.loads(joined))
        for part in re.split(r"&&|\|\||;", joined):
            if part.strip():
                yield start, part


def _keywords(call: ast.Call) -> dict[str, object]:
    """Keyword arguments given as literals (others map to ``...``: present, value unknown)."""
    out: dict[str, object] = {}
    for kw in call.keywords:
        if kw.arg is not None:
            out[kw.arg] = kw.value.value if isinstance(kw.value, ast.Constant) else ...
    return out


def check_python(text: str, loc: Location) -> list[Finding]:
    """Gradio ``launch(share=True / server_name='0.0.0.0')`` and ``ray.init(dashboard_host=)``.

    The source is parsed with :mod:`ast` (never run); only call expressions count, so the
    same words inside strings or comments do not.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    findings = []
    lines = text.splitlines()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        kws = _keywords(node)
        where = loc.at(line=node.lineno)
        line = lines[node.lineno - 1].strip()[:200] if node.lineno <= len(lines) else ""
        if node.func.attr == "launch" and "auth" not in kws:
            if kws.get("share") is True:
                findings.append(GRADIO_SHARE.finding(
                    where, "Gradio launch(share=True) without auth", evidence=line))
            if kws.get("server_name") in PUBLIC_HOSTS - {""}:
                findings.append(TOOL_PUBLIC.finding(
                    where, "Gradio app listens on every interface without auth", evidence=line))
        elif (node.func.attr == "init" and isinstance(node.func.value, ast.Name)
              and node.func.value.id == "ray"
              and kws.get("dashboard_host") in PUBLIC_HOSTS - {""}):
            findings.append(RAY_EXPOSED.finding(
                where, "ray.init exposes the dashboard and jobs API", evidence=line))
    return findings


# --- compose files and Kubernetes manifests ------------------------------------------------

class _Budget:
    def __init__(self) -> None:
        self.left = MAX_YAML_NODES

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0


def _command_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(shlex.quote(str(v)) for v in value)
    return ""


def _port_number(value: object) -> int | None:
    text = str(value).split("/")[0]
    return int(text) if text.isdigit() else None


def _compose_port(entry: object) -> tuple[int | None, str]:
    """(container port, host address) of a compose ``ports`` entry."""
    if isinstance(entry, Mapping):
        return _port_number(entry.get("target")), str(entry.get("host_ip", "0.0.0.0"))
    parts = str(entry).rsplit(":", 2)
    host = parts[0] if len(parts) == 3 else "0.0.0.0"
    return _port_number(parts[-1]), host


def check_compose(data: object, text: str, loc: Location) -> list[Finding]:
    findings: list[Finding] = []
    services = data.get("services") if isinstance(data, Mapping) else None
    if not isinstance(services, Mapping):
        return findings
    for name, svc in list(services.items())[:1000]:
        if not isinstance(svc, Mapping):
            continue
        command = " ".join(_command_text(svc.get(k)) for k in ("entrypoint", "command"))
        line = _line_of(text, f"{name}:")
        findings += check_command(command, loc.at(line=line))
        auth = "--app-name" in command
        for entry in (svc.get("ports") or [])[:1000] if isinstance(svc.get("ports"), list) \
                else []:
            port, host = _compose_port(entry)
            if port in ML_PORTS and host not in ("127.0.0.1", "localhost", "::1") \
                    and not (port == 5000 and auth):
                findings.append(PUBLISHED_PORT.finding(
                    loc.at(line=_line_of(text, str(port)) or line),
                    f"service {name!r} publishes {ML_PORTS[port]} port {port} on "
                    f"{host or 'all interfaces'}", evidence=str(entry),
                    severity=Severity.HIGH if port in _HIGH_PORTS else None,
                    details={"port": port}))
    return findings


def _containers(obj: object, budget: _Budget) -> Iterator[Mapping[str, Any]]:
    """Every mapping with an ``image`` (a container spec) anywhere in a manifest."""
    stack = [obj]
    while stack and budget.take():
        item = stack.pop()
        if isinstance(item, Mapping):
            if "image" in item and ("command" in item or "args" in item):
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_manifest(doc: Mapping[str, Any], text: str, loc: Location,
                   budget: _Budget) -> list[Finding]:
    findings: list[Finding] = []
    kind = doc.get("kind")
    spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    if kind == "Service" and spec.get("type") in ("NodePort", "LoadBalancer"):
        for p in spec.get("ports") or []:
            if not isinstance(p, Mapping):
                continue
            port = next((n for n in (_port_number(p.get(k)) for k in ("targetPort", "port"))
                         if n in ML_PORTS), None)
            if port is not None:
                findings.append(PUBLISHED_PORT.finding(
                    loc.at(line=_line_of(text, str(port))),
                    f"{spec.get('type')} Service exposes {ML_PORTS[port]} port {port}",
                    evidence=f"Service {_name(doc)}",
                    severity=Severity.HIGH if port in _HIGH_PORTS else None,
                    details={"port": port}))
    elif kind == "Ingress":
        annotations = (doc.get("metadata") or {}).get("annotations") or {}
        if not any("auth" in str(k) for k in annotations):
            for port in sorted(_ingress_ports(spec, budget)):
                findings.append(PUBLISHED_PORT.finding(
                    loc.at(line=_line_of(text, str(port))),
                    f"Ingress routes to {ML_PORTS[port]} port {port} with no auth annotation",
                    evidence=f"Ingress {_name(doc)}",
                    severity=Severity.HIGH if port in _HIGH_PORTS else None,
                    details={"port": port}))
    elif kind == "RayCluster":
        head = (spec.get("headGroupSpec") or {}).get("rayStartParams") or {}
        host = str(head.get("dashboard-host", "127.0.0.1"))
        if host in PUBLIC_HOSTS:
            findings.append(RAY_EXPOSED.finding(
                loc.at(line=_line_of(text, "dashboard-host")),
                f"RayCluster {_name(doc)} binds its dashboard to {host}",
                evidence="rayStartParams.dashboard-host"))
    for container in _containers(doc, budget):
        command = " ".join(_command_text(container.get(k)) for k in ("command", "args"))
        first = _words(command)[:1]
        line = _line_of(text, first[0]) if first else None
        findings += check_command(command, loc.at(line=line))
    return findings


def _name(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata")
    return str(meta.get("name", "?")) if isinstance(meta, Mapping) else "?"


def _ingress_ports(spec: Mapping[str, Any], budget: _Budget) -> set[int]:
    ports = set()
    stack: list[object] = [spec]
    while stack and budget.take():
        item = stack.pop()
        if isinstance(item, Mapping):
            number = item.get("number") if "number" in item else item.get("servicePort")
            if (n := _port_number(number)) in ML_PORTS and n is not None:
                ports.add(n)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return ports


# --- the scanner ---------------------------------------------------------------------------

def config_kind(name: str, head: bytes) -> str | None:
    """What kind of ML tool config a file is, from its name and first bytes (None: not one)."""
    if b"\0" in head:
        return None
    lower = name.lower()
    if _JUPYTER_CONFIG.match(lower):
        return "jupyter-config-" + lower.rsplit(".", 1)[-1]
    if _COMPOSE.match(lower):
        return "compose"
    if lower.endswith((".yaml", ".yml")) and b"apiVersion" in head and b"kind" in head:
        return "kubernetes"
    if _SCRIPT.search(name) and any(w in head.lower() for w in _TOOL_WORDS):
        return "script"
    if lower.endswith(".py") and (b"gradio" in head or b"import ray" in head):
        return "python"
    return None


def check_text(kind: str, text: str, loc: Location) -> list[Finding]:
    """The findings of one config or script of ``kind`` (from :func:`config_kind`)."""
    if kind == "jupyter-config-py":
        return check_jupyter_py(text, loc)
    if kind == "jupyter-config-json":
        return check_jupyter_json(text, loc)
    if kind == "script":
        return [f for n, cmd in script_commands(text) for f in check_command(cmd, loc.at(line=n))]
    if kind == "python":
        return check_python(text, loc)
    import yaml  # imported here: only YAML configs need it

    budget = _Budget()
    try:
        docs = list(itertools.islice(yaml.safe_load_all(text), 1000))
    except (yaml.YAMLError, RecursionError):
        return []
    if kind == "compose":
        return [f for d in docs for f in check_compose(d, text, loc)]
    return [f for d in docs if isinstance(d, Mapping) for f in check_manifest(d, text, loc, budget)]


class DevtoolsScanner(Scanner):
    """Exposure of ML tools (MW6xx) in configs, scripts, manifests and launch calls."""

    name = "devtools"
    priority = 870  # after the Python scanner (which keeps .py files), before the text pass
    supplementary = True

    def sniff(self, source: Source) -> bool:
        return config_kind(source.name, source.head()) is not None

    def scan(self, source: Source, ctx: ScanContext) -> None:
        kind = config_kind(source.name, source.head())
        assert kind is not None  # sniff accepted it
        loc = source.location
        ctx.examined(loc, f"ml-tool config ({kind})")
        if source.size is not None and source.size > MAX_FILE_BYTES:
            ctx.skip(loc, f"ML tool config larger than {MAX_FILE_BYTES} bytes: exposure "
                     "rules not applied", inconclusive=True)
            return
        with source.open() as f:
            text = f.read(MAX_FILE_BYTES).decode("utf-8", errors="replace")
        ctx.fact(loc, "ml-tool-config", config=kind, tools=tools_named(text))
        for finding in check_text(kind, text, loc):
            ctx.add(finding)
