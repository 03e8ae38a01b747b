"""The executor seam: crash isolation, time budgets and clean shutdown, on both start methods."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlward
from mlward.executors import InlineExecutor, Outcome, ThreadExecutor, available_cores
from mlward.executors.process import ProcessExecutor
from mlward.settings import Settings

SRC = Path(__file__).resolve().parent.parent / "src"
METHODS = ["forkserver", "spawn"]


def _work(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # a native crash, as far as the parent can tell
    if x == 5:
        time.sleep(60)  # a hang
    if x == 7:
        raise ValueError("seven")
    return x * 2


@pytest.mark.parametrize("method", METHODS)
def test_every_unit_ends_exactly_once_whatever_kills_it(method: str) -> None:
    executor = ProcessExecutor(2, timeout=2.0, method=method, batch=3)
    outcomes = list(executor.map(_work, list(range(12))))
    assert sorted(o.unit for o in outcomes) == list(range(12))  # no loss, no duplicate
    by_unit = {o.unit: o for o in outcomes}
    assert "SIGKILL" in (by_unit[3].error or "")
    assert "time budget" in (by_unit[5].error or "")
    assert by_unit[7].error == "raised ValueError: seven"
    assert all(by_unit[i] == Outcome(i, i * 2) for i in range(12) if i not in (3, 5, 7))


def _work_late(x: int) -> int:
    if x == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    if x == 6:
        time.sleep(60)
    return x * 2


@pytest.mark.parametrize("method", METHODS)
def test_a_crash_after_finished_units_blames_the_unit_it_was_on(method: str) -> None:
    """Workers send results in groups, so one that dies has finished units whose results
    it had not sent: those run again and end once, and the crash or the overrun is the
    unit's it was on, not the first one without a result."""
    executor = ProcessExecutor(1, timeout=2.0, method=method, batch=4)
    outcomes = list(executor.map(_work_late, list(range(9))))
    assert sorted(o.unit for o in outcomes) == list(range(9))
    by_unit = {o.unit: o for o in outcomes}
    assert "SIGKILL" in (by_unit[2].error or "")
    assert "time budget" in (by_unit[6].error or "")
    assert all(by_unit[i] == Outcome(i, i * 2) for i in range(9) if i not in (2, 6))


def _unsendable(x: int) -> object:
    return (lambda: x) if x == 1 else x  # a lambda cannot be pickled back


def test_a_result_that_cannot_be_sent_back_fails_alone() -> None:
    outcomes = {o.unit: o for o in ProcessExecutor(1, method="forkserver", batch=3).map(
        _unsendable, [0, 1, 2])}
    assert outcomes[0] == Outcome(0, 0) and outcomes[2] == Outcome(2, 2)
    assert (outcomes[1].error or "").startswith("result could not be sent back")


def _hog(n: int) -> int:
    return len(bytearray(n))


def test_a_unit_over_the_memory_cap_fails_alone() -> None:
    executor = ProcessExecutor(1, max_memory=512 << 20, method="forkserver")
    outcomes = {o.unit: o for o in executor.map(_hog, [10, 4 << 30, 20])}
    assert outcomes[0].result == 10 and outcomes[2].result == 20
    assert outcomes[1].error == "ran out of memory"


def test_thread_and_inline_executors_report_errors_as_outcomes() -> None:
    units = [1, 7, 2]

    def fn(x: int) -> int:
        if x == 7:
            raise ValueError("seven")
        return x

    for executor in (ThreadExecutor(2), InlineExecutor()):
        got = {o.unit: o for o in executor.map(fn, units)}
        assert got[0].result == 1 and got[2].result == 2
        assert got[1].error == "raised ValueError: seven"


def test_available_cores_is_positive() -> None:
    assert available_cores() >= 1


def test_nothing_forks_by_hand() -> None:
    """Workers start with forkserver or spawn only (bare fork is unsafe with threads and
    does not exist on Windows). The forks are in one module: the fork server's own start, by
    the console script before it has a thread (the tests below), and its helper for hashing,
    only while it has no thread (tests/provenance/test_hashing.py)."""
    offenders = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")
                 if "os.fork" in p.read_text(encoding="utf-8")]
    assert offenders == ["mlward/executors/prefork.py"]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter: the fork server is per process, and this one has
    threads and a server of its own."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


_PREFORKED = """
import os, sys
from mlward.executors import prefork
assert prefork.start()
server = prefork.server().pid
from tests_helpers import work
from mlward.executors.process import ProcessExecutor
outcomes = {o.unit: o for o in ProcessExecutor(2, timeout=5, method="forkserver").map(
    work, [0, 1, 2])}
print(outcomes[0].result == server, outcomes[2].result == server,
      "multiprocessing" in sys.modules, outcomes[1].error)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the forked server is Linux's")
def test_forked_fork_server_serves_isolated_workers(tmp_path: Path) -> None:
    """The console script forks the fork server before it has a thread; the process
    executor then uses it (not multiprocessing, which it never imports): workers are its
    children, they see modules added to ``sys.path`` after the server started, and a worker
    killed by a signal costs its unit."""
    (tmp_path / "tests_helpers.py").write_text(
        "import os, signal\n"
        "def work(x):\n"
        "    if x == 1:\n"
        "        os.kill(os.getpid(), signal.SIGSEGV)\n"
        "    return os.getppid()\n")
    done = _python(f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n" + _PREFORKED)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(maxsplit=3) == ["True", "True", "False",
                                             "the worker process was killed by SIGSEGV "
                                             "while on this input\n"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the forked server is Linux's")
def test_the_forked_server_isolates_as_multiprocessing_does() -> None:
    """The tests above, with workers from the console script's own fork server: crashes,
    overruns, exceptions, unsendable results and the memory cap each cost one unit."""
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(tests)])}
    done = subprocess.run([sys.executable, "-c", (
        "import sys\n"
        "from mlward.executors import prefork\n"
        "assert prefork.start()\n"
        "import test_executors as t\n"
        "t.test_every_unit_ends_exactly_once_whatever_kills_it('forkserver')\n"
        "t.test_a_crash_after_finished_units_blames_the_unit_it_was_on('forkserver')\n"
        "t.test_a_result_that_cannot_be_sent_back_fails_alone()\n"
        "t.test_a_unit_over_the_memory_cap_fails_alone()\n"
        "print(prefork.server() is not None, 'multiprocessing.context' in sys.modules)\n")],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
def test_a_failed_fork_falls_back_and_leaks_nothing() -> None:
    """No process left to fork (EAGAIN): the standard start is used, no descriptor stays
    open and nothing is raised at the user."""
    done = _python("import os\n"
                   "from mlward.executors import prefork\n"
                   "before = set(os.listdir('/proc/self/fd'))\n"
                   "def no_fork():\n"
                   "    raise OSError(11, 'Resource temporarily unavailable')\n"
                   "os.fork = no_fork\n"
                   "print(prefork.start(), prefork.server(),\n"
                   "      set(os.listdir('/proc/self/fd')) - before)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "None", "set()"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the forked server is Linux's")
def test_the_first_worker_is_forked_before_it_is_asked_for() -> None:
    """The server forks a spare worker as soon as it is ready; the first executor takes it
    (its unit runs in that process), and a spare nobody took goes with the server."""
    done = _python("import operator, os, time\n"
                   "from pathlib import Path\n"
                   "from mlward.executors import prefork\n"
                   "from mlward.executors.process import ProcessExecutor\n"
                   "def spare():  # the server's child, there before any executor asks\n"
                   "    server = prefork.server().pid\n"
                   "    children = Path(f'/proc/{server}/task/{server}/children')\n"
                   "    deadline = time.monotonic() + 30\n"
                   "    while not children.read_text().split():\n"
                   "        assert time.monotonic() < deadline, 'no spare forked'\n"
                   "        time.sleep(0.01)\n"
                   "    return int(children.read_text().split()[0])\n"
                   "assert prefork.start()\n"
                   "pid = spare()\n"
                   "ran = [o.result for o in ProcessExecutor(1).map(operator.call, [os.getpid])]\n"
                   "print(ran == [pid], prefork.server().spare is None)\n"
                   "prefork.forget()\n"
                   "assert prefork.start()\n"
                   "pid = spare()\n"
                   "prefork.forget()  # the spare was never taken\n"
                   "deadline = time.monotonic() + 10\n"
                   "while os.path.exists(f'/proc/{pid}') and time.monotonic() < deadline:\n"
                   "    time.sleep(0.05)\n"
                   "print(os.path.exists(f'/proc/{pid}'))\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "False"]


def test_work_queued_for_idle_time_runs_once_while_the_executor_waits() -> None:
    """Work queued with when_idle runs when the executor first waits, before the results,
    once; a task that raises is skipped over."""
    from mlward._internal import idle

    for executor in (ProcessExecutor(1), ThreadExecutor(1)):
        order: list[str] = []
        idle.when_idle(lambda: order.append("idle"))  # noqa: B023 (runs inside this loop)
        idle.when_idle(lambda: 1 / 0)
        idle.when_idle(lambda: order.append("after the error"))  # noqa: B023
        for _ in executor.map(time.sleep, [0.3, 0.3, 0.3]):
            order.append("result")
        assert order == ["idle", "after the error", "result", "result", "result"], executor


def test_no_fork_once_a_thread_runs() -> None:
    done = _python("import threading, time\n"
                   "threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n"
                   "from mlward.executors import prefork\n"
                   "print(prefork.start(), prefork.server())")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "None"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the forked server is Linux's")
def test_a_server_that_has_gone_is_replaced_by_the_standard_start() -> None:
    """The forked server killed before the scan: the workers start the standard way and
    the units still run."""
    done = _python("import os, signal\n"
                   "from mlward.executors import prefork\n"
                   "assert prefork.start()\n"
                   "pid = prefork.server().pid\n"
                   "os.kill(pid, signal.SIGKILL)\n"
                   "os.waitpid(pid, 0)\n"
                   "from mlward.executors.process import ProcessExecutor\n"
                   "out = ProcessExecutor(1, method='forkserver').map(abs, [-1, -2])\n"
                   "print(sorted(o.result for o in out), prefork.server())\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[1,", "2]", "None"]


# -- a plugin scanner that kills its worker: registered through the entry point, as a
#    third-party scanner would be, so that worker processes load it too --------------------

PLUGIN = '''
import os, signal, time
from mlward.plugins import DirectoryScanner, Scanner

class Dies(Scanner):
    name = "test-dies"
    priority = 1
    def sniff(self, source):
        return source.head(8) in (b"DIE-NOW!", b"SLEEP!!!")
    def scan(self, source, ctx):
        if source.head(8) == b"SLEEP!!!":
            open(os.environ["MLWARD_TEST_PIDS"] + f"/{os.getpid()}", "w").close()
            time.sleep(120)
        os.kill(os.getpid(), signal.SIGKILL)

class Chatty(Scanner):
    name = "test-chatty"
    priority = 1
    def sniff(self, source):
        return source.head(8) == b"CHATTY!!"
    def scan(self, source, ctx):
        print("a scanner's chatter")
        ctx.examined(source.location, self.name)

class DiesOnFolders(DirectoryScanner):
    name = "test-dies-folder"
    def matches(self, directory):
        return (directory / "DIE-FOLDER").exists()
    def scan(self, directory, location, ctx):
        os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.fixture
def dying_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "mlward_test_dies.py").write_text(PLUGIN)
    info = site / "mlward_test_dies-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlward-test-dies\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text("[mlward.scanners]\ndies = mlward_test_dies\n")
    monkeypatch.syspath_prepend(str(site))
    yield site


def _files(root: Path, n: int) -> None:
    root.mkdir()
    for i in range(n):
        (root / f"w{i:04}.pkl").write_bytes(pickle.dumps({"i": i}, protocol=i % 6))
    (root / "evil.bin").write_bytes(b"cos\nsystem\n(S'true'\ntR.")  # never run
    (root / "crash.bin").write_bytes(b"DIE-NOW!")


@pytest.mark.parametrize("n", [0, 1000])
def test_a_scanner_that_kills_its_worker_costs_only_that_file(tmp_path: Path, dying_plugin: Path,
                                                              n: int) -> None:
    tree = tmp_path / "tree"
    _files(tree, n)
    # spawn: fresh workers that load the scanners (and this plugin) from the entry points.
    report = mlward.scan([tree], executor=ProcessExecutor(2, method="spawn"))
    assert [(s.location.uri, "SIGKILL" in s.reason) for s in report.inconclusive] == [
        ("crash.bin", True)]
    assert [f.location.uri for f in report.findings if f.rule_id == "MW001"] == ["crash.bin"]
    assert len({e.location.uri for e in report.examined}) == n + 1  # every other file judged
    assert any(f.evidence == "os.system" for f in report.findings)
    assert report.exit_code(mlward.Severity.CRITICAL) == 1


def test_folder_checks_run_in_workers_and_a_crash_costs_that_folder(tmp_path: Path,
                                                                    dying_plugin: Path) -> None:
    """Folder-level checks are work units too: the process that walks imports no scanner,
    and a folder check that kills its worker costs that folder's checks, nothing else."""
    tree = tmp_path / "tree"
    (tree / "doomed").mkdir(parents=True)
    (tree / "doomed" / "DIE-FOLDER").write_text("x")
    (tree / "doomed" / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")  # never run
    (tree / "repo").mkdir()
    (tree / "repo" / "config.json").write_text('{"auto_map": {"AutoModel": "o/r--m.M"}}')
    code = (f"import json, sys, mlward\n"
            f"r = mlward.scan([{str(tree)!r}], settings=mlward.Settings(jobs=2))\n"
            "print(sorted(m for m in sys.modules if m.startswith('mlward._internal.scanners.')"
            " or m == 'mlward._internal.engine'))\n"
            "print(json.dumps({f.location.uri: f.rule_id for f in r.findings}))\n"
            "print(sorted(s.location.uri for s in r.inconclusive), r.stats['files'])\n"
            "print([e.location.uri for e in r.examined if e.format == 'model-repository'])\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(dying_plugin), str(SRC)])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    imported, findings, rest, repositories = done.stdout.splitlines()
    assert imported == "[]"
    rules = json.loads(findings)
    assert rules["doomed"] == "MW001"
    assert rules["doomed/evil.pkl"].startswith("MW1")  # the folder's files are still judged
    assert rest == "['doomed'] 3"
    assert repositories == "['repo']"  # the other folder's checks ran


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the forked server is Linux's")
def test_what_a_worker_prints_stays_out_of_the_report(tmp_path: Path,
                                                      dying_plugin: Path) -> None:
    """The report on standard output is the CLI's alone: a scanner that prints (a chatty
    library) cannot corrupt it."""
    (tmp_path / "noisy.bin").write_bytes(b"CHATTY!!")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(dying_plugin), str(SRC)])}
    done = subprocess.run([sys.executable, "-m", "mlward", "scan", "-q", "-f", "json",
                           str(tmp_path / "noisy.bin")], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert "test-chatty" in [e["format"] for e in report["examined"]]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def _sleeping_scan(tmp_path: Path, plugin: Path) -> tuple[subprocess.Popen[str], list[int],
                                                           list[int]]:
    """``mlward scan -j 2`` of files on which the plugin sleeps, once both workers are on
    one: the process, its workers and its own children (the fork server)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(4):
        (tree / f"s{i}.bin").write_bytes(b"SLEEP!!!")
    pids = tmp_path / "pids"
    pids.mkdir()
    env = {**os.environ, "MLWARD_TEST_PIDS": str(pids),
           "PYTHONPATH": os.pathsep.join([str(plugin), str(SRC)])}
    proc = subprocess.Popen([sys.executable, "-m", "mlward", "scan", "-q", "-j", "2",
                             str(tree)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [int(p.name) for p in pids.iterdir()]
    assert len(workers) == 2, "the workers never started"
    helpers = [int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
               .read_text().split()]
    return proc, workers, helpers


def _left_behind(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for processes")
def test_ctrl_c_leaves_no_process_behind(tmp_path: Path, dying_plugin: Path) -> None:
    proc, workers, helpers = _sleeping_scan(tmp_path, dying_plugin)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert _left_behind(workers + helpers) == []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for processes")
def test_a_killed_scan_leaves_no_process_behind(tmp_path: Path, dying_plugin: Path) -> None:
    """SIGKILL gives the scan no chance to stop its workers: its fork server sees it gone
    and stops them (they are busy, so they would not notice by themselves)."""
    proc, workers, helpers = _sleeping_scan(tmp_path, dying_plugin)
    assert helpers, "no fork server was started"
    proc.kill()
    proc.communicate(timeout=30)
    assert _left_behind(workers + helpers) == []


def test_scan_settings_choose_the_executor(tmp_path: Path) -> None:
    (tmp_path / "a.pkl").write_bytes(pickle.dumps([1, 2]))
    for kind in ("process", "thread", "inline"):
        report = mlward.scan([tmp_path], settings=Settings(executor=kind))
        assert report.stats["executor"] == kind
        assert [e.location.uri for e in report.examined] == ["a.pkl"]
