"""The README's usage stays in step with ``--help``: every command is documented, and every
``mlward ...`` line in the README's code blocks names a real command and real options."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from mlward.cli.main import build_parser

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```(?:sh|bash|console)?\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in re.split(r"&&|\|", line):
                part = part.strip()
                if part.startswith("mlward "):
                    lines.append(part)
    return lines


def test_every_command_is_documented() -> None:
    missing = [c for c in _subparsers(build_parser()) if f"mlward {c}" not in README]
    assert not missing, f"commands missing from README: {missing}"


@pytest.mark.parametrize("line", _command_lines())
def test_readme_command_lines_match_help(line: str) -> None:
    words = shlex.split(line)[1:]
    parser = build_parser()
    # Walk down the subcommands the line names.
    while words and words[0] in _subparsers(parser):
        parser = _subparsers(parser)[words.pop(0)]
    known = {opt for a in parser._actions for opt in a.option_strings}
    for w in words:
        if w.startswith("--"):
            assert w.split("=", 1)[0] in known, f"{line!r}: {w} is not an option of this command"
