"""``mlward serve`` (the dashboard), ``mlward push`` (send a result to one) and ``mlward
query`` (a CEL expression over the inventory)."""

from __future__ import annotations

import argparse
import csv
import io
import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from mlward.errors import UsageError

DEFAULT_PORT = 8765
TOKEN_ENV = "MLWARD_TOKEN"
MIN_TOKEN = 24


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="the web dashboard and JSON API over the inventory and the ledger",
        description="Serve the dashboard (overview, inventory, model pages with lineage, "
        "findings, ledger proofs, gates and audits, query) and its JSON API (/api/v1/, "
        "OpenAPI at /api/v1/openapi.json) over the inventory. Binds 127.0.0.1 by default; "
        "any other address needs an access token (--token-file, or MLWARD_TOKEN).")
    p.add_argument("--host", default=None, help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=None,
                   help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--token-file", type=Path, metavar="FILE",
                   help="file holding the access token that pages, the API and push need")
    p.add_argument("--inventory", metavar="DB",
                   help="inventory database: a path or postgresql:// URL (default: [inventory] "
                   "db, else .mlward/inventory.db)")
    p.set_defaults(func=run_serve)

    p = sub.add_parser(
        "push", help="send a report, BOM or gate result (JSON) to an mlward server",
        description="POST JSON results (mlward scan/gate --format json, mlward bom --format "
        "inventory) to a server's /api/v1/ingest. The token comes from --token-file or "
        "MLWARD_TOKEN; a server that is not on this machine must be reached over HTTPS.")
    p.add_argument("url", help="the server, e.g. https://mlward.example.com")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="JSON documents")
    p.add_argument("--project", help="file them under this project name (default: the "
                   "name of the folder they were made in)")
    p.add_argument("--token-file", type=Path, metavar="FILE", help="file holding the token")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.set_defaults(func=run_push)

    p = sub.add_parser(
        "query", help="a CEL expression over the inventory (the gate's input document)",
        description="Evaluate a CEL expression over every project's newest scan in the "
        "inventory: the same language and document as `mlward gate` policies (collections "
        "findings, models, notebooks, dependencies, bom, projects; each item has project). "
        "Example: 'models.filter(m, m.pickle && !m.signature.trusted)'.")
    p.add_argument("expression", help="the CEL expression")
    p.add_argument("--format", "-f", choices=("table", "json", "csv"), default="table",
                   help="output format (default: table)")
    p.add_argument("--inventory", metavar="DB", help="inventory database (as for serve)")
    p.set_defaults(func=run_query_command)


def _inventory_db(args: argparse.Namespace) -> str:
    from mlward.cli.inventory import inventory_config

    db = args.inventory or inventory_config(args.settings).db
    if db is None:
        raise UsageError("no inventory here: run `mlward init` (results are then kept in "
                         ".mlward/inventory.db), or give --inventory / [inventory] db")
    return str(db)


def _token(path: Path | None) -> str | None:
    if path is not None:
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the token file {path}: {exc.strerror}") from None
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if token and len(token) < MIN_TOKEN:
        raise UsageError(f"the access token is shorter than {MIN_TOKEN} characters")
    return token or None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_serve(args: argparse.Namespace) -> int:
    section = args.settings.section("serve")
    host = str(args.host or section.get("host") or "127.0.0.1")
    port = args.port if args.port is not None else int(section.get("port", DEFAULT_PORT))
    token = _token(args.token_file or (Path(section["token_file"])
                                       if section.get("token_file") else None))
    _require_token(host, token)  # before anything else: a refusal names the real problem
    return serve(args.settings, host=host, port=port, token=token,
                 db=_inventory_db(args))


def _require_token(host: str, token: str | None) -> None:
    if not _loopback(host) and token is None:
        raise UsageError(f"refusing to serve on {host} without an access token: give "
                         f"--token-file FILE or set {TOKEN_ENV} (or bind 127.0.0.1)")


def serve(settings: Any, *, host: str, port: int, token: str | None, db: str) -> int:
    """Serve the dashboard over the inventory ``db`` (and the project's ledger) until
    interrupted; refuses an address other than loopback without a token."""
    import uvicorn

    from mlward._internal.inventory import open_store
    from mlward._internal.ledger import find_project
    from mlward._internal.ledger.project import resolve
    from mlward._internal.web.app import DEFAULT_MAX_INGEST, ServeOptions, create_app
    from mlward._internal.web.ledgerview import LedgerSource

    _require_token(host, token)
    ledger = None
    if resolve(settings.db) is not None:
        ledger = LedgerSource(settings.db, find_project())
    hosts = ("127.0.0.1", "localhost", "[::1]", "::1") if _loopback(host) else ("*",)
    max_ingest = int(settings.section("serve").get("max_ingest_bytes", DEFAULT_MAX_INGEST))
    options = ServeOptions(token=token, allowed_hosts=hosts, max_ingest=max_ingest)
    app = create_app(open_store(db), ledger=ledger, options=options)
    if not settings.quiet:
        where = db if "://" not in db else db.split("@")[-1]
        print(f"mlward: serving {where} on http://{host}:{port}/ (Ctrl-C stops)",
              file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False,
                proxy_headers=False)
    return 0


def run_push(args: argparse.Namespace) -> int:
    import httpx

    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{args.url}: give the server as http(s)://HOST[:PORT]")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise UsageError(f"{args.url}: a server that is not on this machine must be reached "
                         "over https:// (the token and the results would travel in clear)")
    token = _token(args.token_file)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    query = {"project": args.project} if args.project else {}
    endpoint = args.url.rstrip("/") + "/api/v1/ingest" + (f"?{urlencode(query)}" if query else "")
    failed = 0
    with httpx.Client(timeout=args.timeout, follow_redirects=False, trust_env=False) as client:
        for path in args.files:
            try:
                body = path.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read {path}: {exc.strerror}") from None
            try:
                r = client.post(endpoint, content=body, headers=headers)
            except httpx.HTTPError as exc:
                print(f"mlward: {path}: the server could not be reached: {exc}",
                      file=sys.stderr)
                return 2
            if r.status_code in (200, 201):
                d = r.json()
                if not args.settings.quiet:
                    state = "ingested" if r.status_code == 201 else "already there"
                    print(f"{path}: {state} for project {d.get('project')} "
                          f"({str(d.get('digest'))[:16]}...)", file=sys.stderr)
            else:
                failed += 1
                print(f"mlward: {path}: refused ({r.status_code}): "
                      f"{r.text[:300]}", file=sys.stderr)
    return 2 if failed else 0


def run_query_command(args: argparse.Namespace) -> int:
    from mlward._internal.inventory import open_store
    from mlward._internal.policy.query import inventory_document, run_query

    with open_store(_inventory_db(args)) as store:
        document = inventory_document(store.current_bodies("report"))
    result = run_query(args.expression, document)
    if args.format == "json":
        sys.stdout.write(json.dumps(result.rows, indent=1, default=str) + "\n")
    elif args.format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=result.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _csv_cell(v) for k, v in r.items()} for r in result.rows)
        sys.stdout.write(out.getvalue())
    else:
        sys.stdout.write(_table(result.columns, result.rows))
    if result.truncated:
        print("mlward: warning: only the first rows are shown", file=sys.stderr)
    return 0


def _csv_cell(value: Any) -> Any:
    """Values from scanned files are attacker-controlled: one that a spreadsheet would read
    as a formula (=, +, -, @) is quoted with a leading apostrophe (OWASP CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _table(columns: list[str], rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)\n"
    text = [[str(c) for c in columns]] + [
        ["" if r.get(c) is None else str(r.get(c)).replace("\n", " ")[:80] for c in columns]
        for r in rows]
    widths = [max(len(row[i]) for row in text) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in text]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
