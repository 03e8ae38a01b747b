"""Real ML tool servers on 127.0.0.1 for the probe tests, started and always stopped here."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = float(os.environ.get("MLWARD_TEST_SERVER_TIMEOUT", "300"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment "
                    "(pip install -e '.[probe-test]'; .ci/run installs it)")
    return path


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP error is still an answer
    except OSError:
        return False


@contextmanager
def running(cmd: list[str], url: str, workdir: Path, env: dict[str, str] | None = None,
            ready: str = "/") -> Iterator[str]:
    """Start ``cmd`` in its own process group; yield ``url`` once it answers; stop it."""
    with open(workdir / "server.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **(env or {})})
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not _answers(url + ready):
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (workdir / "server.log").read_bytes()[-3000:]
                    pytest.fail(f"{cmd[0]} did not start (exit {proc.poll()}):\n"
                                f"{tail.decode(errors='replace')}")
                time.sleep(1)
            yield url
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, then SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Short paths: Ray's unix sockets must fit in 107 bytes.
    with tempfile.TemporaryDirectory(prefix="mw-", dir="/tmp") as d:
        yield Path(d)
