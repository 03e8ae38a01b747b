"""The JSON API's OpenAPI 3.1 description (served at ``/api/v1/openapi.json``).

Written out rather than generated from docstrings: it is the contract ``mlward push`` and
other clients rely on, and a test checks that every API route the app serves is in it."""

from __future__ import annotations

from typing import Any

from mlward._internal.inventory.documents import KINDS, SEVERITIES
from mlward._internal.inventory.store import ASSET_KINDS, MAX_PER_PAGE, STATUSES


def _q(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


_PAGING = [_q("page", "page number, from 1", type="integer", minimum=1),
           _q("per_page", f"items per page (at most {MAX_PER_PAGE})", type="integer",
              minimum=1, maximum=MAX_PER_PAGE)]
_PAGE = {"type": "object", "required": ["items", "total", "page", "per_page", "pages"],
         "properties": {"items": {"type": "array", "items": {"type": "object"}},
                        "total": {"type": "integer"}, "page": {"type": "integer"},
                        "per_page": {"type": "integer"}, "pages": {"type": "integer"}}}


def _get(summary: str, params: list[dict[str, Any]] | None = None,
         schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params or [], "responses": {
        "200": {"description": "OK", "content": {"application/json": {
            "schema": schema or {"type": "object"}}}},
        "401": {"description": "a token is required"}}}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def openapi() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "mlward dashboard API", "version": "1"},
        "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
        "security": [{"token": []}, {}],
        "paths": {
            "/api/v1/projects": _get("every project with its newest report, BOM, gate "
                                     "run and audit snapshot"),
            "/api/v1/projects/{name}/history": _get(
                "a project's reports, oldest first, with counts per severity",
                [_path("name")]),
            "/api/v1/findings": _get("findings of each project's newest reports", [
                _q("project", "project name"), _q("rule", "rule id, e.g. MW101"),
                _q("severity", "at or above", enum=list(SEVERITIES)),
                _q("path", "substring of the location"),
                _q("status", "triage status", enum=list(STATUSES)), *_PAGING], _PAGE),
            "/api/v1/assets": _get("models, datasets, dependencies, tools, buckets", [
                _q("kind", "asset kind", enum=list(ASSET_KINDS)), _q("project", "project"),
                _q("q", "substring of the name or location"), _q("format", "format"),
                *_PAGING], _PAGE),
            "/api/v1/assets/{id}": _get("one asset: facts, history, findings, lineage",
                                        [_path("id")]),
            "/api/v1/documents": _get("ingested documents, newest first", [
                _q("kind", "document kind", enum=list(KINDS)), _q("project", "project"),
                *_PAGING], _PAGE),
            "/api/v1/ledger": _get("ledger entries (newest first), checkpoints, verification",
                                   [_PAGING[0]]),
            "/api/v1/ledger/{index}/proof": _get(
                "an entry's inclusion proof checked against the latest signed checkpoint",
                [_path("index")]),
            "/api/v1/query": _get("a CEL expression over the inventory's input document",
                                  [_q("q", "the CEL expression")]),
            "/api/v1/events": {"get": {"summary": "server-sent events: `ingest` when a "
                                       "document arrives", "responses": {"200": {
                                           "description": "text/event-stream"}}}},
            "/api/v1/ingest": {"post": {
                "summary": "add a report, BOM, gate result or audit snapshot (idempotent "
                           "by digest)",
                "parameters": [_q("project", "file it under this project name"),
                               _q("action", "the command that made it")],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object"}}}},
                "responses": {"201": {"description": "ingested"},
                              "200": {"description": "already there"},
                              "400": {"description": "not JSON"},
                              "413": {"description": "too large"},
                              "415": {"description": "not application/json"},
                              "422": {"description": "not a document mlward made"}}}},
            "/api/v1/openapi.json": _get("this document"),
        },
    }
