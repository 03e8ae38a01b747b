"""The dashboard: a Starlette application over the inventory (pages and the JSON API share
the store's queries) and the project's ledger (read-only).

Security of the server itself, in order of the request's path:
- ``TrustedHostMiddleware``: only the host names it was started for (a loopback server
  answers 127.0.0.1/localhost only, which defeats DNS rebinding);
- every response carries a strict Content-Security-Policy (scripts and styles from this
  server only, no inline script, nothing framed), ``nosniff`` and ``no-referrer``;
- with a token, every request but ``/login`` and ``/static`` needs it: ``Authorization:
  Bearer`` (the API, ``mlward push``) or the session cookie ``/login`` sets (an HMAC of the
  token, never the token), both compared with :func:`hmac.compare_digest`;
- anything that changes state is a POST refused when the browser says it comes from another
  site (``Sec-Fetch-Site``/``Origin``); ingest also needs ``application/json`` (which a
  cross-site form cannot send) and is read up to ``max_ingest`` bytes, then 413;
- every value is rendered by Jinja2 with autoescaping on: file names, evidence and model
  card text are attacker-controlled.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib.util
import json
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from mlward._internal.inventory import DocumentError, InventoryError, InventoryStore
from mlward._internal.inventory.documents import KINDS, SEVERITIES, parse_document
from mlward._internal.inventory.store import (
    ASSET_KINDS,
    STATUSES,
    AssetFilters,
    FindingFilters,
)
from mlward._internal.ledger import LedgerError
from mlward._internal.web import ledgerview, svg
from mlward._internal.web.ledgerview import LedgerSource
from mlward._internal.web.openapi import openapi
from mlward.findings import Severity

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SESSION_COOKIE = "mlward_session"
DEFAULT_MAX_INGEST = 64 << 20
LIVE_POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0


@dataclass(frozen=True)
class ServeOptions:
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]", "::1")
    max_ingest: int = DEFAULT_MAX_INGEST


def _session_value(token: str) -> str:
    return hmac.new(token.encode(), b"mlward-dashboard-session", hashlib.sha256).hexdigest()


class _Security:
    """Headers on every response; the token on every request that needs one; no cross-site
    state changes."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refuse(request)

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY"),
                            (b"cache-control", b"no-store")]
                message = {**message, "headers": headers}
            await send(message)

        if refusal is not None:
            await refusal(scope, receive, with_headers)
        else:
            await self.app(scope, receive, with_headers)

    def _refuse(self, request: Request) -> Response | None:
        if request.method not in ("GET", "HEAD") and _cross_site(request):
            return JSONResponse({"error": "cross-site request refused"}, 403)
        path = request.url.path
        if self.token is None or path == "/login" or path.startswith("/static/"):
            return None
        if self.authenticated(request):
            return None
        if path.startswith("/api/"):
            return JSONResponse({"error": "a token is required (Authorization: Bearer)"}, 401,
                                headers={"www-authenticate": "Bearer"})
        return RedirectResponse("/login", 303)

    def authenticated(self, request: Request) -> bool:
        assert self.token is not None
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return hmac.compare_digest(header[7:].strip().encode(), self.token.encode())
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return hmac.compare_digest(cookie.encode(), _session_value(self.token).encode())


def _cross_site(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("origin")
    # The host only: behind a TLS proxy the browser's scheme is not the one the server sees.
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host")


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def _finding_filters(q: Mapping[str, str]) -> FindingFilters:
    severity = None
    if q.get("severity"):
        try:
            severity = Severity.parse(q["severity"])
        except ValueError:
            severity = None
    status = q.get("status") if q.get("status") in STATUSES else None
    return FindingFilters(project=q.get("project") or None, rule=q.get("rule") or None,
                          severity=severity, path=q.get("path") or None, status=status)


def _asset_filters(q: Mapping[str, str]) -> AssetFilters:
    kind = q.get("kind") if q.get("kind") in ASSET_KINDS else None
    return AssetFilters(kind=kind, project=q.get("project") or None, q=q.get("q") or None,
                        format=q.get("format") or None)


def _templates() -> Environment:
    folder = resources.files("mlward") / "_internal" / "web" / "templates"
    env = Environment(loader=FileSystemLoader(str(folder)),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals.update(severities=SEVERITIES, asset_kinds=ASSET_KINDS, statuses=STATUSES)
    env.filters["pretty"] = lambda v: json.dumps(v, indent=1, sort_keys=True, default=str)
    return env


def run_query(store: InventoryStore, expression: str) -> dict[str, Any]:
    """The query box and ``/api/v1/query``: rows, or the reason the expression fails."""
    from mlward._internal.policy.query import QueryError, inventory_document
    from mlward._internal.policy.query import run_query as evaluate

    try:
        return evaluate(expression, inventory_document(store.current_bodies("report"))
                        ).to_dict()
    except QueryError as exc:
        return {"error": str(exc)}


def create_app(store: InventoryStore, *, ledger: LedgerSource | None = None,
               options: ServeOptions | None = None) -> Starlette:
    """The dashboard over ``store`` (and ``ledger``, when the project has one)."""
    options = options or ServeOptions()
    env = _templates()
    has_query = importlib.util.find_spec("celpy") is not None  # the policy extra
    security_token = options.token

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        query = dict(request.query_params)

        def link(**changes: Any) -> str:
            merged = {**query, **changes}
            return "?" + urlencode({k: v for k, v in merged.items() if v not in (None, "")})

        html = env.get_template(name).render(
            request=request, query=query, link=link, path=request.url.path,
            has_ledger=ledger is not None, has_query=has_query,
            logged_in=security_token is not None, **context)
        return HTMLResponse(html, status)

    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    # --- pages ---------------------------------------------------------------------------

    async def overview(request: Request) -> Response:
        projects = await call(store.projects)
        for p in projects:
            p["chart"] = svg.chart(await call(store.history, p["name"]))
        critical = await call(store.findings, FindingFilters(severity=Severity.CRITICAL),
                              per_page=10)
        head = None
        if ledger is not None:
            try:
                head = await call(ledgerview.overview, ledger, page=1, per_page=1,
                                  verify=False)
            except LedgerError as exc:
                head = {"error": str(exc)}
        return page(request, "overview.html", projects=projects, critical=critical.items,
                    ledger_head=head)

    async def inventory(request: Request) -> Response:
        q = dict(request.query_params)
        result = await call(store.assets, _asset_filters(q), page=_int(q.get("page"), 1))
        return page(request, "inventory.html", result=result)

    async def asset(request: Request) -> Response:
        found = await call(store.asset, _int(request.path_params["id"], 0))
        if found is None:
            return page(request, "error.html", 404, message="no such asset")
        return page(request, "asset.html", asset=found, graph=svg.lineage(found["lineage"]))

    async def findings_page(request: Request) -> Response:
        q = dict(request.query_params)
        result = await call(store.findings, _finding_filters(q), page=_int(q.get("page"), 1))
        return page(request, "findings.html", result=result)

    async def ledger_page(request: Request) -> Response:
        if ledger is None:
            return page(request, "error.html", 404, message="this server has no ledger")
        try:
            view = await call(ledgerview.overview, ledger,
                              page=_int(request.query_params.get("page"), 1))
        except LedgerError as exc:
            return page(request, "error.html", 500, message=f"the ledger: {exc}")
        check = None
        if request.query_params.get("old") and request.query_params.get("new"):
            check = await call(ledgerview.consistency, ledger,
                               _int(request.query_params["old"], -1),
                               _int(request.query_params["new"], -1))
        return page(request, "ledger.html", ledger=view, consistency=check)

    async def proof_page(request: Request) -> Response:
        if ledger is None:
            return page(request, "error.html", 404, message="this server has no ledger")
        try:
            proof = await call(ledgerview.prove, ledger, _int(request.path_params["index"], -1))
        except LedgerError as exc:
            return page(request, "error.html", 404, message=str(exc))
        return page(request, "proof.html", proof=proof)

    async def gates(request: Request) -> Response:
        q = dict(request.query_params)
        runs = {kind: await call(store.documents, kind=kind, project=q.get("project") or None,
                                 per_page=50) for kind in ("gate", "audit", "bom")}
        sent = None
        if ledger is not None:
            try:
                sent = await call(ledgerview.alerts, ledger)
            except LedgerError:
                sent = None
        return page(request, "gates.html", runs=runs, alerts=sent)

    async def query_page(request: Request) -> Response:
        expr = request.query_params.get("q", "")
        result = None
        if expr and has_query:
            result = await call(run_query, store, expr)
        return page(request, "query.html", expr=expr, result=result)

    async def login(request: Request) -> Response:
        if security_token is None:
            return RedirectResponse("/", 303)
        if request.method == "GET":
            return page(request, "login.html")
        body = (await request.body())[:4096].decode("utf-8", "replace")
        given = (parse_qs(body).get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), security_token.encode()):
            return page(request, "login.html", 401, failed=True)
        response = RedirectResponse("/", 303)
        response.set_cookie(SESSION_COOKIE, _session_value(security_token), httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    # --- API -----------------------------------------------------------------------------

    async def api_projects(request: Request) -> Response:
        return JSONResponse({"items": await call(store.projects)})

    async def api_history(request: Request) -> Response:
        return JSONResponse({"items": await call(store.history, request.path_params["name"])})

    async def api_findings(request: Request) -> Response:
        q = dict(request.query_params)
        result = await call(store.findings, _finding_filters(q), page=_int(q.get("page"), 1),
                            per_page=_int(q.get("per_page"), 50))
        return JSONResponse(result.to_dict())

    async def api_assets(request: Request) -> Response:
        q = dict(request.query_params)
        result = await call(store.assets, _asset_filters(q), page=_int(q.get("page"), 1),
                            per_page=_int(q.get("per_page"), 50))
        return JSONResponse(result.to_dict())

    async def api_asset(request: Request) -> Response:
        found = await call(store.asset, _int(request.path_params["id"], 0))
        return JSONResponse(found) if found else JSONResponse({"error": "no such asset"}, 404)

    async def api_documents(request: Request) -> Response:
        q = dict(request.query_params)
        kind = q.get("kind") if q.get("kind") in KINDS else None
        result = await call(store.documents, kind=kind, project=q.get("project") or None,
                            page=_int(q.get("page"), 1), per_page=_int(q.get("per_page"), 50))
        return JSONResponse(result.to_dict())

    async def api_ledger(request: Request) -> Response:
        if ledger is None:
            return JSONResponse({"error": "this server has no ledger"}, 404)
        try:
            return JSONResponse(await call(ledgerview.overview, ledger,
                                           page=_int(request.query_params.get("page"), 1)))
        except LedgerError as exc:
            return JSONResponse({"error": str(exc)}, 500)

    async def api_proof(request: Request) -> Response:
        if ledger is None:
            return JSONResponse({"error": "this server has no ledger"}, 404)
        try:
            return JSONResponse(await call(ledgerview.prove, ledger,
                                           _int(request.path_params["index"], -1)))
        except LedgerError as exc:
            return JSONResponse({"error": str(exc)}, 404)

    async def api_query(request: Request) -> Response:
        if not has_query:
            return JSONResponse({"error": "query needs cel-python (pip install "
                                 "'mlward[policy]')"}, 404)
        return JSONResponse(await call(run_query, store, request.query_params.get("q", "")))

    async def api_ingest(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "send the document as application/json"}, 415)
        declared = _int(request.headers.get("content-length"), 0)
        if declared > options.max_ingest:
            return JSONResponse({"error": f"larger than {options.max_ingest} bytes"}, 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > options.max_ingest:
                return JSONResponse({"error": f"larger than {options.max_ingest} bytes"}, 413)
            chunks.append(chunk)
        try:
            data = json.loads(b"".join(chunks))
            doc = await call(parse_document, data, action=request.query_params.get("action"))
        except (ValueError, RecursionError) as exc:
            return JSONResponse({"error": f"not JSON: {exc}"[:300]}, 400)
        except DocumentError as exc:
            return JSONResponse({"error": str(exc)[:500]}, 422)
        try:
            result = await call(store.ingest, doc,
                                project=request.query_params.get("project") or None,
                                source="push")
        except InventoryError as exc:
            return JSONResponse({"error": str(exc)[:500]}, 500)
        return JSONResponse({"digest": result.digest, "project": result.project,
                             "created": result.created}, 201 if result.created else 200)

    async def api_events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            seen = await call(store.version)
            yield f"retry: 2000\nevent: hello\ndata: {json.dumps({'version': seen})}\n\n"
            quiet = 0.0
            while not await request.is_disconnected():
                await asyncio.sleep(LIVE_POLL_SECONDS)
                now = await call(store.version)
                if now != seen:
                    seen, quiet = now, 0.0
                    yield f"event: ingest\ndata: {json.dumps({'version': now})}\n\n"
                else:
                    quiet += LIVE_POLL_SECONDS
                    if quiet >= HEARTBEAT_SECONDS:
                        quiet = 0.0
                        yield ": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})

    async def api_openapi(request: Request) -> Response:
        return JSONResponse(openapi())

    routes = [
        Route("/", overview), Route("/inventory", inventory), Route("/assets/{id}", asset),
        Route("/findings", findings_page), Route("/ledger", ledger_page),
        Route("/ledger/{index}", proof_page), Route("/gates", gates),
        Route("/query", query_page), Route("/login", login, methods=["GET", "POST"]),
        Route("/api/v1/projects", api_projects),
        Route("/api/v1/projects/{name}/history", api_history),
        Route("/api/v1/findings", api_findings), Route("/api/v1/assets", api_assets),
        Route("/api/v1/assets/{id}", api_asset), Route("/api/v1/documents", api_documents),
        Route("/api/v1/ledger", api_ledger), Route("/api/v1/ledger/{index}/proof", api_proof),
        Route("/api/v1/query", api_query), Route("/api/v1/events", api_events),
        Route("/api/v1/ingest", api_ingest, methods=["POST"]),
        Route("/api/v1/openapi.json", api_openapi),
        Mount("/static", StaticFiles(
            directory=str(resources.files("mlward") / "_internal" / "web" / "static")),
            name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(options.allowed_hosts)),
                  Middleware(_Security, token=options.token)]
    return Starlette(routes=routes, middleware=middleware)

