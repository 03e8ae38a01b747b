"""Examples for running ``mlward audit`` regularly, filled in by ``audit --schedule WHEN``.

mlward ships no scheduler daemon of its own: systemd timers, cron and CI schedules already
run jobs reliably, log them and alert on failure. These files are the unit, the crontab line
and the workflow for that; ``examples`` fills in the project folder and the schedule.
"""

from __future__ import annotations

import shutil
import sys
from importlib.resources import files
from pathlib import Path

FILES = ("mlward-audit.service", "mlward-audit.timer", "crontab", "github-actions.yml")
CALENDAR = {"hourly": "hourly", "daily": "*-*-* 03:00:00", "weekly": "Mon *-*-* 03:00:00"}
CRON = {"hourly": "17 * * * *", "daily": "0 3 * * *", "weekly": "0 3 * * 1"}
WHEN = {"hourly": "every hour", "daily": "every day at 03:00", "weekly": "every Monday at 03:00"}


def template(name: str) -> str:
    return files(__name__).joinpath(name).read_text(encoding="utf-8")


def examples(when: str, project: Path) -> str:
    """The four examples for ``when`` (hourly, daily, weekly) and ``project``, one after the
    other under a heading naming the file each belongs in."""
    mlward = shutil.which("mlward") or f"{sys.executable} -m mlward"
    values = {"project": str(project), "mlward": mlward, "when": WHEN[when],
              "calendar": CALENDAR[when], "cron": CRON[when]}
    parts = [f"# ==> {name} <==\n{template(name).format(**values)}" for name in FILES]
    return "\n".join(parts)
