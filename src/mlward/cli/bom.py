"""``mlward bom``: the ML bill of materials; ``mlward bom verify`` and ``mlward bom diff``.

One parser serves the three (``bom [PATH ...]``, ``bom verify BOM [PATH]``, ``bom diff OLD
NEW``): argparse cannot take both a list of paths and sub-commands in the same place, so the
first word chooses.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from mlward.cli.deps import add_source_options
from mlward.cli.inventory import keep
from mlward.cli.main import severity_arg
from mlward.cli.scan import add_executor_options, add_walk_options
from mlward.errors import UsageError
from mlward.findings import Severity

BOM_FORMATS = ("cyclonedx", "spdx", "inventory")
MEDIA_TYPES = {"cyclonedx": "application/vnd.cyclonedx+json", "spdx": "application/spdx+json",
               "inventory": "application/vnd.mlward.inventory+json"}
USAGE = """mlward bom [options] [PATH ...]
       mlward bom verify [options] BOM [PATH]
       mlward bom diff [options] OLD NEW"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bom", usage=USAGE,
        help="ML bill of materials (CycloneDX 1.6/1.7, SPDX 3.0.1): models, datasets, "
        "libraries, services, hub models and AI services; verify it; diff two",
        description="`mlward bom [PATH ...]` (default: the project root) scans the tree and "
        "writes one BOM of every model (digests, format, framework, parameters, tensors, "
        "model card), dataset covered by a manifest or lineage statement, Python dependency "
        "(with OSV vulnerabilities), ML tool service, hub model and hosted AI service the code "
        "uses, the lineage as formulation, each file's manifest/signature/ledger status, and "
        "the ledger's signed checkpoint. `bom verify BOM [PATH]` re-hashes what the BOM lists "
        "(relative to PATH, default the project root), re-checks its signatures and the "
        "ledger checkpoint. `bom diff OLD NEW` lists what changed (OLD and NEW are BOM files "
        "or ledger:N / ledger:latest). Besides local paths, `mlward bom` takes the scan's "
        "remote targets (s3://, gs://, az://, mlflow://HOST/models/NAME[/VERSION], "
        "hf-cache:[ORG/NAME[@REVISION]]): each registered model version, and each model "
        "object of a bucket, is a model with its registry coordinates (no digests: they "
        "would need every byte; `mlward manifest create` on the location computes them).",
        epilog="Exit codes: bom: 0 written, 2 usage error or an incomplete BOM (unless "
        "--allow-incomplete). verify: 0 nothing changed, 1 any drift (unless --fail-on raises "
        "the bar), 2 something could not be checked. diff: 0, or 1 with --fail-on-drift when "
        "anything changed.")
    p.add_argument("target", nargs="*", metavar="ARG",
                   help="PATHs and remote targets to put in the BOM; or `verify BOM [PATH]`; "
                   "or `diff OLD NEW`")
    p.add_argument("-f", "--format", metavar="FORMAT",
                   help="bom: cyclonedx (default), spdx or inventory (mlward's own JSON); "
                   "verify/diff: the report format (text, json, sarif, markdown)")
    p.add_argument("-o", "--output", metavar="FILE", type=Path,
                   help="write the BOM (or the verify/diff report) to FILE, atomically")
    p.add_argument("--fail-on", metavar="SEVERITY", type=severity_arg, default=None,
                   help="verify: exit 1 for drift at or above this severity (default: info, "
                   "any drift)")
    c = p.add_argument_group("bom")
    c.add_argument("--spec", choices=("1.6", "1.7"), default="1.6",
                   help="CycloneDX version (default: 1.6)")
    c.add_argument("--sign", metavar="KEY", type=Path,
                   help="also sign the BOM with this private key into OUTPUT.dsse.json "
                   "(`mlward verify OUTPUT` checks it); needs -o")
    c.add_argument("--allow-incomplete", action="store_true",
                   help="exit 0 even when something could not be read (the BOM marks it "
                   "mlward:incomplete)")
    c.add_argument("--report", metavar="FILE", type=Path,
                   help="also write the scan report (JSON) to FILE and reference it from each "
                   "model and dataset")
    c.add_argument("--probe", metavar="URL", action="append", default=[],
                   help="also probe this live ML tool (MLflow, Ray, Jupyter, TensorBoard, "
                   "Gradio) and list it as a service (repeatable)")
    c.add_argument("--probe-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="per-request timeout of --probe (default: 5)")
    c.add_argument("--name", help="the project's name in the BOM (default: the root folder's)")
    add_source_options(p)
    add_walk_options(p)
    add_executor_options(p)
    v = p.add_argument_group("bom and bom verify: signatures")
    v.add_argument("--key", metavar="PUB", type=Path, action="append",
                   help="accept this public key (repeatable) instead of the trust file")
    v.add_argument("--trust", metavar="FILE", type=Path,
                   help="trust file of accepted public keys (default: $MLWARD_TRUST or "
                   ".mlward/trusted_keys.pem when it exists; without keys signatures are "
                   "listed as unchecked)")
    d = p.add_argument_group("bom diff")
    d.add_argument("--fail-on-drift", action="store_true",
                   help="exit 1 when anything changed (for CI)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    words = list(args.target)
    if words and words[0] == "verify":
        if len(words) not in (2, 3):
            raise UsageError("usage: mlward bom verify BOM [PATH]")
        return run_verify(args, Path(words[1]), Path(words[2]) if len(words) == 3 else None)
    if words and words[0] == "diff":
        if len(words) != 3:
            raise UsageError("usage: mlward bom diff OLD NEW")
        return run_diff(args, words[1], words[2])
    from mlward._internal.targets import is_target

    return run_bom(args, [Path(w) for w in words if not is_target(w)],
                   [w for w in words if is_target(w)])


def _trusted(args: argparse.Namespace) -> Any:
    """The keys given with --key or --trust, else the trust file when it exists, else None."""
    from mlward._internal.provenance import default_trust_file

    trust = args.trust or default_trust_file(args.settings.trust)
    if not args.key and args.trust is None and not trust.exists():
        return None
    from mlward._internal.provenance import keys

    if args.key:
        loaded = [keys.load_public(p) for p in args.key]
        return {keys.key_id(k): k for k in loaded}
    return keys.load_trusted(trust)


def run_bom(args: argparse.Namespace, paths: list[Path], targets: list[str]) -> int:
    import importlib
    from concurrent.futures import ThreadPoolExecutor

    from mlward._internal.bom import cyclonedx, spdx
    from mlward._internal.bom.collect import Options, build_inventory
    from mlward._internal.bom.summary import summary
    from mlward._internal.pipeline import scan_root
    from mlward._internal.vulndb import source_for
    from mlward.formats import render, write_output

    fmt = args.format or "cyclonedx"
    if fmt not in BOM_FORMATS:
        raise UsageError(f"unknown BOM format {fmt!r} (choose from {', '.join(BOM_FORMATS)})")
    if args.sign and args.output is None:
        raise UsageError("--sign needs -o FILE: the signature is written beside it")
    s = args.settings
    if not paths and not targets:
        paths = [scan_root(s, [Path.cwd()])]
    for p in paths:
        if not p.exists():
            raise UsageError(f"no such file or directory: {p}")
    options = Options(vulns=source_for(s), trusted=_trusted(args), probe_urls=args.probe,
                      probe_timeout=args.probe_timeout, name=args.name, targets=targets)
    # During the scan this process mostly waits for its workers: the validator loads its
    # schemas then, and the signature checks that follow it import their cryptography.
    with ThreadPoolExecutor(1) as pool:
        if fmt == "cyclonedx":
            pool.submit(cyclonedx.strict_validator, args.spec)
        pool.submit(importlib.import_module, "mlward._internal.provenance.lineage")
        inventory, report, _ = build_inventory(paths, s, options)
    report_ref = None
    if args.report is not None:
        write_output(render(report, "json"), args.report)
        report_ref = str(args.report)
    if fmt == "cyclonedx":
        text = cyclonedx.render(inventory, args.spec, report_ref)
    elif fmt == "spdx":
        text = spdx.render(inventory)
    else:
        text = inventory.to_json()
    if args.output is not None:
        write_output(text, args.output)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    notes = []
    if args.sign:
        notes.append(_sign(args, text, MEDIA_TYPES[fmt]))
    incomplete = inventory.is_incomplete and not args.allow_incomplete
    code = 2 if incomplete else 0
    notes.append(_record(args, inventory, text, fmt, code))
    keep(inventory.to_dict(), args, "bom")
    if not s.quiet:
        out = sys.stderr
        print(summary(inventory, verbose=s.verbose > 0), end="", file=out)
        for n in notes:
            if n:
                print(n, file=out)
        if args.output is not None:
            print(f"written to {args.output}", file=out)
        if incomplete:
            print("result: incomplete (exit 2; --allow-incomplete accepts it)", file=out)
    return code


def _sign(args: argparse.Namespace, text: str, media_type: str) -> str:
    from mlward._internal.provenance import chain, dsse, keys

    key = keys.load_private(args.sign)
    out = chain.signature_path(args.output)
    dsse.sign(text.encode(), media_type, key).write(out)
    return f"signed: {out} (key id {keys.key_id(key.public_key())[:16]}...)"


def _record(args: argparse.Namespace, inventory: Any, text: str, fmt: str, code: int) -> str:
    """Keep the inventory in the project and record the run in the ledger."""
    from collections import Counter

    from mlward._internal.bom.store import ACTION, keep
    from mlward._internal.ledger import LedgerError, find_project, record_event
    from mlward._internal.ledger.project import resolve

    s = args.settings
    try:
        config = resolve(s.db)
    except LedgerError as exc:
        return f"mlward: warning: the BOM was not recorded in the ledger: {exc.diagnostics()}"
    if config is None:
        return ""
    project = config.folder or find_project()
    if project is not None:
        keep(inventory, project)
    counts = Counter(c.kind for c in inventory.components)
    name = fmt if fmt != "cyclonedx" else f"cyclonedx-{args.spec}"
    try:
        record_event(ACTION, Path(inventory.root).as_uri(), db=s.db,
                     outcome={0: "pass"}.get(code, "incomplete"),
                     digests={"sha256": hashlib.sha256(text.encode()).hexdigest()},
                     details={"inventory": inventory.digest(), "format": name,
                              "output": str(args.output) if args.output else "-",
                              "components": dict(sorted(counts.items())),
                              "incomplete": inventory.is_incomplete})
    except LedgerError as exc:
        return f"mlward: warning: the BOM was not recorded in the ledger: {exc.diagnostics()}"
    return "recorded in the ledger"


def _report_args(args: argparse.Namespace, default_fail_on: Severity) -> None:
    """verify and diff report like every command: their format, fail-on and output."""
    from mlward.formats import writer_names

    args.format = args.format or args.settings.format
    if args.format not in writer_names():
        raise UsageError(f"unknown report format {args.format!r} (choose from "
                         f"{', '.join(writer_names())})")
    if args.fail_on is None:
        args.settings = args.settings._replace(fail_on=default_fail_on)


def run_verify(args: argparse.Namespace, bom: Path, root: Path | None) -> int:
    from mlward._internal.bom.read import load
    from mlward._internal.bom.verify import verify
    from mlward._internal.pipeline import scan_root
    from mlward.cli.scan import emit

    _report_args(args, Severity.INFO)
    inventory = load(bom)
    folder = root.resolve() if root else scan_root(args.settings, [Path.cwd()])
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    report = verify(inventory, folder, bom_file=bom, settings=args.settings,
                    trusted=_trusted(args))
    return emit(report, args, action="bom.verify")


def run_diff(args: argparse.Namespace, old: str, new: str) -> int:
    from datetime import datetime, timezone

    from mlward._internal.bom import load_bom
    from mlward._internal.bom.diff import diff
    from mlward._version import __version__
    from mlward.cli.scan import emit
    from mlward.findings import ReportBuilder, TargetKind

    _report_args(args, Severity.INFO)
    before, after = load_bom(old, args.settings), load_bom(new, args.settings)
    builder = ReportBuilder(TargetKind.REPOSITORY, started=datetime.now(timezone.utc),
                            version=__version__, inputs=[old, new])
    builder.merge(diff(before, after))
    builder.stats.update({"old_components": len(before.components),
                          "new_components": len(after.components)})
    report = builder.build(finished=datetime.now(timezone.utc))
    code = emit(report, args, action="bom.diff")
    return code if args.fail_on_drift or code != 1 else 0
