"""``mlward watch``: an edit is in the ledger within a second, with its digest and the one it
replaced; a rename is one entry; a new model file is scanned at once (and never run)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlward._internal.audit.watch import Watcher
from mlward._internal.demo import malicious_pickle
from mlward._internal.ledger import open_ledger

from .conftest import SETTINGS, audit

pytest.importorskip("watchfiles")


@pytest.fixture
def watching(project: Path) -> Iterator[tuple[Path, list[str]]]:
    audit(project)  # the watcher starts from the snapshot's digests
    lines: list[str] = []
    recorded = threading.Event()
    stop, ready = threading.Event(), threading.Event()

    def on_record(line: str) -> None:
        lines.append(line)
        recorded.set()

    watcher = Watcher(project, SETTINGS, debounce_ms=100, on_record=on_record, stop=stop,
                      ready=ready)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    assert ready.wait(30), "the watch did not start"
    try:
        yield project, lines
    finally:
        stop.set()
        thread.join(30)


def _events(root: Path, since: int) -> list[tuple[str, str, dict[str, str]]]:
    with open_ledger(None, root) as ledger:
        return [(e.event.action, e.event.resource, dict(e.event.digests))
                for e in (ledger.entry(i) for i in range(since, ledger.size()))]


def _wait_for(root: Path, since: int, action: str, within: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if any(a == action for a, _, _ in _events(root, since)):
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"no {action} entry within {within} s: {_events(root, since)}")


def test_an_edit_is_recorded_within_a_second(watching: tuple[Path, list[str]]) -> None:
    root, lines = watching
    with open_ledger(None, root) as ledger:
        since = ledger.size()
    content = b"text,label\ngood,0\n"
    (root / "data/train.csv").write_bytes(content)
    _wait_for(root, since, "watch.modified", within=1.0)
    with open_ledger(None, root) as ledger:
        entry = ledger.entry(since)
    assert entry.event.resource == (root / "data/train.csv").as_uri()
    assert entry.event.digests == {"sha256": hashlib.sha256(content).hexdigest()}
    assert entry.event.details["previous"].startswith("sha256:")  # from the snapshot
    deadline = time.monotonic() + 5  # the line is printed just after the entry is appended
    while not lines and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lines and "watch.modified" in lines[0]


def test_a_rename_is_one_entry(watching: tuple[Path, list[str]]) -> None:
    root, _ = watching
    with open_ledger(None, root) as ledger:
        since = ledger.size()
    (root / "data/test.csv").rename(root / "data/holdout.csv")
    _wait_for(root, since, "watch.renamed", within=10.0)
    events = _events(root, since)
    assert [a for a, _, _ in events] == ["watch.renamed"]


def test_a_new_model_is_scanned_at_once_and_never_run(watching: tuple[Path, list[str]],
                                                      marker: Path) -> None:
    root, _ = watching
    with open_ledger(None, root) as ledger:
        since = ledger.size()
    (root / "models/new.pkl").write_bytes(malicious_pickle(f"touch {marker}"))
    _wait_for(root, since, "scan", within=10.0)
    with open_ledger(None, root) as ledger:
        scans = [ledger.entry(i) for i in range(since, ledger.size())
                 if ledger.entry(i).event.action == "scan"]
    assert scans[0].event.outcome == "fail"
    assert scans[0].event.details["verdicts"] == {"models/new.pkl": "dangerous"}
    assert not marker.exists()


def test_left_out_paths_are_not_recorded(project: Path) -> None:
    watcher = Watcher(project, SETTINGS)
    assert watcher._wanted(None, str(project / ".mlward" / "ledger.db")) is False
    assert watcher._wanted(None, str(project / ".git" / "index")) is False
    assert watcher._wanted(None, str(project / "data" / "x.csv")) is True
