"""What every benchmark here shares: mlward measured as installed, and its README section."""

from __future__ import annotations

import compileall
import json
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

README = Path(__file__).with_name("README.md")
SOURCE = Path(__file__).resolve().parent.parent / "src" / "mlward"


def compile_mlward() -> None:
    """Write mlward's bytecode caches before anything is timed.

    ``pip install mlward`` compiles bytecode at install time, as it did for every peer in
    bench/.venv; mlward is installed editable there, so without this step a shell that sets
    ``PYTHONDONTWRITEBYTECODE`` (many containers and CI images do) would make every mlward run
    recompile its ~100 modules from source, about 0.14 s of start-up no user pays.
    """
    compileall.compile_dir(SOURCE, quiet=1)


def write_section(name: str, section: str) -> None:
    """Replace the text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` (markers
    appended at the end when missing), through a temporary file and a rename."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = README.read_text()
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    start, stop = text.index(begin) + len(begin), text.index(end)
    tmp = README.with_name(README.name + ".tmp")
    tmp.write_text(text[:start] + "\n" + section.strip("\n") + "\n" + text[stop:])
    tmp.replace(README)


def measured_on() -> str:
    """``Measured <UTC time> on <n> CPUs (<model>)``: the first words of a results section."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo
                if line.startswith("model name")), "?")
    return f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} on {os.cpu_count()} CPUs " \
        f"({cpu})"


def load_corpus(folder: Path, manifest: Path,
                build: Callable[[Path], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A generated corpus: ``build(folder)`` (seeded) writes it and returns what it planted,
    kept in ``manifest`` (beside the scanned folder: it holds the planted values) and reused
    by later runs. Every file is read once here, so every tool meets a warm page cache."""
    if manifest.exists():
        planted: list[dict[str, Any]] = json.loads(manifest.read_text())
    else:
        planted = build(folder)
        manifest.write_text(json.dumps(planted))
    for p in folder.iterdir():
        p.read_bytes()
    return planted
