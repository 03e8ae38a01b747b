"""``mlward ledger ...``: the project's tamper-evident audit ledger."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlward.errors import UsageError

EXIT_OK, EXIT_TAMPERED, EXIT_ERROR = 0, 1, 2


def register(sub: Any) -> None:
    ledger = sub.add_parser(
        "ledger", help="the tamper-evident audit ledger: append, log, verify, prove, export",
        description="Every security-relevant mlward command appends an entry to the project's "
        "ledger (a Merkle log, RFC 9162). The ledger is found in .mlward/ (walking up from "
        "the current directory), or at --db / MLWARD_DB.",
        epilog="Exit codes: 0 ok; 1 verification found tampering; 2 usage or ledger error.")
    commands = ledger.add_subparsers(dest="ledger_command", metavar="COMMAND", required=True)
    _register(commands)
    for parser in commands.choices.values():
        parser.set_defaults(func=_tampering_exits_1(parser.get_default("func")))


def _register(commands: Any) -> None:
    append = _command(commands, "append", "append an entry (for scripts and hooks)")
    append.add_argument("--action", required=True, help="what happened, e.g. deploy, model.push")
    append.add_argument("--resource", required=True, help="what it happened to (path or URI)")
    append.add_argument("--outcome", default="ok", help="e.g. ok, pass, fail (default: ok)")
    append.add_argument("--digest", action="append", default=[], metavar="ALG:HEX",
                        help="a content digest, e.g. sha256:ab12... (repeatable)")
    append.add_argument("--details", metavar="JSON", help="a JSON object with more detail")
    append.add_argument("--actor", help="who (default: the current user)")
    append.set_defaults(func=run_append)

    log = _command(commands, "log", "list entries: who did what, where and when")
    log.add_argument("--actor", help="only this user")
    log.add_argument("--action", help="only this action (and its sub-actions: manifest "
                     "matches manifest.create)")
    log.add_argument("--resource", metavar="TEXT", help="only resources containing TEXT")
    log.add_argument("--since", metavar="TIME", help="from this UTC date or time (ISO 8601)")
    log.add_argument("--until", metavar="TIME", help="before this UTC date or time (ISO 8601)")
    log.add_argument("--limit", type=int, metavar="N", help="at most N entries")
    log.add_argument("-f", "--format", choices=("table", "json"), default="table")
    log.set_defaults(func=run_log)

    verify = _command(commands, "verify", "recompute the tree and check every checkpoint",
                      "Recompute every leaf and node from the entries, compare with the stored "
                      "tree and every checkpoint, and name the first entry that was edited, "
                      "deleted, inserted or reordered; a project's ledger that was deleted or "
                      "emptied is tampering too. Reads without writing (a read-only copy "
                      "verifies). With --file, verify an export offline; with --receipt, a "
                      "tlog-proof receipt; with --consistency, a consistency proof.")
    verify.add_argument("--file", type=Path, metavar="EXPORT",
                        help="verify an export (from `ledger export`) instead of the database")
    verify.add_argument("--receipt", type=Path, metavar="FILE",
                        help="verify a receipt (from `ledger prove`)")
    verify.add_argument("--consistency", type=Path, metavar="FILE",
                        help="verify a consistency proof (from `ledger consistency`)")
    verify.add_argument("--key", metavar="VERIFIER",
                        help="the verifier key (name+id+key) or a file holding it; default: "
                        "the project's")
    verify.add_argument("--checkpoint", type=Path, action="append", default=[], metavar="FILE",
                        help="also check the ledger against this signed checkpoint (e.g. one "
                        "kept by a third party: detects a rollback)")
    verify.add_argument("-f", "--format", choices=("text", "json"), default="text")
    verify.set_defaults(func=run_verify)

    prove = _command(commands, "prove", "a receipt proving an entry is in the ledger",
                     "Print a c2sp.org/tlog-proof@v1 receipt for ENTRY (its index): the entry, "
                     "its inclusion proof and the latest signed checkpoint (one is signed only "
                     "when none covers every entry yet). `mlward ledger verify --receipt FILE "
                     "--key KEY` checks it offline.")
    prove.add_argument("entry", type=int, metavar="ENTRY", help="the entry's index")
    prove.add_argument("-o", "--output", type=Path, metavar="FILE",
                       help="write the receipt to FILE (.tlog-proof)")
    prove.set_defaults(func=run_prove)

    checkpoint = _command(commands, "checkpoint", "sign and print a checkpoint of the tree",
                          "Sign a C2SP checkpoint (origin, size, root) of the current tree "
                          "with the ledger key, store it, and print it. Keep a copy elsewhere: "
                          "`verify --checkpoint` then detects a rollback.")
    checkpoint.set_defaults(func=run_checkpoint)

    export = _command(commands, "export", "write the entries and a signed checkpoint to a file",
                      "Write a header line with the latest signed checkpoint (signed now only "
                      "when none covers every entry) and the verifier key, then every entry as "
                      "one canonical JSON line. `mlward ledger verify --file EXPORT --key KEY` "
                      "checks it offline.")
    export.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    export.set_defaults(func=run_export)

    consistency = _command(
        commands, "consistency", "prove that the ledger only grew between two checkpoints",
        "Check two signed checkpoints of this ledger (OLD, and NEW or else the latest) and "
        "print an RFC 9162 consistency proof that the log of NEW extends the log of OLD "
        "without changing any entry OLD covers: a checkpoint someone kept earlier thus proves "
        "the ledger was not rewritten since. `mlward ledger verify --consistency FILE --key "
        "KEY` checks the proof offline.")
    consistency.add_argument("old", type=Path, metavar="OLD",
                             help="the older signed checkpoint (a file)")
    consistency.add_argument("new", type=Path, nargs="?", metavar="NEW",
                             help="the newer signed checkpoint (default: the latest)")
    consistency.add_argument("-o", "--output", type=Path, metavar="FILE",
                             help="write the proof to FILE")
    consistency.set_defaults(func=run_consistency)

    history = _command(commands, "history", "every entry that touched a file, following "
                       "renames, with inclusion proofs",
                       "Forensics for one file, model or dataset: every entry that names PATH "
                       "(or a manifest root holding it) or its content digest (the file's "
                       "SHA-256 now, or --digest), following renames and copies through the "
                       "digests the ledger saw (audit snapshots, watch, manifests, signatures, "
                       "scans, lineage, BOMs, gates), each with who (user, host, key id), "
                       "where (project, cwd, git commit), when, and its RFC 9162 inclusion "
                       "proof in a signed checkpoint, checked before it is shown.")
    history.add_argument("path", nargs="?", metavar="PATH",
                         help="the file or folder (need not exist any more)")
    history.add_argument("--digest", action="append", default=[], metavar="ALG:HEX",
                         help="also (or only) follow this content digest, e.g. sha256:ab12...")
    history.add_argument("--no-follow", action="store_true",
                         help="only entries naming PATH or the digests given: no renames")
    history.add_argument("-f", "--format", choices=("table", "json"), default="table")
    history.set_defaults(func=run_history)

    witness = commands.add_parser(
        "witness", help="witness cosignatures: a second key vouching the ledger only grew",
        description="A witness holds its own key (keep it on another machine, or with "
        "another team). `cosign` checks that the latest checkpoint extends the last one this "
        "witness cosigned (an RFC 9162 consistency proof) and adds a C2SP cosignature/v1 "
        "line. List witness keys under [ledger] witnesses in .mlward/mlward.toml: `ledger "
        "verify` then requires their valid cosignatures.")
    wsub = witness.add_subparsers(dest="witness_command", metavar="COMMAND", required=True)
    wkey = wsub.add_parser("keygen", help="create a witness key pair",
                           description="Write PREFIX.key (private, 0600) and PREFIX.pub "
                           "(the witness key to list under [ledger] witnesses).")
    wkey.add_argument("name", metavar="NAME", help="the witness's name, e.g. witness.example.com")
    wkey.add_argument("-o", "--output", type=Path, default=Path("witness"), metavar="PREFIX")
    wkey.set_defaults(func=run_witness_keygen)
    cosign = _command(wsub, "cosign", "cosign the ledger's latest checkpoint",
                      "Check the latest stored checkpoint's signature and that it extends the "
                      "last checkpoint this witness cosigned (kept in --state), then store the "
                      "cosigned checkpoint in the ledger and print it. Refuses a rollback or "
                      "a rewritten history.")
    cosign.add_argument("--key", type=Path, required=True, metavar="FILE",
                        help="the witness private key (from `ledger witness keygen`)")
    cosign.add_argument("--state", type=Path, metavar="FILE",
                        help="where the witness keeps the last tree it cosigned (default: "
                        "KEY with .state)")
    cosign.set_defaults(func=run_witness_cosign)


def _tampering_exits_1(run: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """A ledger command that meets a deleted, emptied or rewritten ledger says so and exits 1,
    as `verify` does, instead of failing as an error."""
    @functools.wraps(run)
    def wrapped(args: argparse.Namespace) -> int:
        from mlward._internal.ledger.errors import LedgerTampered

        try:
            return run(args)
        except LedgerTampered as exc:
            print(f"TAMPERING DETECTED: {exc.diagnostics()}")
            return EXIT_TAMPERED
    return wrapped


def _command(commands: Any, name: str, summary: str,
             description: str | None = None) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = commands.add_parser(name, help=summary,
                                                     description=description or summary)
    p.add_argument("--db", metavar="URL",
                   help="the ledger database (a SQLite path or postgresql://...); default: "
                   "MLWARD_DB, else the project's")
    return p


def _open(args: argparse.Namespace, *, read_only: bool = False) -> Any:
    from mlward._internal.ledger import open_ledger

    return open_ledger(args.settings.db, read_only=read_only)


def run_append(args: argparse.Namespace) -> int:
    from mlward._internal.ledger import Event

    digests = {}
    for text in args.digest:
        alg, sep, value = text.partition(":")
        if not sep or not alg or not value:
            raise UsageError(f"--digest {text!r}: expected ALG:HEX")
        digests[alg] = value
    details: Any = {}
    if args.details:
        try:
            details = json.loads(args.details)
        except ValueError as exc:
            raise UsageError(f"--details is not JSON: {exc}") from None
        if not isinstance(details, dict):
            raise UsageError("--details must be a JSON object")
    extra = {"actor": args.actor} if args.actor else {}
    event = Event(action=args.action, resource=args.resource, outcome=args.outcome,
                  digests=digests, details=details, **extra)
    with _open(args) as ledger:
        (entry,) = ledger.append([event])
    print(f"entry {entry.index} {entry.leaf_hash().hex()}")
    return EXIT_OK


def _time_bound(text: str | None, flag: str) -> str | None:
    from mlward._internal.ledger.entry import format_time

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected an ISO 8601 date or time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return format_time(moment)


def run_log(args: argparse.Namespace) -> int:
    from mlward._internal.ledger.store import Filters

    filters = Filters(actor=args.actor, action=args.action, resource=args.resource,
                      since=_time_bound(args.since, "--since"),
                      until=_time_bound(args.until, "--until"))
    with _open(args, read_only=True) as ledger:
        entries = ledger.log(filters, args.limit)
    if args.format == "json":
        print(json.dumps([e.to_json() for e in entries], indent=2, ensure_ascii=False))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for column in ("#", "time (UTC)", "actor@host", "action", "resource", "outcome"):
        table.add_column(column, overflow="fold")
    for e in entries:
        ev = e.event
        table.add_row(str(e.index), ev.time[:19].replace("T", " "), f"{ev.actor}@{ev.host}",
                      ev.action, ev.resource, ev.outcome)
    Console(soft_wrap=False).print(table)
    return EXIT_OK


def _verifier(args: argparse.Namespace) -> Any:
    from mlward._internal.ledger.note import NoteVerifier

    if args.key:
        text = args.key
        path = Path(text)
        if "+" not in text or path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"--key {args.key}: not a verifier key, and {exc}") from None
        return NoteVerifier.parse(text)
    from mlward._internal.ledger.project import find_project

    folder = find_project()
    if folder is not None and (folder / "keys" / "ledger.pub").is_file():
        return NoteVerifier.parse((folder / "keys" / "ledger.pub").read_text(encoding="utf-8"))
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def run_verify(args: argparse.Namespace) -> int:
    from mlward._internal.ledger import LedgerError, verify_export
    from mlward._internal.ledger.note import ConsistencyProof, Receipt

    if args.consistency is not None:
        verifier = _verifier(args)
        if verifier is None:
            raise UsageError("verifying a consistency proof needs --key (the ledger's "
                             "verifier key)")
        proof = ConsistencyProof.parse(_read(args.consistency))
        try:
            old, new = proof.verify(verifier)
        except LedgerError as exc:
            print(f"consistency proof INVALID: {exc}")
            return EXIT_TAMPERED
        print(f"consistent: the log of {new.size} entries extends the log of {old.size} "
              f"entries unchanged ({new.origin}, signed by {verifier.name})")
        return EXIT_OK
    if args.receipt is not None:
        verifier = _verifier(args)
        if verifier is None:
            raise UsageError("verifying a receipt needs --key (the ledger's verifier key)")
        receipt = Receipt.parse(_read(args.receipt))
        from mlward._internal.ledger import LedgerError

        try:
            checkpoint = receipt.verify(verifier)
        except LedgerError as exc:
            print(f"receipt INVALID: {exc}")
            return EXIT_TAMPERED
        print(f"receipt ok: entry {receipt.index} is in {checkpoint.origin} "
              f"(tree size {checkpoint.size}), signed by {verifier.name}")
        return EXIT_OK
    if args.file is not None:
        verifier = _verifier(args)
        result = verify_export(args.file, verifier)
        if verifier is None:
            print("note: no --key given; the checkpoint was checked with the key the export "
                  "names, which proves consistency, not who signed it", file=sys.stderr)
    else:
        with _open(args, read_only=True) as ledger:
            if args.key:
                ledger.verifier = _verifier(args)
            notes = [_read(p) for p in args.checkpoint]
            result = ledger.verify(notes)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    elif result.ok:
        print(f"ledger ok: {result.size} entries, root {result.root.hex()}, "
              f"{result.checkpoints} checkpoint(s) consistent")
    else:
        first = result.first
        assert first is not None
        where = f"entry {first.index}" if first.index is not None else "the ledger"
        print(f"TAMPERING DETECTED at {where}: {first.message}")
        for p in result.problems:
            if p is not first:
                print(f"  also: {p.message}")
    return EXIT_OK if result.ok else EXIT_TAMPERED


def run_prove(args: argparse.Namespace) -> int:
    from mlward._internal.io import atomic_write_text

    with _open(args) as ledger:
        receipt = str(ledger.receipt(args.entry))
    if args.output is not None:
        atomic_write_text(args.output, receipt)
    else:
        sys.stdout.write(receipt)
    return EXIT_OK


def run_checkpoint(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        sys.stdout.write(ledger.checkpoint())
    return EXIT_OK


def run_consistency(args: argparse.Namespace) -> int:
    from mlward._internal.io import atomic_write_text
    from mlward._internal.ledger import LedgerError

    with _open(args) as ledger:
        proof = ledger.consistency(_read(args.old),
                                   None if args.new is None else _read(args.new))
        assert ledger.verifier is not None  # consistency() checked both notes with it
        try:
            old, new = proof.verify(ledger.verifier, ledger.origin)
        except LedgerError as exc:
            print(f"TAMPERING DETECTED: {exc}")
            return EXIT_TAMPERED
    print(f"consistent: the log of {new.size} entries extends the log of {old.size} "
          "entries unchanged", file=sys.stderr)
    if args.output is not None:
        atomic_write_text(args.output, str(proof))
    else:
        sys.stdout.write(str(proof))
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        count = ledger.export(args.output)
        verifier = ledger.verifier
    print(f"exported {count} entries to {args.output}")
    print(f"verify offline: mlward ledger verify --file {args.output} --key '{verifier}'")
    return EXIT_OK


def run_history(args: argparse.Namespace) -> int:
    from mlward._internal.audit.history import file_history
    from mlward._internal.ledger.refs import local_path

    if not args.path and not args.digest:
        raise UsageError("give a PATH, or --digest ALG:HEX")
    paths, digests = [], [d.lower() for d in args.digest]
    for d in digests:
        if ":" not in d:
            raise UsageError(f"--digest {d!r}: expected ALG:HEX")
    if args.path:
        path = local_path(str(Path(args.path).absolute()))
        assert path is not None
        paths.append(path)
        if Path(path).is_file() and not args.no_follow:
            from mlward._internal.provenance.hashing import file_digest

            digests.append(f"sha256:{file_digest(Path(path))}")
    with _open(args) as ledger:
        history = file_history(ledger, paths, digests, follow=not args.no_follow)
    if args.format == "json":
        print(json.dumps(history.to_dict(), indent=1, ensure_ascii=False))
        return EXIT_OK
    _print_history(history, paths[0] if paths else digests[0])
    return EXIT_OK


def _print_history(history: Any, subject: str) -> None:
    """One block per entry (forensic output is read line by line, and pasted into reports)."""
    n = len(history.items)
    print(f"history of {_shown(subject)}: {n} entr{'y' if n == 1 else 'ies'}")
    others = [_shown(p) for p in history.paths if p != subject]
    if others:
        print(f"followed: {', '.join(others)}")
    for item in history.items:
        ev = item.entry.event
        print(f"\n#{item.entry.index}  {ev.time[:19].replace('T', ' ')} UTC  {ev.action} "
              f"({ev.outcome})")
        keyid = ev.details.get("keyid")
        print(f"    who    {ev.actor}@{ev.host}" + (f", key {keyid}" if keyid else ""))
        where = ev.details.get("where")
        if isinstance(where, dict) and where.get("cwd"):
            commit = f", git {str(where['commit'])[:12]}" if where.get("commit") else ""
            print(f"    where  {where['cwd']}{commit}")
        for ref in item.refs:
            print(f"    what   {_ref_text(ref)}")
    signed = "a signed checkpoint" if history.checkpoint else \
        "the current tree (unsigned: no ledger key here)"
    print(f"\ninclusion proofs: every entry checked against {signed} of size {history.size}, "
          f"root {history.root.hex()[:16]}... (--format json has the proofs)"
          + ("; the search stopped at its bound" if history.truncated else ""))


def _shown(path: str) -> str:
    """``path`` relative to the current folder when it lies under it."""
    import os

    rel = os.path.relpath(path) if path.startswith("/") else path
    return path if rel.startswith("..") else rel


def _ref_text(ref: Any) -> str:
    digest = f" {ref.digest.partition(':')[0]}:{ref.digest.partition(':')[2][:12]}" \
        if ref.digest else ""
    return f"{ref.role} {_shown(ref.path) if ref.path else ''}{digest}".strip()


def run_witness_keygen(args: argparse.Namespace) -> int:
    from mlward._internal.io import atomic_write_text
    from mlward._internal.ledger.witness import WitnessSigner

    signer = WitnessSigner.generate(args.name)
    key, pub = Path(f"{args.output}.key"), Path(f"{args.output}.pub")
    for path in (key, pub):
        if path.exists():
            raise UsageError(f"{path} exists: choose another --output")
    atomic_write_text(key, f"{signer}\n", mode=0o600)
    atomic_write_text(pub, f"{signer.verifier}\n", mode=0o644)
    print(f"private key: {key} (keep it away from the ledger's machine; mode 0600)")
    print(f"witness key: {signer.verifier}")
    print("add it to the project's .mlward/mlward.toml: [ledger] witnesses = [\"...\"]")
    return EXIT_OK


def run_witness_cosign(args: argparse.Namespace) -> int:
    from mlward._internal.ledger.witness import WitnessSigner

    signer = WitnessSigner.parse(_read(args.key))
    state = args.state or args.key.with_suffix(".state")
    with _open(args) as ledger:
        note = ledger.cosign(signer, state)
    sys.stdout.write(note)
    return EXIT_OK
