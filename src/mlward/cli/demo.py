"""``mlward demo``: the whole loop on a generated project, in a temporary folder.

The walk-through runs real mlward commands, one after the other, in the project: scan (a
poisoned checkpoint and a leaking notebook), provenance (manifest, lineage, signature), BOM,
gate (fails, then passes after the fix), an audit snapshot, one data file edited, then
``audit diff``, ``ledger history`` and ``bom verify`` naming the edit. Each step knows the exit
code it should have: the demo exits non-zero only when a command did not behave (the findings
along the way are the story, not a failure). Commands that are not part of this installation
are announced and skipped. ``--scan-only`` is the short version: build and scan.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlward.cli.scan import add_report_options, emit
from mlward.errors import UsageError

MAX_LINES = 18


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo", help="walk through mlward on a generated ML project (scan, provenance, BOM, "
        "gate, audit, forensics)",
        description="Write a small ML project to a temporary folder (one downloaded model "
        "carries a payload, one notebook output leaks a cloud key) and run the whole loop on "
        "it: scan, manifest and lineage of the training data, sign, gate (fails, then passes "
        "after the fix), BOM, audit snapshot, one data file edited, audit diff and ledger "
        "history naming the edit, bom verify catching it. Nothing in the project is ever "
        "executed. --scan-only builds the project and scans it, nothing more.",
        epilog="Exit codes: 0 every step behaved as expected (its findings included); 1 a "
        "command did not. With --scan-only: 1 is the expected result (the project holds a "
        "malicious model).")
    add_report_options(p)
    p.add_argument("--keep", metavar="DIR", type=Path,
                   help="build the project in DIR (created) and keep it")
    p.add_argument("--scan-only", action="store_true",
                   help="only build the project and scan it (the report is the output)")
    p.add_argument("--serve", action="store_true",
                   help="after the walk-through, open its results in the dashboard "
                   "(mlward serve on 127.0.0.1; Ctrl-C stops)")
    p.add_argument("--port", type=int, default=8765, help="the dashboard's port (default: "
                   "8765)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        return _demo(args.keep.resolve(), args, "")
    with tempfile.TemporaryDirectory(prefix="mlward-demo-") as tmp:
        root = Path(tmp) / "demo-project"
        root.mkdir()
        return _demo(root, args, " (removed afterwards; --keep DIR keeps it)")


def _demo(root: Path, args: argparse.Namespace, note: str) -> int:
    if args.scan_only:
        return _build_and_scan(root, args, note)
    from mlward._internal.demo import build_story_project

    if args.serve and args.scan_only:
        raise UsageError("--serve shows the walk-through's results: leave out --scan-only")
    build_story_project(root)
    print(f"demo project written to {root}{note}")
    with _cwd(root):
        code = Story(root).run()
        if args.serve:
            _serve(root, args)
    return code


def _serve(root: Path, args: argparse.Namespace) -> None:
    """The dashboard over the demo project's inventory and ledger, until interrupted."""
    from mlward.cli.serve import serve
    from mlward.settings import load_settings

    settings = load_settings(start=root, env=os.environ)
    print(f"\nopening the dashboard: http://127.0.0.1:{args.port}/", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        serve(settings, host="127.0.0.1", port=args.port, token=None,
              db=str(root / ".mlward" / "inventory.db"))


def _build_and_scan(root: Path, args: argparse.Namespace, note: str) -> int:
    from mlward._internal.demo import MALICIOUS, build_demo_project
    from mlward._internal.pipeline import scan

    build_demo_project(root)
    # Notes go to standard error so that standard output is the report alone (--format json).
    print(f"demo project written to {root}{note}\n", file=sys.stderr)
    code = emit(scan([root], settings=args.settings), args, action="demo")
    print(f"\nThe demo holds one malicious model, {MALICIOUS}: it should be the only "
          f"dangerous file, and exit code {code} (findings at or above "
          f"--fail-on) is the expected result.", file=sys.stderr)
    return code


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@dataclass(frozen=True)
class Step:
    title: str
    argv: Sequence[str]
    expect: int
    needs: str | None = None
    """A top-level command this step needs (skipped, and said so, when it is missing)."""
    shows: str | None = None
    """Text the output must contain (the step names what it is about)."""


def _available(command: str) -> bool:
    from mlward.cli.main import COMMANDS

    return command in COMMANDS


class Story:
    """The walk-through; :meth:`run` prints it and returns the exit code."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.misbehaved: list[str] = []
        self.skipped: list[str] = []
        self.number = 0

    def run(self) -> int:
        from mlward._internal.demo import MALICIOUS, NOTEBOOK

        started = time.monotonic()
        fast = ["--executor", "thread"]  # a dozen small files: threads start faster
        self.section("A project with problems", [
            Step("set up the project's ledger", ["init"], 0),
        ])
        self.change("The project's release policy", [
            ("[gate] policy = [\"baseline\"] in .mlward/mlward.toml (the gate and audits "
             "read it)", self._policy)])
        self.section("What is wrong with it", [
            Step("scan: a poisoned checkpoint and a leaking notebook",
                 ["scan", ".", *fast], 1, shows="sentiment.pkl"),
        ])
        self.section("Provenance of the training data and the model", [
            Step("manifest of the training data", ["manifest", "create", "data", "-o",
                                                    "data.manifest.json"], 0),
            Step("a signing key, trusted by the project",
                 ["keygen", "-o", ".mlward/keys/demo", "--trust"], 0),
            Step("lineage: which data made the classifier",
                 ["lineage", "record", "--model", "models/classifier.pt", "--data",
                  "data.manifest.json", "--run-id", "demo-run-1"], 0),
            Step("sign the lineage statement",
                 ["sign", "models/classifier.pt.lineage.json", "-k",
                  ".mlward/keys/demo.key"], 0),
            Step("release gate: it must fail", ["gate", ".", *fast], 1, needs="gate"),
        ])
        self.fix(MALICIOUS, NOTEBOOK)
        self.section("After the fix", [
            Step("release gate: now it passes", ["gate", ".", *fast], 0, needs="gate"),
            Step("scan again: nothing at or above high", ["scan", ".", *fast], 0),
            Step("bill of materials of what ships", ["bom", ".", "-o", "bom.cdx.json",
                                                     "--allow-incomplete", *fast], 0,
                 needs="bom"),
            Step("audit snapshot of the whole project", ["audit", ".", *fast], 0,
                 shows="first snapshot"),
        ])
        self.edit()
        self.section("Forensics: what changed, who changed it, and is it caught", [
            Step("audit snapshot: the manifest and lineage no longer match",
                 ["audit", ".", *fast], 1, shows="data/train.csv"),
            Step("audit diff: the last two snapshots", ["audit", "diff"], 1,
                 shows="modified  data   data/train.csv"),
            Step("ledger history of the edited file", ["ledger", "history", "data/train.csv"],
                 0, shows="modified data/train.csv"),
            Step("bom verify: the BOM no longer matches the data",
                 ["bom", "verify", "bom.cdx.json"], 1, needs="bom", shows="train.csv"),
            Step("lineage verify: the model's chain is broken at the data",
                 ["lineage", "verify", "models/classifier.pt"], 1, shows="data"),
        ])
        return self.summary(time.monotonic() - started)

    def section(self, title: str, steps: Sequence[Step]) -> None:
        print(f"\n=== {title} ===")
        for step in steps:
            self.step(step)

    def step(self, step: Step) -> None:
        from mlward.cli.main import main

        self.number += 1
        command = "mlward " + " ".join(step.argv)
        print(f"\n[{self.number}] {step.title}\n$ {command}")
        if step.needs is not None and not _available(step.needs):
            self.skipped.append(step.needs)
            print(f"    (skipped: `mlward {step.needs}` is not part of this mlward version)")
            return
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = main([*step.argv, "--no-color"])
            except Exception as exc:  # the demo reports a crash as misbehaviour, then goes on
                print(f"crashed: {type(exc).__name__}: {exc}")
                code = -1
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        for line in lines[:MAX_LINES]:
            print(f"    {line}")
        if len(lines) > MAX_LINES:
            print(f"    ... ({len(lines) - MAX_LINES} more lines)")
        problem = None
        if code != step.expect:
            problem = f"exit code {code}, expected {step.expect}"
        elif step.shows is not None and step.shows not in out.getvalue():
            problem = f"the output does not mention {step.shows!r}"
        if problem is None:
            print(f"    -> exit {code}, as expected")
        else:
            print(f"    -> UNEXPECTED: {problem}")
            self.misbehaved.append(f"[{self.number}] {command}: {problem}")

    def fix(self, malicious: str, notebook: str) -> None:
        self.change("The fix: quarantine the poisoned model, clean the notebook", [
            (f"move {malicious} out of the project", lambda: self._quarantine(malicious)),
        ])
        self.step(Step("redact the leaked key in the notebook's output",
                       ["notebook", "clean", "--redact", notebook], 0))

    def edit(self) -> None:
        self.change("Someone edits a training file (a flipped label)", [
            ("append a row to data/train.csv", self._flip_label)])

    def change(self, title: str, actions: Sequence[tuple[str, Callable[[], None]]]) -> None:
        print(f"\n=== {title} ===")
        for what, action in actions:
            action()
            print(f"    {what}")

    def _policy(self) -> None:
        with open(self.root / ".mlward" / "mlward.toml", "a", encoding="utf-8") as f:
            f.write('\n[gate]\npolicy = ["baseline"]\n')

    def _quarantine(self, malicious: str) -> None:
        target = self.root.parent / "quarantine"
        target.mkdir(exist_ok=True)
        (self.root / malicious).replace(target / Path(malicious).name)

    def _flip_label(self) -> None:
        with open(self.root / "data/train.csv", "a", encoding="utf-8") as f:
            f.write("great movie,0\n")

    def summary(self, seconds: float) -> int:
        print(f"\n=== Done in {seconds:.1f} s ===")
        if self.skipped:
            print(f"not part of this mlward version, skipped: "
                  f"{', '.join(f'mlward {c}' for c in dict.fromkeys(self.skipped))}")
        if self.misbehaved:
            print("mlward did not behave as expected:")
            for line in self.misbehaved:
                print(f"  {line}")
            return 1
        print("every command behaved as expected: the poisoned model and the leaked key "
              "were found, the fix cleared them, and the edit to data/train.csv was caught "
              "by the audit, named by `audit diff` and `ledger history`, and broke the "
              "model's lineage.")
        return 0
