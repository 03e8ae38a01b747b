"""``mlward audit`` (snapshots, diff, evidence bundles) and ``mlward watch``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlward.cli.inventory import keep
from mlward.cli.scan import add_executor_options, add_report_options, add_walk_options, emit
from mlward.errors import UsageError

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
SCHEDULES = ("hourly", "daily", "weekly")


class _AnyWord(dict):  # type: ignore[type-arg]
    """The subcommands as argparse checks a first word against them: any word passes (a
    word that is not a subcommand is the PATH of ``audit run``); everything else reads the
    subcommands themselves."""

    def __init__(self, parsers: dict[str, argparse.ArgumentParser]) -> None:
        super().__init__()
        self.parsers = parsers

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> argparse.ArgumentParser:
        return self.parsers[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.parsers)

    def __len__(self) -> int:
        return len(self.parsers)

    def keys(self) -> Any:
        return self.parsers.keys()

    def values(self) -> Any:
        return self.parsers.values()

    def items(self) -> Any:
        return self.parsers.items()


class _AuditByDefault(argparse._SubParsersAction):  # type: ignore[type-arg]
    """``mlward audit [PATH]`` audits; ``mlward audit diff|list|export|verify ...`` do the
    rest: a first word that is not a subcommand is the PATH of ``audit run``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choices = _AnyWord(self._name_parser_map)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if values and values[0] not in self._name_parser_map:
            values = ["run", *values]
        super().__call__(parser, namespace, values, option_string)


def _run_options(p: argparse.ArgumentParser) -> None:
    add_report_options(p)
    add_walk_options(p)
    add_executor_options(p)
    p.add_argument("--schedule", choices=SCHEDULES, metavar="WHEN",
                   help="print how to run this audit regularly (a systemd timer, a cron line, "
                   f"a GitHub Actions workflow; WHEN: {', '.join(SCHEDULES)}) and exit")


def register(sub: Any) -> None:
    audit: argparse.ArgumentParser = sub.add_parser(
        "audit", help="audit the whole project and record a snapshot; compare snapshots; "
        "export and verify evidence bundles",
        description="Run every audit step over the project (scan, deps, manifests, lineage, "
        "bom, gate; a step not part of this installation is noted and skipped), record a "
        "content-addressed snapshot (every tracked file's digest, the findings, the BOM digest, "
        "the gate verdict, tool versions, who/host/cwd/time, git commit and dirty state) in "
        ".mlward/snapshots/, commit it to the ledger as one entry with a signed checkpoint, and "
        "say what changed since the last snapshot. A snapshot with a blind step or an "
        "unreadable file is recorded, marked incomplete with the reasons.",
        epilog="Exit codes: 0 nothing at or above --fail-on, 1 findings at or above it, 2 an "
        "incomplete snapshot or a usage error. When the gate step ran, the gate's verdict "
        "(1 violation, 2 blind) replaces --fail-on for the checks it judges; the audit's own "
        "findings (MW780-MW783) still count at --fail-on. Subcommands: diff, list, export, "
        "verify (mlward audit COMMAND --help).")
    _run_options(audit)
    audit.set_defaults(func=run_audit, path=".")
    commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND",
                                    action=_AuditByDefault)
    run = commands.add_parser("run", help="audit PATH (the default: `mlward audit [PATH]`)",
                              description="The same as `mlward audit [PATH]`.")
    _run_options(run)
    run.add_argument("path", nargs="?", default=".", metavar="PATH",
                     help="the project (default: the current folder)")
    for action in run._actions:  # options before PATH belong to `audit`: keep their values
        if action.dest not in ("help", "path"):
            action.default = argparse.SUPPRESS
    run.set_defaults(func=run_audit)

    diff = commands.add_parser(
        "diff", help="what changed between two snapshots, and who changed it",
        description="Compare two snapshots (default: the last two; A alone: A against the "
        "latest): files added, removed, modified and renamed (models, data, code), new and "
        "fixed findings, BOM drift, gate and step changes, and for each changed file the "
        "ledger entries between the two snapshots that name it (who, where, when). A and B "
        "are snapshot ids or unique prefixes (`mlward audit list`).",
        epilog="Exit codes: 0 no change; 1 changes; 2 usage error.")
    diff.add_argument("a", nargs="?", metavar="A", help="the earlier snapshot")
    diff.add_argument("b", nargs="?", metavar="B", help="the later snapshot (default: latest)")
    diff.add_argument("--since", metavar="DATE",
                      help="compare the state at DATE (the last snapshot taken before it, "
                      "else the first after it) with B; ISO 8601, UTC")
    diff.add_argument("-f", "--format", choices=("text", "json"), default="text")
    diff.add_argument("--db", metavar="URL", help="the ledger database (default: the project's)")
    diff.set_defaults(func=run_diff)

    listing = commands.add_parser("list", help="the snapshots recorded in the ledger",
                                  description="Every snapshot committed to the ledger, oldest "
                                  "first: time, id, entry, who, outcome, completeness.")
    listing.add_argument("-f", "--format", choices=("text", "json"), default="text")
    listing.add_argument("--db", metavar="URL",
                         help="the ledger database (default: the project's)")
    listing.set_defaults(func=run_list)

    export = commands.add_parser(
        "export", help="write an evidence bundle for a snapshot",
        description="Write SNAPSHOT (id or prefix; `latest`), the previous snapshot, the ledger "
        "entries they depend on (the two snapshots' and those that name a file changed "
        "between them) as tlog-proof receipts, the signed (and cosigned) checkpoint, the "
        "public keys and verification instructions into one .tar.gz that `mlward audit "
        "verify` checks offline.")
    export.add_argument("snapshot", metavar="SNAPSHOT")
    export.add_argument("-o", "--output", type=Path, required=True, metavar="BUNDLE",
                        help="the bundle to write (bundle.tar.gz)")
    export.add_argument("--db", metavar="URL", help="the ledger database (default: the "
                        "project's)")
    export.set_defaults(func=run_export)

    verify = commands.add_parser(
        "verify", help="check an evidence bundle offline",
        description="Check BUNDLE with no access to the project: the archive's integrity "
        "digest and layout, every member's digest, the checkpoint's signature (--key: the "
        "ledger's verifier key, obtained independently) and cosignatures (--witness), every "
        "entry's inclusion proof, and that each snapshot document hashes to the id its ledger "
        "entry holds. Names every check that fails.",
        epilog="Exit codes: 0 verified; 1 something was altered (named); 2 usage error.")
    verify.add_argument("bundle", type=Path, metavar="BUNDLE")
    verify.add_argument("--key", metavar="VERIFIER",
                        help="the ledger's verifier key (name+id+key) or a file holding it "
                        "(default: the key in the bundle, which proves consistency only)")
    verify.add_argument("--witness", metavar="KEY", action="append",
                        help="a witness key whose cosignature the checkpoint must carry "
                        "(repeatable; default: the witnesses the bundle names)")
    verify.add_argument("-f", "--format", choices=("text", "json"), default="text")
    verify.set_defaults(func=run_verify)

    watch = sub.add_parser(
        "watch", help="record changes to the project's files in the ledger as they happen",
        description="Watch PATH (the watchfiles library) and append a ledger entry for every "
        "file added, modified, renamed or removed (debounced; with its SHA-256 and the one it "
        "replaced), so that `ledger history` and `audit diff` can say who changed what and "
        "when. A new or changed model file is scanned at once and the verdict recorded. "
        "Folders a scan leaves out (.git, virtual environments, .mlward, ignore files) are "
        "not watched. Stop with Ctrl-C.",
        epilog="Exit codes: 0 stopped; 2 usage error (no ledger, nothing to watch).")
    watch.add_argument("path", nargs="?", default=".", type=Path, metavar="PATH")
    watch.add_argument("--debounce", type=int, default=300, metavar="MS",
                       help="wait until changes have settled this long (default: 300 ms)")
    watch.add_argument("--no-scan", action="store_true",
                       help="record changes only; do not scan new model files")
    add_walk_options(watch)
    watch.set_defaults(func=run_watch)


def _project(args: argparse.Namespace) -> tuple[Any, Path]:
    from mlward._internal.ledger import find_project, open_ledger

    folder = find_project(Path(getattr(args, "path", ".")))
    if folder is None:
        raise UsageError("no mlward project here: run `mlward init` first (audits are kept in "
                         ".mlward/ and committed to its ledger)")
    return open_ledger(args.settings.db, folder.parent), folder


def run_audit(args: argparse.Namespace) -> int:
    if getattr(args, "schedule", None):
        from mlward._internal.audit.schedule import examples

        sys.stdout.write(examples(args.schedule, Path(args.path).resolve()))
        return EXIT_OK
    from mlward._internal.audit.diff import summary_lines
    from mlward._internal.audit.record import run_audit as audit

    root = Path(args.path).resolve()
    if not root.is_dir():
        raise UsageError(f"{args.path} is not a folder")
    ledger, folder = _project(args)
    with ledger:
        result = audit(root, args.settings, ledger, folder)
    emit(result.report, args, action="audit", record=False)
    keep(result.snapshot.to_dict(), args, "audit")
    if args.settings.quiet:
        return result.exit_code
    out = sys.stdout if args.format == "text" and args.output is None else sys.stderr
    s = result.snapshot
    state = "complete" if s.complete else f"INCOMPLETE ({len(s.incomplete)} reason(s))"
    print(f"\naudit snapshot {result.id[:16]} ({state}): {len(s.files)} files, ledger entry "
          f"{result.entry}" + (", checkpoint signed" if result.checkpoint else
                               ", no checkpoint (no ledger key here)"), file=out)
    for r in s.steps:
        print(f"  {r.name:<10} {r.status:<11} {r.detail}", file=out)
    for reason in s.incomplete[:10]:
        print(f"  incomplete: {reason}", file=out)
    if result.changes is None:
        print("first snapshot of this project" if s.previous is None else
              "the previous snapshot's document is missing: nothing to compare", file=out)
    else:
        print(f"since snapshot {result.changes.before[:16]} "
              f"({result.changes.before_time[:19]}Z):", file=out)
        for line in summary_lines(result.changes):
            print(f"  {line}", file=out)
    return result.exit_code


def _pick(history: list[Any], ref: str) -> Any:
    if ref == "latest" and history:
        return history[-1]
    found = [r for r in history if r.id.startswith(ref.lower())] if len(ref) >= 4 else []
    if len(found) != 1:
        raise UsageError(f"snapshot {ref!r} " + ("is ambiguous" if found else
                         "is not in the ledger (`mlward audit list`; give 4+ hex digits)"))
    return found[0]


def run_diff(args: argparse.Namespace) -> int:
    from mlward._internal.audit.diff import attribute, diff_snapshots, summary_lines
    from mlward._internal.audit.record import recorded, snapshot_folder
    from mlward._internal.audit.snapshot import Snapshot
    from mlward.cli.ledger import _time_bound

    ledger, folder = _project(args)
    with ledger:
        history = recorded(ledger)
        b = _pick(history, args.b) if args.b else (history[-1] if history else None)
        if args.since:
            since = _time_bound(args.since, "--since")
            before = [r for r in history if r.entry.event.time < str(since)]
            a = before[-1] if before else next(
                (r for r in history if r.entry.event.time >= str(since)), None)
        elif args.a:
            a = _pick(history, args.a)
        else:
            a = history[-2] if len(history) >= 2 else None
        if a is None or b is None:
            raise UsageError("two snapshots are needed: run `mlward audit` (again)")
        docs = snapshot_folder(folder)
        d = diff_snapshots(Snapshot.load(docs, a.id), Snapshot.load(docs, b.id), a.id, b.id)
        d = attribute(d, ledger, Snapshot.load(docs, b.id).root, b.index, a.index)
    if args.format == "json":
        print(json.dumps(d.to_dict(), indent=1))
    else:
        print(f"snapshot {a.id[:16]} ({d.before_time[:19]}Z) -> {b.id[:16]} "
              f"({d.after_time[:19]}Z)")
        for line in summary_lines(d, limit=1000):
            print(f"  {line}")
    return EXIT_OK if d.empty else EXIT_FAILED


def run_list(args: argparse.Namespace) -> int:
    from mlward._internal.audit.record import recorded

    ledger, _ = _project(args)
    with ledger:
        history = recorded(ledger)
    if args.format == "json":
        print(json.dumps([{"snapshot": r.id, "entry": r.index, **r.entry.to_json()}
                          for r in history], indent=1))
        return EXIT_OK
    for r in history:
        e = r.entry.event
        complete = "complete" if e.details.get("complete") else "INCOMPLETE"
        print(f"{e.time[:19]}Z  {r.id[:16]}  entry {r.index:<6} {e.actor}@{e.host}  "
              f"{e.outcome:<12} {complete}")
    if not history:
        print("no snapshots yet: run `mlward audit`")
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    from mlward._internal.audit.bundle import export_bundle
    from mlward._internal.audit.record import recorded

    ledger, folder = _project(args)
    with ledger:
        chosen = _pick(recorded(ledger), args.snapshot)
        n = export_bundle(ledger, folder, chosen.id, args.output)
        verifier = ledger.verifier
    print(f"wrote {args.output}: snapshot {chosen.id[:16]}, {n} ledger entries with inclusion "
          "proofs")
    print(f"verify offline: mlward audit verify {args.output} --key '{verifier}'")
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    from mlward._internal.audit.bundle import MAX_BUNDLE, verify_bundle
    from mlward._internal.ledger.witness import WitnessVerifier
    from mlward.cli.ledger import _verifier

    try:
        with open(args.bundle, "rb") as f:
            data = f.read(MAX_BUNDLE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {args.bundle}: {exc.strerror or exc}") from None
    witnesses = [WitnessVerifier.parse(_key_text(w)) for w in args.witness] \
        if args.witness else None
    result = verify_bundle(data, _verifier(args) if args.key else None, witnesses)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=1))
    elif result.ok:
        print(f"bundle ok: snapshot {result.snapshot} of {result.origin}; {result.entries} "
              f"entries proven in the signed checkpoint of size {result.size}"
              + (f", cosigned by {', '.join(result.witnessed_by)}"
                 if result.witnessed_by else ""))
    else:
        print(f"bundle NOT verified: {len(result.problems)} check(s) failed")
        for what, why in result.problems:
            print(f"  {what}: {why}")
    if args.format != "json":
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


def _key_text(text: str) -> str:
    path = Path(text)
    if "+" not in text or path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{text}: not a key, and {exc}") from None
    return text


def run_watch(args: argparse.Namespace) -> int:
    from mlward._internal.audit.watch import Watcher

    root = Path(args.path).resolve()
    if not root.is_dir():
        raise UsageError(f"{args.path} is not a folder")
    ledger, _ = _project(args)
    ledger.close()  # the watcher opens the ledger for each batch: other commands append too

    def report(line: str) -> None:
        if not args.settings.quiet:
            print(line, flush=True)

    watcher = Watcher(root, args.settings, debounce_ms=args.debounce, scan=not args.no_scan,
                      on_record=report)
    report(f"watching {root} (Ctrl-C stops)")
    watcher.run()
    return EXIT_OK
