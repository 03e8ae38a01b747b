"""``mlward gate``: run the checks, enforce the policy, write the outputs, alert, record."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlward.cli.deps import add_source_options
from mlward.cli.inventory import keep
from mlward.cli.scan import add_executor_options, add_walk_options
from mlward.formats import write_output

if TYPE_CHECKING:
    from mlward._internal.alerts.config import AlertConfig
    from mlward._internal.alerts.send import Delivery
    from mlward._internal.policy.evaluate import GateResult

FORMATS = ("text", "json", "sarif", "junit", "markdown")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "gate",
        help="run the checks and enforce a policy over their combined results (CI gate)",
        description="Run the configured checks (scan, deps, provenance, bom) over PATHs, evaluate "
        "the policy (YAML/TOML rules with CEL or Rego conditions; packs: baseline, strict) "
        "over one input document, print each violation with the rule behind it, the "
        "findings behind it and how to fix it, send alerts for new violations ([alerts] "
        "settings) and record the run and each violation in the ledger.",
        epilog="Exit codes: 0 pass; 1 a violation that is not waived; 2 the gate could not "
        "decide (an invalid policy, a check that could not examine something, a condition "
        "that could not be evaluated). A failed alert never changes the exit code.")
    p.add_argument("paths", nargs="*", metavar="PATH", type=Path,
                   help="files or folders to check (default: the current folder)")
    p.add_argument("--policy", metavar="FILE", action="append",
                   help="policy file (.yaml/.yml/.toml) or pack (baseline, strict); "
                   "repeatable, later ones override earlier ones (default: policy in [gate])")
    p.add_argument("--engine", choices=("cel", "rego"),
                   help="which conditions to evaluate (default: engine in [gate], else cel)")
    p.add_argument("--check", metavar="CHECK", action="append",
                   choices=("scan", "deps", "provenance", "bom"),
                   help="run only this check: scan, deps, provenance, bom (repeatable; "
                   "default: checks in [gate], else all of them; bom only when the project "
                   "has a BOM)")
    p.add_argument("--bom", metavar="FILE", type=Path,
                   help="the BOM the bom check verifies (default: bom in [gate], else "
                   "bom.cdx.json or bom.spdx.json at the root)")
    p.add_argument("-f", "--format", choices=FORMATS, default="text",
                   help="output format: text, json, sarif, junit, markdown (default: text)")
    p.add_argument("-o", "--output", metavar="FILE", type=Path,
                   help="write the output to FILE (atomically) instead of standard output")
    for fmt in ("json", "sarif", "junit", "markdown"):
        p.add_argument(f"--{fmt}", metavar="FILE", type=Path, dest=f"also_{fmt}",
                       help=f"also write the {fmt} output to FILE")
    p.add_argument("--write-input", metavar="FILE", type=Path,
                   help="also write the input document the policy read (JSON), e.g. to try "
                   "a policy with `opa eval`")
    p.add_argument("--alert-all", action="store_true",
                   help="alert every violation, not only those new since the last gate run")
    p.add_argument("--no-alerts", action="store_true", help="send no alerts this run")
    add_walk_options(p)
    add_executor_options(p)
    add_source_options(p)
    p.set_defaults(func=run)


def _policy_base(args: argparse.Namespace) -> Path:
    """Policy files given as flags are relative to the current folder; those in the
    settings, to the project (the folder holding .mlward/, else pyproject.toml)."""
    if args.policy:
        return Path.cwd()
    from mlward.settings import PROJECT_FOLDER, find_upwards

    return (find_upwards(Path.cwd(), PROJECT_FOLDER)
            or find_upwards(Path.cwd(), "pyproject.toml") or Path.cwd())


def run(args: argparse.Namespace) -> int:
    from mlward._internal.alerts.config import alert_config
    from mlward._internal.policy.gate import gate_config, run_gate
    from mlward._internal.policy.record import new_run_id

    s = args.settings
    config = gate_config(s, policy=args.policy or (), checks=args.check or (),
                         bom=args.bom.resolve() if args.bom else None,
                         engine=args.engine)
    alerts = None
    if not args.no_alerts:  # checked before the checks run: a typo should not cost a scan
        alerts = alert_config(s.section("alerts"), origin=s.origins.get("[alerts]", "settings"),
                              env=os.environ)
    paths = args.paths or [Path.cwd()]
    from mlward.cli.progress import scan_progress

    with scan_progress(quiet=s.quiet) as observer:
        result = run_gate(paths, s, config, base=_policy_base(args), scan_observer=observer)
    _write_outputs(result, args)
    run_id = new_run_id()
    state, deliveries = _alert(result, alerts, args) if alerts and alerts.channels \
        else (None, [])
    _record(result, args, run_id, state, deliveries)
    keep(result.to_dict(), args, "gate")
    return result.exit_code


def _write_outputs(result: GateResult, args: argparse.Namespace) -> None:
    from mlward._internal.policy.render import GATE_FORMATS

    fmt = args.format or "text"
    rendered = GATE_FORMATS[fmt](result)
    if args.output is not None:
        write_output(rendered.text, args.output)
        if fmt != "text" and not args.settings.quiet:  # as `mlward scan -o` does
            sys.stderr.write(GATE_FORMATS["text"](result).text)
    else:
        sys.stdout.write(rendered.text)
        sys.stdout.flush()
    warnings = list(rendered.warnings)
    for fmt in ("json", "sarif", "junit", "markdown"):
        target = getattr(args, f"also_{fmt}")
        if target is not None:
            extra = GATE_FORMATS[fmt](result)
            write_output(extra.text, target)
            warnings += extra.warnings
    if args.write_input is not None:
        write_output(json.dumps(result.document, indent=1) + "\n", args.write_input)
    for w in dict.fromkeys(warnings):
        print(f"mlward: warning: {w}", file=sys.stderr)


def _alert(result: GateResult, alerts: AlertConfig,
           args: argparse.Namespace) -> tuple[dict[str, Any], list[Delivery]]:
    from mlward._internal.alerts.send import Alert, deliver_all
    from mlward._internal.alerts.state import next_state, plan
    from mlward._internal.ledger import LedgerError
    from mlward._internal.policy.record import item_of, previous_run, project_uri

    root = Path(result.root)
    try:
        previous = previous_run(project_uri(result), db=args.settings.db, root=root)
    except LedgerError as exc:
        print(f"mlward: warning: the last gate run could not be read from the ledger "
              f"({exc.diagnostics()}): every violation counts as new", file=sys.stderr)
        previous = None
    current = {v.fingerprint: item_of(v) for v in result.counted}
    template = Alert("violations", root.name, result.verdict, result.policy.name,
                     result.policy.digest,
                     datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), ())
    p = plan(alerts.channels, current, previous, alert_all=args.alert_all, template=template)
    deliveries = deliver_all(alerts, p.sends)
    for d in deliveries:
        if not d.ok:
            print(f"mlward: warning: alert not delivered (MW903) after {d.attempts} "
                  f"attempt(s): {d.error}; it will be sent again on the next run",
                  file=sys.stderr)
        elif not args.settings.quiet:
            print(f"mlward: {d.alert.kind} alert ({len(d.alert.items)} item(s)) sent to "
                  f"{d.channel.kind} {d.channel.name}", file=sys.stderr)
    return next_state(alerts.channels, current, p, deliveries), deliveries


def _record(result: GateResult, args: argparse.Namespace, run_id: str,
            state: dict[str, Any] | None, deliveries: list[Delivery]) -> None:
    from mlward._internal.ledger import LedgerError
    from mlward._internal.policy.record import record_gate

    try:
        record_gate(result, run=run_id, db=args.settings.db, root=Path(result.root),
                    alert_state=state, deliveries=deliveries)
    except LedgerError as exc:
        print(f"mlward: warning: the gate run was not recorded in the ledger: "
              f"{exc.diagnostics()}", file=sys.stderr)
