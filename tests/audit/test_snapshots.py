"""Snapshots: recorded, content-addressed, compared; incomplete ones marked; killed ones absent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlward._internal.audit.diff import diff_snapshots
from mlward._internal.audit.errors import AuditError
from mlward._internal.audit.record import recorded, snapshot_folder
from mlward._internal.audit.snapshot import KIND, Snapshot
from mlward._internal.audit.steps import STEPS, Step, StepOutcome
from mlward._internal.ledger import open_ledger
from mlward.findings import Severity
from mlward.settings import Settings

from .conftest import SETTINGS, audit, write


def _entries(root: Path) -> list[str]:
    with open_ledger(None, root) as ledger:
        return [r.id for r in recorded(ledger)]


def test_snapshot_is_committed_as_one_entry_with_a_signed_checkpoint(project: Path) -> None:
    with open_ledger(None, project) as ledger:
        before = ledger.size()
    result = audit(project)
    with open_ledger(None, project) as ledger:
        assert ledger.size() == before + 1
        entry = ledger.entry(result.entry)
        assert ledger.verify().ok
    assert entry.event.action == "audit.snapshot"
    assert entry.event.digests == {"sha256": result.id}
    assert result.checkpoint is not None and f"\n{before + 1}\n" in result.checkpoint
    raw = (snapshot_folder(project / ".mlward") / f"{result.id}.json").read_bytes()
    import hashlib

    assert hashlib.sha256(raw).hexdigest() == result.id  # content-addressed
    doc = json.loads(raw)
    assert doc["kind"] == KIND and doc["complete"] is True, doc["incomplete"]
    kinds = {f["path"]: f["kind"] for f in doc["files"]}
    assert kinds == {"data/train.csv": "data", "data/test.csv": "data",
                     "models/weights.npy": "model", "train.py": "code"}
    assert doc["created"]["user"] and doc["created"]["host"] and doc["created"]["cwd"]
    assert {s["name"] for s in doc["steps"]} >= {"scan", "deps", "manifests", "lineage"}


def test_snapshot_round_trips_and_refuses_edits(project: Path) -> None:
    result = audit(project)
    s = result.snapshot
    assert Snapshot.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    raw = s.canonical()
    assert Snapshot.from_bytes(raw, result.id) == s
    with pytest.raises(AuditError, match="content digest"):
        Snapshot.from_bytes(raw.replace(b"train.csv", b"trait.csv"), result.id)
    with pytest.raises(AuditError, match="canonical"):
        Snapshot.from_bytes(json.dumps(s.to_dict(), indent=1).encode())
    newer = {**s.to_dict(), "schemaVersion": 99}
    with pytest.raises(AuditError, match="newer"):
        Snapshot.from_dict(newer)


def test_two_snapshots_around_an_edit_a_rename_and_a_deletion(project: Path) -> None:
    first = audit(project)
    (project / "data/train.csv").write_text("text,label\ngood,0\n")  # a flipped label
    (project / "data/test.csv").rename(project / "data/holdout.csv")
    (project / "models/weights.npy").unlink()
    write(project, {"notes.md": "new\n"})
    second = audit(project)
    d = second.changes
    assert d is not None and d.before == first.id and d.after == second.id
    got = sorted((c.status, c.kind, c.path, c.previous) for c in d.files)
    assert got == [("added", "other", "notes.md", None),
                   ("modified", "data", "data/train.csv", None),
                   ("removed", "model", "models/weights.npy", None),
                   ("renamed", "data", "data/holdout.csv", "data/test.csv")]
    modified = next(c for c in d.files if c.status == "modified")
    assert modified.old != modified.new and modified.old and modified.new
    # Nothing in the ledger says who made these changes: each model/data one is a finding.
    flagged = sorted(f.location.uri for f in second.report.findings if f.rule_id == "MW781")
    assert flagged == ["data/holdout.csv", "data/train.csv", "models/weights.npy"]
    # The same diff from the stored documents.
    docs = snapshot_folder(project / ".mlward")
    again = diff_snapshots(Snapshot.load(docs, first.id), Snapshot.load(docs, second.id),
                           first.id, second.id)
    assert [c.path for c in again.files] == [c.path for c in d.files]
    assert second.snapshot.previous == first.id


def test_a_change_recorded_in_the_ledger_is_attributed(project: Path) -> None:
    from mlward._internal.ledger import record_event

    audit(project)
    (project / "data/train.csv").write_text("changed\n")
    record_event("data.update", "data/train.csv", outcome="ok", details={"ticket": "DS-42"})
    second = audit(project)
    assert second.changes is not None
    (change,) = second.changes.files
    assert [w.action for w in change.who] == ["data.update"]
    assert not [f for f in second.report.findings if f.rule_id == "MW781"]


@pytest.fixture
def extra_steps() -> Iterator[None]:
    """Two steps registered for one test: one that raises, one that is not installed."""

    class Broken(Step):
        name = "test-broken"
        description = "a step that raises"

        def run(self, ctx: object) -> StepOutcome:
            raise RuntimeError("boom")

    class Missing(Step):
        name = "test-missing"
        description = "a step whose machinery is absent"

        def unavailable(self, ctx: object) -> str | None:
            return "not installed here"

        def run(self, ctx: object) -> StepOutcome:  # pragma: no cover
            raise AssertionError

    yield
    STEPS.pop("test-broken", None)
    STEPS.pop("test-missing", None)


def test_a_failed_step_is_recorded_and_marks_the_snapshot_incomplete(
        project: Path, extra_steps: object) -> None:
    result = audit(project, steps=["scan", "test-broken"])
    s = result.snapshot
    assert not s.complete
    assert any("test-broken failed: RuntimeError: boom" in r for r in s.incomplete)
    assert {r.name: r.status for r in s.steps} == {"scan": "ok", "test-broken": "failed"}
    assert any(f.rule_id == "MW780" for f in result.report.findings)
    assert result.exit_code == 2  # blind: never clean
    assert _entries(project) == [result.id]  # still recorded


def test_an_unavailable_step_is_a_note_unless_asked_for(project: Path,
                                                         extra_steps: object) -> None:
    STEPS.pop("test-broken")
    default = audit(project)  # every registered step; none asked for by name
    assert default.snapshot.complete
    assert {r.name: r.status for r in default.snapshot.steps}["test-missing"] == "unavailable"
    asked = audit(project, steps=["scan", "test-missing"])
    assert not asked.snapshot.complete
    assert any("test-missing was asked for but is unavailable: not installed here" in r
               for r in asked.snapshot.incomplete)


def test_an_unreadable_file_marks_the_snapshot_incomplete(project: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from mlward._internal.provenance import hashing
    from mlward._internal.provenance.errors import ProvenanceError

    original = hashing._open

    def refuse(path: str) -> int:  # every read of a file to hash opens it here
        if str(path).endswith("train.csv"):
            raise ProvenanceError(f"cannot read {path}: Permission denied")
        return original(path)

    monkeypatch.setattr(hashing, "_open", refuse)
    result = audit(project, steps=["scan"])
    assert not result.snapshot.complete
    assert any(r.startswith("data/train.csv: not recorded in the snapshot: cannot read")
               for r in result.snapshot.incomplete)
    assert "data/train.csv" not in {f.path for f in result.snapshot.files}
    assert "data/test.csv" in {f.path for f in result.snapshot.files}


def test_an_audit_interrupted_before_its_entry_leaves_no_snapshot(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlward._internal.ledger.ledger import Ledger

    def die(self: Ledger, events: object, refs: object = ()) -> object:
        raise KeyboardInterrupt  # killed between writing the document and the ledger entry

    monkeypatch.setattr(Ledger, "append", die)
    with pytest.raises(KeyboardInterrupt):
        audit(project)
    monkeypatch.undo()
    assert _entries(project) == []
    assert audit(project).snapshot.previous is None  # the orphan document is not a snapshot


_SLOW_AUDIT = """
import sys, time
from pathlib import Path
from mlward._internal.audit.steps import Step, StepOutcome
from mlward._internal.audit.record import run_audit
from mlward._internal.ledger import open_ledger, find_project
from mlward.findings import Severity
from mlward.settings import Settings

class Slow(Step):
    name = "slow"
    description = "blocks until killed"
    def run(self, ctx):
        Path(sys.argv[1]).write_text("running")
        time.sleep(600)

root = Path.cwd()
with open_ledger(None, root) as ledger:
    run_audit(root, Settings(executor="inline"), ledger, find_project(root),
              steps=["scan", "slow"])
"""


def test_a_killed_audit_leaves_nothing_in_the_ledger(project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "running"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_AUDIT, str(marker)], cwd=project,
                            env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the audit ended before its slow step"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _entries(project) == []
    folder = snapshot_folder(project / ".mlward")
    assert not folder.exists() or not list(folder.iterdir())
    with open_ledger(None, project) as ledger:
        assert ledger.verify().ok


def test_audit_settings_choose_steps_and_errors_name_the_table(project: Path) -> None:
    from mlward._internal.audit.steps import chosen_steps
    from mlward.errors import UsageError

    s = Settings(sections={"audit": {"steps": ["scan", "lineage"]}})
    assert chosen_steps(s) == (["scan", "lineage"], True)
    with pytest.raises(UsageError, match=r"\[audit\] steps: unknown nope"):
        chosen_steps(Settings(sections={"audit": {"steps": ["nope"]}}))
    with pytest.raises(UsageError, match="unknown key"):
        chosen_steps(Settings(sections={"audit": {"stpes": []}}))
    assert SETTINGS.executor == "inline"


def test_the_deps_step_checks_the_dependency_files_the_scan_found(project: Path) -> None:
    osv = Path(__file__).resolve().parent.parent / "fixtures" / "osv"
    write(project, {"requirements.txt": "mlflow==2.9.1\n"})
    result = audit(project, SETTINGS._replace(vuln_db=(str(osv),)), steps=["scan", "deps"])
    steps = {r.name: r for r in result.snapshot.steps}
    assert steps["deps"].summary == {"dependencies": 1, "vulnerable": 1}
    assert any(f.rule_id == "MW501" and f.location.uri == "requirements.txt"
               for f in result.report.findings)
    assert result.exit_code == 1


def test_exit_codes_follow_the_gate_and_the_audits_own_findings(project: Path) -> None:
    import dataclasses

    from mlward._internal.audit.record import exit_code

    audit(project)
    (project / "data/train.csv").write_text("changed\n")  # MW781: medium
    result = audit(project)
    report, s = result.report, result.snapshot
    passed = dataclasses.replace(s, gate={"verdict": "pass", "exitCode": 0})
    failed = dataclasses.replace(s, gate={"verdict": "fail", "exitCode": 1})
    blind = dataclasses.replace(s, gate={"verdict": "inconclusive", "exitCode": 2})
    assert exit_code(report, passed, SETTINGS) == 0
    assert exit_code(report, failed, SETTINGS) == 1
    assert exit_code(report, blind, SETTINGS) == 2
    strict = SETTINGS._replace(fail_on=Severity.MEDIUM)  # the audit's own finding counts
    assert exit_code(report, passed, strict) == 1
    assert exit_code(report, blind, strict) == 1
    assert exit_code(report, s, strict) == 1  # no gate: --fail-on over everything
