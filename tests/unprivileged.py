"""Run the mlward CLI in a process that file permissions apply to, even when the suite runs as
root (CI containers do): ``chmod 000`` does not stop root, which holds the capabilities that
bypass file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH). ``setpriv`` (util-linux) drops them
from the bounding set, so the child is still root (it owns the test's files) but reading a
mode-000 file or listing a mode-000 folder fails with EACCES, as it would for any user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
_MAIN = "import sys; from mlward.cli.main import main; sys.exit(main(sys.argv[1:]))"


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``mlward ARGS`` in ``cwd``, without the privilege to ignore file modes."""
    argv = [sys.executable, "-c", _MAIN, *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux): file modes cannot be "
                        "enforced on this machine")
        argv = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("MLWARD_DB", None)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def lock(path: Path) -> None:
    """Make ``path`` unreadable (and a folder unlistable) to :func:`run_cli`."""
    path.chmod(0)
