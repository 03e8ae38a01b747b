"""Live, read-only probes of ML tool servers: MLflow, Ray, Jupyter, TensorBoard, Gradio.

Every request is a GET with no credentials, a timeout and a bound on the bytes read;
redirects are never followed (a probe stays on the address it was given). The probe
identifies the tool and its version where the tool shows it, checks whether an API that
lists or runs things answers without authentication, and matches the version against the
vulnerability data. It never submits a job, starts a kernel, opens a terminal or loads a
model, and it does not guess passwords.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mlward._internal.redact import redact_credentials
from mlward._internal.vulndb import VulnSource, assess
from mlward._version import __version__
from mlward.errors import UsageError
from mlward.findings import Fact, Finding, Location, Report, ReportBuilder, Severity, TargetKind
from mlward.rules import LIVE_TOOL, LIVE_UNAUTHENTICATED
from mlward.settings import Settings

MAX_BODY = 1 << 20
_VERSION = re.compile(r"^\d+(\.\d+)+([a-z0-9.+\-]*)$")


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is returned to the caller as it is


_OPENER = urllib.request.build_opener(_NoRedirect)


def get(base: str, path: str, timeout: float) -> Response | None:
    """GET ``base + path``; None when nothing answered (refused, timed out, not HTTP)."""
    url = base.rstrip("/") + path
    req = urllib.request.Request(url, method="GET", headers={"User-Agent": "mlward-probe",
                                                             "Accept": "application/json"})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                            resp.read(MAX_BODY))
    except urllib.error.HTTPError as exc:
        body = exc.read(MAX_BODY) if exc.fp is not None else b""
        return Response(exc.code, {k.lower(): v for k, v in exc.headers.items()}, body)
    except (urllib.error.URLError, OSError, ValueError):
        return None


@dataclass
class ProbeResult:
    url: str
    tool: str | None = None
    package: str | None = None
    """The PyPI package whose advisories apply to this tool."""
    version: str | None = None
    open_apis: list[str] = field(default_factory=list)
    """API paths that answered without authentication."""
    auth_required: list[str] = field(default_factory=list)
    reachable: bool = False


Fetch = Callable[[str], Response | None]


def _ray(fetch: Fetch, r: ProbeResult) -> bool:
    resp = fetch("/api/version")
    data = resp.json() if resp and resp.status == 200 else None
    if not isinstance(data, dict) or "ray_version" not in data:
        return False
    r.tool, r.package, r.version = "Ray", "ray", str(data["ray_version"])
    jobs = fetch("/api/jobs/")
    if jobs is not None and jobs.status == 200 and isinstance(jobs.json(), list):
        r.open_apis.append("/api/jobs/")
    elif jobs is not None and jobs.status in (401, 403):
        r.auth_required.append("/api/jobs/")
    return True


def _jupyter(fetch: Fetch, r: ProbeResult) -> bool:
    resp = fetch("/api")
    data = resp.json() if resp and resp.status == 200 else None
    if not isinstance(data, dict) or set(data) != {"version"}:
        return False
    r.tool, r.package, r.version = "Jupyter Server", "jupyter-server", str(data["version"])
    kernels = fetch("/api/kernels")
    if kernels is not None and kernels.status == 200 and isinstance(kernels.json(), list):
        r.open_apis.append("/api/kernels")
    elif kernels is not None and kernels.status in (401, 403):
        r.auth_required.append("/api/kernels")
    return True


_MLFLOW_SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


def _mlflow(fetch: Fetch, r: ProbeResult) -> bool:
    search = fetch(_MLFLOW_SEARCH)
    if search is None:
        return False
    data = search.json()
    if search.status == 200 and isinstance(data, dict) and (
            "experiments" in data or data == {}):
        r.open_apis.append(_MLFLOW_SEARCH)
    elif search.status == 401 and "basic" in search.headers.get("www-authenticate", "").lower():
        r.auth_required.append(_MLFLOW_SEARCH)
    else:
        return False
    r.tool, r.package = "MLflow", "mlflow"
    version = fetch("/version")
    text = version.body.decode("utf-8", "replace").strip() if version else ""
    if version is not None and version.status == 200 and _VERSION.match(text):
        r.version = text
    return True


def _tensorboard(fetch: Fetch, r: ProbeResult) -> bool:
    resp = fetch("/data/environment")
    data = resp.json() if resp and resp.status == 200 else None
    if not isinstance(data, dict) or "data_location" not in data:
        return False
    r.tool, r.package = "TensorBoard", "tensorboard"
    r.version = str(data["version"]) if data.get("version") else None
    r.open_apis.append("/data/environment")
    return True


def _gradio(fetch: Fetch, r: ProbeResult) -> bool:
    resp = fetch("/config")
    if resp is None:
        return False
    data = resp.json()
    if resp.status == 200 and isinstance(data, dict) and "components" in data:
        r.tool, r.package = "Gradio", "gradio"
        r.version = str(data["version"]) if data.get("version") else None
        r.open_apis.append("/config")
        return True
    return False


FINGERPRINTS = (_ray, _jupyter, _mlflow, _tensorboard, _gradio)
# Tools whose API runs code: an unauthenticated answer is critical.
_RUNS_CODE = frozenset({"Ray", "Jupyter Server"})


def probe(url: str, *, timeout: float = 5.0) -> ProbeResult:
    """Identify the ML tool at ``url`` with read-only GET requests."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"not an http(s) URL: {redact_credentials(url)}")
    base = url.rstrip("/")
    r = ProbeResult(base)
    cache: dict[str, Response | None] = {}

    def fetch(path: str) -> Response | None:
        if path not in cache:
            cache[path] = get(base, path, timeout)
        return cache[path]

    root = fetch("/")
    r.reachable = root is not None
    if not r.reachable:
        return r
    for fingerprint in FINGERPRINTS:
        if fingerprint(fetch, r):
            break
    return r


def where(url: str) -> Location:
    """The location a probed URL is reported at: its credentials redacted (a URL given as
    ``http://user:password@host`` is used as given, and never shown so)."""
    return Location(redact_credentials(url))


def findings_for(r: ProbeResult, source: VulnSource | None,
                 blind: str | None = None) -> tuple[list[Finding], list[str]]:
    """Findings for one probe, and notes on what could not be judged (``blind``: why the
    vulnerability data cannot be used, when it cannot)."""
    loc = where(r.url)
    notes: list[str] = []
    if r.tool is None:
        return [], ["no MLflow, Ray, Jupyter, TensorBoard or Gradio server recognised"]
    findings = [LIVE_TOOL.finding(
        loc, f"{r.tool} {r.version or '(version not shown)'} at {r.url}"
        + (f"; requires authentication for {', '.join(r.auth_required)}"
           if r.auth_required else ""),
        evidence=r.version, details={"tool": r.tool, "version": r.version,
                                     "open_apis": r.open_apis,
                                     "auth_required": r.auth_required})]
    for path in r.open_apis:
        severity = Severity.CRITICAL if r.tool in _RUNS_CODE else (
            Severity.MEDIUM if r.tool in ("TensorBoard", "Gradio") else Severity.HIGH)
        findings.append(LIVE_UNAUTHENTICATED.finding(
            loc, f"{r.tool} answers {path} without authentication", evidence=path,
            severity=severity, details={"tool": r.tool, "path": path}))
    if r.version and r.package:
        if source is None or blind:
            notes.append(f"{blind}: the version was not matched" if blind else
                         "vulnerability data not available: the version was not matched "
                         "(use --vuln-db or --online)")
        else:
            from mlward._internal.scanners.deps.check import DependencyResult, check_dependencies
            from mlward._internal.scanners.deps.check import findings_for as dependency_findings
            from mlward._internal.scanners.deps.model import Dependency

            dep = Dependency(r.package, loc, f"=={r.version}", origin="probe")
            results: list[DependencyResult] = check_dependencies([dep], source)
            findings.extend(dependency_findings(results))
    elif r.package:
        notes.append(f"{r.tool} does not show its version: advisories not matched")
    return findings, notes


def probe_report(urls: Sequence[str], *, timeout: float = 5.0,
                 source: VulnSource | None = None, settings: Settings | None = None) -> Report:
    """Probe each URL and report as a scan does."""
    from mlward._internal.triage import make_triage

    settings = settings or Settings()
    builder = ReportBuilder(TargetKind.SERVER, started=datetime.now(timezone.utc),
                            version=__version__,
                            inputs=[redact_credentials(u) for u in urls])
    assessment = None if source is None else assess(source, settings)
    if assessment is not None:
        assessment.record(builder)
    for url in urls:
        r = probe(url, timeout=timeout)
        if not r.reachable:
            builder.skip(where(url), "no HTTP answer", inconclusive=True)
            continue
        found, notes = findings_for(r, source, assessment.blind if assessment else None)
        builder.merge(found)
        if r.tool:
            builder.examine(where(r.url), f"live {r.tool}")
            builder.fact(Fact(where(r.url), "server", {
                "tool": r.tool, "version": r.version, "package": r.package,
                "open_apis": list(r.open_apis), "auth_required": list(r.auth_required)}))
        for n in notes:
            builder.skip(where(r.url), n, inconclusive=r.tool is not None)
    return builder.build(finished=datetime.now(timezone.utc),
                         triage=make_triage(settings, None))
