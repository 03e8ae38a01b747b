"""``mlward init``: create the project's ``.mlward/`` folder, its ledger and ledger key."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "init", help="create the project's .mlward/ folder: settings, ledger and ledger key",
        description="Create DIR/.mlward/ with mlward.toml, the audit ledger (ledger.db, SQLite; "
        "or a PostgreSQL database with --db) and keys/ with a new Ed25519 ledger key (mode "
        "0600). Prints the verifier key that checks the ledger's signed checkpoints.")
    p.add_argument("dir", nargs="?", type=Path, default=Path(), metavar="DIR",
                   help="the project folder (default: the current directory)")
    p.add_argument("--db", metavar="URL",
                   help="keep the ledger in PostgreSQL (postgresql://...) instead of SQLite")
    p.add_argument("--origin", metavar="NAME",
                   help="the ledger's name in checkpoints (default: mlward.local/<dir>-<id>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlward._internal.ledger import init_project

    folder = args.dir / ".mlward"
    with init_project(args.dir, db=args.db, origin=args.origin) as ledger:
        print(f"initialised {folder}")
        print(f"ledger:   {'PostgreSQL' if args.db else folder / 'ledger.db'}")
        print(f"origin:   {ledger.origin}")
        print(f"verifier: {ledger.verifier}")
    print("Give the verifier key to whoever checks this ledger's checkpoints and receipts "
          f"(also in {folder / 'keys' / 'ledger.pub'}).")
    return 0
