"""A scanned project served for real: ``mlward init`` + ``mlward scan`` (inventory and
ledger), a BOM with lineage, a file whose name is an HTML payload; the dashboard started with
uvicorn on 127.0.0.1 in a thread."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from tests.inventory.conftest import lineage_bom

from mlward._internal.demo import MALICIOUS, build_demo_project
from mlward._internal.inventory import open_store, parse_document
from mlward._internal.web.app import ServeOptions, create_app
from mlward._internal.web.ledgerview import LedgerSource
from mlward.cli.main import main

HOSTILE = '"><img src=x onerror=alert(1)><script>alert(2)<\\script>.pkl'
"""A file name that is markup: it must show as text, never run."""
TOKEN = "t0ken-for-the-dashboard-tests-0123456789"


@dataclass
class Site:
    root: Path
    db: str
    url: str
    report: Path  # the scan's JSON report


@contextlib.contextmanager
def _in(folder: Path) -> Iterator[None]:
    here = Path.cwd()
    saved = os.environ.pop("MLWARD_DB", None)
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)
        if saved is not None:
            os.environ["MLWARD_DB"] = saved


def make_project(root: Path) -> Path:
    """Build, initialise and scan a project, sign two checkpoints; return its report."""
    root.mkdir(parents=True)
    build_demo_project(root)
    shutil.copyfile(root / MALICIOUS, root / HOSTILE)
    report = root.parent / f"{root.name}.json"
    with _in(root):
        assert main(["init", "-q"]) == 0
        assert main(["ledger", "checkpoint", "-q"]) == 0
        assert main(["scan", ".", "--executor", "inline", "-q", "-f", "json",
                     "-o", str(report)]) == 1
        assert main(["ledger", "checkpoint", "-q"]) == 0
    with open_store(str(root / ".mlward" / "inventory.db")) as store:
        store.ingest(parse_document(lineage_bom(root, root.name).to_dict()),
                     project=root.name)
    return report


def tamper(root: Path, index: int) -> None:
    """Rewrite a ledger entry's outcome in place, as someone with write access to the
    database would."""
    with contextlib.closing(sqlite3.connect(root / ".mlward" / "ledger.db")) as conn:
        (body,) = conn.execute("SELECT body FROM ledger_entries WHERE idx = ?",
                               (index,)).fetchone()
        text = bytes(body).replace(b'"outcome":"fail"', b'"outcome":"pass"')
        assert text != bytes(body)
        conn.execute("UPDATE ledger_entries SET body = ? WHERE idx = ?", (text, index))
        conn.commit()


@contextlib.contextmanager
def running(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port; yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def serve_project(root: Path, report: Path, *, token: str | None = None
                  ) -> contextlib.AbstractContextManager[Site]:
    @contextlib.contextmanager
    def serving() -> Iterator[Site]:
        db = str(root / ".mlward" / "inventory.db")
        app = create_app(open_store(db), ledger=LedgerSource(None, root),
                         options=ServeOptions(token=token, max_ingest=4 << 20))
        with running(app) as url:
            yield Site(root, db, url, report)

    return serving()


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("web") / "demo-project"
    return root, make_project(root)


@pytest.fixture(scope="session")
def site(project: tuple[Path, Path]) -> Iterator[Site]:
    """The scanned demo project, served (shared: tests that change it use their own)."""
    with serve_project(*project) as s:
        yield s


@pytest.fixture
def own_site(tmp_path: Path) -> Iterator[Site]:
    """A project and server of the test's own (for tests that push or tamper)."""
    root = tmp_path / "own-project"
    with serve_project(root, make_project(root)) as s:
        yield s
