"""The OSV web API (only when the user asks with ``--online``) and the PyPI export download.

The API base URL and the export URL come from the settings (``osv_api``, ``osv_export``).
Both go through :mod:`urllib` with timeouts and size bounds; any failure is an
:class:`OsvUnavailable`, never an empty answer.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from mlward._internal.vulndb.coverage import Coverage
from mlward._internal.vulndb.records import Advisory, parse_record
from mlward.errors import FormatError, MlwardError

MAX_RESPONSE_BYTES = 64 << 20
MAX_EXPORT_BYTES = 2 << 30
BATCH = 1000
MAX_PAGES = 20
TIMEOUT = 30.0


class OsvUnavailable(MlwardError):
    """The OSV service or export could not be reached or answered nonsense."""


def _request(url: str, body: object | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json",
                                          "User-Agent": "mlward"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            raw = resp.read(MAX_RESPONSE_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise OsvUnavailable(f"OSV API not reachable at {url}: {exc}") from exc
    if len(raw) > MAX_RESPONSE_BYTES:
        raise OsvUnavailable(f"OSV API answer from {url} is larger than {MAX_RESPONSE_BYTES} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise OsvUnavailable(f"OSV API at {url} did not answer JSON: {exc}") from exc


def batch_queries(names: Iterable[str]) -> list[dict[str, Any]]:
    """One querybatch entry per package: every advisory of the package, matched locally."""
    return [{"package": {"name": n, "ecosystem": "PyPI"}} for n in sorted(set(names))]


class OsvApi:
    """Advisories from the OSV API: ``/v1/querybatch`` for ids, ``/v1/vulns/ID`` for records."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self._records: dict[str, Advisory | None] = {}

    @property
    def description(self) -> str:
        return f"OSV API at {self.base}"

    def coverage(self) -> list[Coverage]:
        return [Coverage(self.description, self.base, live=True)]

    def _ids(self, names: list[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {n: set() for n in names}
        pending = batch_queries(names)
        for _ in range(MAX_PAGES):
            if not pending:
                return out
            next_round: list[dict[str, Any]] = []
            for start in range(0, len(pending), BATCH):
                chunk = pending[start:start + BATCH]
                answer = _request(f"{self.base}/v1/querybatch", {"queries": chunk})
                results = answer.get("results") if isinstance(answer, dict) else None
                if not isinstance(results, list) or len(results) != len(chunk):
                    raise OsvUnavailable("OSV querybatch answer does not match the query")
                for query, result in zip(chunk, results, strict=True):
                    name = query["package"]["name"]
                    if not isinstance(result, dict):
                        raise OsvUnavailable("OSV querybatch result is not an object")
                    for vuln in result.get("vulns") or []:
                        if isinstance(vuln, dict) and isinstance(vuln.get("id"), str):
                            out[name].add(vuln["id"])
                    if token := result.get("next_page_token"):
                        next_round.append({**query, "page_token": token})
            pending = next_round
        raise OsvUnavailable(f"OSV querybatch still paging after {MAX_PAGES} pages")

    def _record(self, vid: str) -> Advisory | None:
        if vid not in self._records:
            data = _request(f"{self.base}/v1/vulns/{urllib.parse.quote(vid)}")
            try:
                self._records[vid] = parse_record(data)
            except FormatError as exc:
                raise OsvUnavailable(f"OSV record {vid} is malformed: {exc}") from exc
        return self._records[vid]

    def advisories_for(self, names: Iterable[str]) -> dict[str, list[Advisory]]:
        keys = sorted({str(canonicalize_name(n)) for n in names})
        out: dict[str, list[Advisory]] = {}
        for name, ids in self._ids(keys).items():
            advs = [a for a in (self._record(i) for i in sorted(ids)) if a is not None]
            if advs:
                out[name] = advs
        return out


def download_export(target: Path, url: str) -> Path:
    """Download OSV's PyPI export to ``target`` (atomically) and check it is a zip."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        total = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
                    while chunk := resp.read(1 << 20):
                        total += len(chunk)
                        if total > MAX_EXPORT_BYTES:
                            raise OsvUnavailable(f"{url} is larger than {MAX_EXPORT_BYTES} bytes")
                        out.write(chunk)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise OsvUnavailable(f"cannot download {url}: {exc}") from exc
        if not zipfile.is_zipfile(tmp):
            raise OsvUnavailable(f"{url} did not return a zip file")
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
