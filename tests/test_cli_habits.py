"""What users expect of a CLI: global options anywhere, NO_COLOR, case-insensitive severities,
validated counts, logging with -v, and output errors as one line with exit 2."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from mlward.cli.main import main

SRC = str(Path(__file__).resolve().parent.parent / "src")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"w": 1}))
    return path


@pytest.mark.parametrize("argv", [
    ["-q", "--format", "json", "scan", "{m}"],
    ["scan", "{m}", "-q", "--format", "json"],
    ["--format", "json", "scan", "-q", "{m}"],
    ["-f", "json", "scan", "{m}", "-q"],
])
def test_global_options_before_or_after_the_command(argv: list[str], model: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main([a.format(m=model) for a in argv]) == 0
    assert json.loads(capsys.readouterr().out)["examined"][0]["location"]["uri"] == "m.pkl"


def test_fail_on_is_case_insensitive_and_validated(model: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "-q", "--fail-on", "INFO", str(model)]) == 0
    assert main(["scan", "-q", "--fail-on", "Medium", str(model)]) == 0
    assert main(["scan", "-q", "--fail-on", "severe", str(model)]) == 2
    assert "unknown severity" in capsys.readouterr().err


@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_jobs_must_be_a_positive_count(jobs: str, model: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "-j", jobs, str(model)]) == 2
    assert "--jobs" in capsys.readouterr().err


def test_no_color_and_the_flag(model: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # as on a terminal
    main(["scan", "-q", str(model)])
    assert "\x1b[" in capsys.readouterr().out
    monkeypatch.setenv("NO_COLOR", "1")
    main(["scan", "-q", str(model)])
    assert "\x1b[" not in capsys.readouterr().out
    monkeypatch.delenv("NO_COLOR")
    main(["--no-color", "scan", "-q", str(model)])
    assert "\x1b[" not in capsys.readouterr().out


def test_verbose_shows_the_library_log(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["-v", "scan", str(model)])
    assert "mlward: INFO: scanning 1 file(s)" in capsys.readouterr().err
    main(["scan", str(model)])
    assert "INFO" not in capsys.readouterr().err


def test_default_level_sets_logging_up_at_the_first_record_shown() -> None:
    """Without -v the console script does not import logging until a record is shown; that
    record, and the next, appear as with -v, and what is below the level never does."""
    code = """
import sys
from mlward.cli.main import _setup_logging
from mlward._internal import logs
_setup_logging(0, False)
log = logs.get("mlward.scan")
log.info("below the level %d", 1)
assert "logging" not in sys.modules, "logging imported for a record not shown"
log.warning("shown %d", 2)
log.info("below the level %d", 3)
log.error("shown %d", 4)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "mlward: WARNING: shown 2\nmlward: ERROR: shown 4\n"


@pytest.mark.parametrize("target,message", [
    ("{tmp}/missing/report.json", "does not exist"),
    ("{tmp}", "it is a folder"),
    ("/dev/full", "No space left on device"),
])
@pytest.mark.parametrize("command", [["scan", "-q", "-f", "json"], ["baseline", "create"]])
def test_output_errors_are_one_line_and_exit_2(target: str, message: str, command: list[str],
                                               model: Path, tmp_path: Path, monkeypatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # baseline create records in no project
    assert main([*command, "-o", target.format(tmp=tmp_path), str(model)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind


def test_an_os_error_no_command_foresaw_is_one_line(model: Path, tmp_path: Path, monkeypatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The net under every command: an OSError that reaches the CLI is one line, exit 2."""
    import mlward.cli.scan

    def broken(args: object) -> int:
        raise PermissionError(13, "Permission denied", str(tmp_path / "x"))

    monkeypatch.setattr(mlward.cli.scan, "run", broken)
    assert main(["scan", str(model)]) == 2
    err = capsys.readouterr().err
    assert err == f"mlward: error: {tmp_path / 'x'}: Permission denied\n"


@pytest.mark.parametrize("prefix", ["/", ".", ".."])
def test_keygen_refuses_a_folder_as_its_prefix(prefix: str, tmp_path: Path, monkeypatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["keygen", "-o", prefix]) == 2
    err = capsys.readouterr().err
    assert "is a folder, not a file name prefix" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_reports_follow_the_umask(model: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        assert main(["scan", "-q", "-f", "json", "-o", str(tmp_path / "r.json"),
                     str(model)]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644


def test_a_closed_pipe_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    for i in range(200):
        (tmp_path / f"f{i}.txt").write_text("API_KEY = 'not a secret at all'\n" * 50)
    read, write = os.pipe()
    os.close(read)  # the reader is gone before mlward writes
    proc = subprocess.run([sys.executable, "-m", "mlward", "scan", "-v", str(tmp_path)],
                          stdout=write, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": SRC}, timeout=120)
    os.close(write)
    assert proc.returncode == 2
    assert "broken pipe" in proc.stderr and "Traceback" not in proc.stderr


CONSOLE_SCRIPT = """
import atexit, sys, threading, time
from pathlib import Path
from mlward.cli.entry import entrypoint

class Held:
    def __del__(self):
        print("torn down", file=sys.stderr)

held = Held()  # alive at exit: freed by Python's teardown, not by the console script's exit
atexit.register(lambda: print("atexit ran", file=sys.stderr))
mark = Path(sys.argv[2])
if sys.argv[1] == "thread":
    def late():  # still running when the command is done
        time.sleep(3)
        mark.write_text("written")
    threading.Thread(target=late).start()
sys.argv = ["mlward", *sys.argv[3:]]
entrypoint()
"""


@pytest.mark.parametrize("thread", [False, True])
def test_the_console_script_ends_as_python_would_without_the_teardown(
        thread: bool, tmp_path: Path) -> None:
    """The console script skips Python's teardown, but not what a normal exit does that
    matters: atexit functions run, all of a long report reaches the pipe, the exit code is
    the command's, and a thread still running is waited for (then the normal exit)."""
    for i in range(300):  # a finding each: a report of some 300 KB
        (tmp_path / f"f{i}.py").write_text(f"import os\nos.system('echo {i}')\n")
    mark = tmp_path / "thread.txt"
    proc = subprocess.run(
        [sys.executable, "-c", CONSOLE_SCRIPT, "thread" if thread else "none", str(mark),
         "scan", "-f", "json", "--fail-on", "info", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=120)
    report = json.loads(proc.stdout)  # all of it, or this raises
    assert len(report["findings"]) >= 300 and proc.returncode == 1, proc.stderr
    assert "atexit ran" in proc.stderr
    if thread:
        assert mark.read_text() == "written"
        assert "torn down" in proc.stderr  # the normal exit
    else:
        assert "torn down" not in proc.stderr, "the teardown ran"


def test_the_progress_bar_loads_rich_only_for_20_files_or_more() -> None:
    """On a terminal, a scan of fewer than 20 files never waits for rich; one of 20 or more
    shows the bar, and it is gone after."""
    code = """
import sys
from mlward.cli.progress import ScanProgress
small = ScanProgress(bar=True)
small.on_start(19)
small.on_file("a")
small.close()
assert not [m for m in sys.modules if m.startswith("rich")], "rich imported for 19 files"
big = ScanProgress(bar=True)
big.on_start(20)
progress = big._progress
assert progress is not None and progress.live.is_started
for i in range(20):
    big.on_file(str(i))
assert progress.tasks[0].completed == 20
big.close()
assert big._progress is None and not progress.live.is_started
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert proc.returncode == 0, proc.stderr
