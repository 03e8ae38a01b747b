"""The Dask executor on real clusters: a ``LocalCluster`` (worker processes, TCP on
127.0.0.1) and separately started ``dask scheduler``/``dask worker`` processes. Reports and
manifests are the same as local runs'; a killed worker, a crashing or hanging unit and a
vanished scheduler each end with every input reported exactly once."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlward._internal.pipeline import INTERRUPTED, scan
from mlward.cli.main import main
from mlward.cli.scan import emit
from mlward.findings import Report
from mlward.settings import Settings, load_settings

from .conftest import DaskProcesses, S3Server, model_tree

distributed = pytest.importorskip("distributed")

from mlward.executors.dask import DaskExecutor  # noqa: E402 (needs distributed)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskExecutor]:
    """One ``local:2`` cluster for the module's tests (starting one costs seconds)."""
    executor = DaskExecutor(Settings(executor="dask", cluster="local:2"))
    executor.connect()
    try:
        yield executor
    finally:
        executor.close()


def _shape(report: Report) -> dict[str, Any]:
    """What must not depend on where a scan ran."""
    return {
        "findings": sorted((f.fingerprint, f.rule_id, f.severity.label, str(f.location))
                           for f in report.findings),
        "verdicts": report.verdicts(),
        "examined": Counter((str(e.location), e.format) for e in report.examined),
        "skipped": Counter((str(s.location), s.reason, s.inconclusive) for s in report.skipped),
        "facts": sorted(json.dumps(f.to_dict(), sort_keys=True) for f in report.facts),
    }


def test_cluster_and_local_reports_are_identical(cluster: DaskExecutor, tmp_path: Path,
                                                 marker: Path) -> None:
    tree = model_tree(tmp_path / "tree", marker, copies=20)
    local = scan([tree], settings=Settings())
    remote = scan([tree], settings=Settings(), executor=cluster)
    assert remote.stats["executor"] == "dask"
    assert _shape(remote) == _shape(local)
    assert len(remote.verdicts()) == 20 * 6
    assert not marker.exists()


def test_cli_cluster_local_n_gives_the_local_report(tmp_path: Path, marker: Path) -> None:
    tree = model_tree(tmp_path / "tree", marker, copies=3)
    assert main(["scan", str(tree), "-f", "json", "-o", str(tmp_path / "a.json")]) == 1
    assert main(["scan", str(tree), "--cluster", "local:2", "-f", "json",
                 "-o", str(tmp_path / "b.json")]) == 1
    a, b = (Report.from_dict(json.loads((tmp_path / n).read_text())) for n in ("a.json",
                                                                                "b.json"))
    assert b.stats["executor"] == "dask"
    assert _shape(a) == _shape(b)


def test_manifests_are_byte_identical(tmp_path: Path) -> None:
    tree = tmp_path / "data"
    (tree / "many").mkdir(parents=True)
    for n in range(300):
        (tree / "many" / f"f{n:03d}.bin").write_bytes(os.urandom(n * 7))
    (tree / "large.bin").write_bytes(os.urandom((5 << 20) + 123))  # 6 shards of 1 MiB
    (tree / "link").symlink_to("large.bin")
    options = ["--shard-size", str(1 << 20)]
    assert main(["manifest", "create", str(tree), "-o", str(tmp_path / "local.json"),
                 *options]) == 0
    assert main(["manifest", "create", str(tree), "-o", str(tmp_path / "cluster.json"),
                 "--cluster", "local:2", *options]) == 0
    local, remote = (json.loads((tmp_path / n).read_text()) for n in ("local.json",
                                                                       "cluster.json"))
    assert local["createdBy"].pop("time") and remote["createdBy"].pop("time")
    assert json.dumps(local) == json.dumps(remote)  # every byte but the creation time
    # and the digests of the large file are the sharded scheme's, as a local run computes
    assert {e["path"]: e for e in remote["entries"]}["large.bin"]["digest"].keys() == {
        f"sha256-sharded-{1 << 20}"}


def test_a_bucket_scanned_and_hashed_by_cluster_workers(s3: S3Server, tmp_path: Path,
                                                        marker: Path) -> None:
    """Workers read the objects themselves (ranged GETs), with the client's result."""
    tree = model_tree(tmp_path / "tree", marker, copies=3)
    client = s3.client()
    client.create_bucket(Bucket="hub")
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        client.put_object(Bucket="hub", Key=f"m/{path.relative_to(tree).as_posix()}",
                          Body=path.read_bytes())
    here = scan(["s3://hub/m"], settings=Settings(executor="inline"))
    # A cluster started now: its workers get the S3 server's endpoint from the environment.
    executor = DaskExecutor(Settings(executor="dask", cluster="local:1"))
    try:
        worker_pids = set(executor.connect().run(os.getpid).values())
        there = scan(["s3://hub/m"], settings=Settings(), executor=executor)
        assert there.stats["executor"] == "dask" and os.getpid() not in worker_pids
        assert _shape(there) == _shape(here)
        assert there.stats["object_storage"] == here.stats["object_storage"]
    finally:
        executor.close()
    options = ["--shard-size", str(1 << 20)]
    assert main(["manifest", "create", "s3://hub/m", "-o", str(tmp_path / "here.json"),
                 *options]) == 0
    assert main(["manifest", "create", "s3://hub/m", "-o", str(tmp_path / "there.json"),
                 "--cluster", "local:1", *options]) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("here.json", "there.json"))
    assert a["createdBy"].pop("time") and b["createdBy"].pop("time")
    assert json.dumps(a) == json.dumps(b)
    assert not marker.exists()


class _KillOnce:
    """A scan observer that kills one worker process when the first result arrives."""

    def __init__(self, executor: DaskExecutor) -> None:
        self.executor = executor
        self.killed: int | None = None

    def on_start(self, total: int) -> None:
        pass

    def on_file(self, path: str) -> None:
        if self.killed is None:
            pids = self.executor.connect().run(os.getpid)
            self.killed = sorted(pids.values())[0]
            os.kill(self.killed, signal.SIGKILL)


def test_a_worker_killed_mid_run_loses_and_repeats_nothing(tmp_path: Path,
                                                           marker: Path) -> None:
    tree = model_tree(tmp_path / "tree", marker, copies=150)
    files = {p.relative_to(tree.parent).as_posix() for p in tree.rglob("*") if p.is_file()}
    executor = DaskExecutor(Settings(executor="dask", cluster="local:2"))
    try:
        killer = _KillOnce(executor)
        report = scan([tree], settings=Settings(root=str(tree.parent)), executor=executor,
                      observer=killer)
        pids = set(executor.connect().run(os.getpid).values())
    finally:
        executor.close()
    assert killer.killed is not None and killer.killed not in pids  # it died mid-run
    # Exactly once: every file has its verdict, and every entry appears as often as in an
    # undisturbed run (the shape counts them: a file re-run and reported twice would show).
    assert set(report.verdicts()) == files
    assert _shape(report) == _shape(scan([tree], settings=Settings(root=str(tree.parent))))
    assert not report.inconclusive
    assert not marker.exists()


def test_a_unit_that_kills_its_worker_fails_alone() -> None:
    import dask

    def crash_on_13(n: int) -> int:
        if n == 13:
            os._exit(3)
        return n * 2

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        executor = DaskExecutor(Settings(executor="dask", cluster="local:2"))
        try:
            outcomes = list(executor.map(crash_on_13, list(range(40))))
        finally:
            executor.close()
    assert sorted(o.unit for o in outcomes) == list(range(40))
    failed = [o for o in outcomes if o.error is not None]
    assert [o.unit for o in failed] == [13], [(o.unit, o.error) for o in failed]
    assert "worker died" in str(failed[0].error)
    assert all(o.result == o.unit * 2 for o in outcomes if o.unit != 13)


def test_a_unit_over_its_time_budget_is_stopped() -> None:
    def hang_on_3(n: int) -> int:
        if n == 3:
            time.sleep(3600)
        return n

    executor = DaskExecutor(Settings(executor="dask", cluster="local:2", timeout=2.0))
    try:
        started = time.monotonic()
        outcomes = list(executor.map(hang_on_3, list(range(8))))
    finally:
        executor.close()
    assert time.monotonic() - started < 120
    assert sorted(o.unit for o in outcomes) == list(range(8))
    hung, = (o for o in outcomes if o.error is not None)
    assert hung.unit == 3 and "timed out" in hung.error


def test_separately_started_scheduler_and_worker(dask_processes: DaskProcesses,
                                                 tmp_path: Path, marker: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tree = model_tree(tmp_path / "tree", marker, copies=4)
    out = tmp_path / "report.json"
    assert main(["scan", str(tree), "--cluster", dask_processes.address, "-f", "json",
                 "-o", str(out)]) == 1
    report = Report.from_dict(json.loads(out.read_text()))
    assert _shape(report) == _shape(scan([tree]))
    with dask_processes.client() as c:
        assert "run_batch" in c.run_on_scheduler(lambda dask_scheduler: list(
            dask_scheduler.task_prefixes))
    # `cluster = ...` in the project's settings makes the cluster the default.
    (tree / ".mlward").mkdir()
    (tree / ".mlward" / "mlward.toml").write_text(f'cluster = "{dask_processes.address}"\n')
    monkeypatch.chdir(tree)
    assert main(["scan", str(tree), "-f", "json", "-o", str(out)]) == 1
    from_settings = Report.from_dict(json.loads(out.read_text()))
    assert from_settings.stats["executor"] == "dask"
    assert _shape(from_settings) == _shape(scan([tree]))
    assert not marker.exists()


def test_a_worker_with_another_mlward_stops_the_run_before_any_work(
        dask_processes: DaskProcesses, tmp_path: Path, marker: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    (other / "mlward").mkdir(parents=True)
    (other / "mlward" / "__init__.py").write_text("")
    (other / "mlward" / "_version.py").write_text('__version__ = "0.0.1-other"\n')
    dask_processes.add_worker({"PYTHONPATH": str(other)})
    dask_processes.wait_for_workers(2)
    tree = model_tree(tmp_path / "tree", marker)
    assert main(["scan", str(tree), "--cluster", dask_processes.address]) == 2
    err = capsys.readouterr().err
    assert "mlward 0.0.1-other on Python" in err and "nothing was sent" in err
    with dask_processes.client() as c:
        assert "run_batch" not in c.run_on_scheduler(lambda dask_scheduler: list(
            dask_scheduler.task_prefixes))


def test_missing_dask_extra_names_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    (tmp_path / "a.txt").write_text("x")
    assert main(["scan", str(tmp_path), "--cluster", "local:1"]) == 2
    assert "pip install 'mlward[dask]'" in capsys.readouterr().err


class _StopScheduler:
    def __init__(self, processes: DaskProcesses) -> None:
        self.processes = processes
        self.seen = 0

    def on_start(self, total: int) -> None:
        pass

    def on_file(self, path: str) -> None:
        self.seen += 1
        if self.seen == 1:
            os.killpg(self.processes.scheduler.pid, signal.SIGKILL)


def test_a_vanished_scheduler_ends_with_a_partial_report_that_resumes(
        dask_processes: DaskProcesses, tmp_path: Path, marker: Path) -> None:
    tree = model_tree(tmp_path / "tree", marker, copies=300)
    files = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}
    settings = Settings(executor="dask", cluster=dask_processes.address, root=str(tree))
    partial = scan([tree], settings=settings, observer=_StopScheduler(dask_processes))
    unfinished = {s.location.uri for s in partial.skipped if s.reason.startswith(INTERRUPTED)}
    assert partial.stats["interrupted"]["unfinished"] == len(unfinished) > 0
    assert "went away" in partial.stats["interrupted"]["reason"]
    # each file: examined, or said not to be; so is each folder whose checks did not run
    folders = {p.relative_to(tree).as_posix() for p in [tree, *tree.rglob("*")] if p.is_dir()}
    assert set(partial.verdicts()) == files | (folders & unfinished)
    out = tmp_path / "partial.json"
    # the CLI writes it and exits 2, whatever it found; then --resume without the cluster
    args = argparse.Namespace(settings=load_settings(flags={"format": "json"}), output=out,
                              format="json")
    assert emit(partial, args) == 2
    final = tmp_path / "final.json"
    assert main(["scan", str(tree), "--root", str(tree), "--resume", str(out), "-f", "json",
                 "-o", str(final)]) == 1
    resumed = Report.from_dict(json.loads(final.read_text()))
    assert resumed.stats["resumed"] == len(files - unfinished)
    assert _shape(resumed) == _shape(scan([tree], settings=Settings(root=str(tree))))
    assert not marker.exists()
