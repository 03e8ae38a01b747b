"""A project's ledger: the ``.mlward/`` folder, its configuration and keys.

``.mlward/mlward.toml`` names the ledger (``[ledger]``: ``origin``, ``db``, ``key``,
``verifier``); ``db`` is a file next to it (``ledger.db``) or a ``postgresql://`` URL.
The ``db`` setting (``--db``, ``MLWARD_DB``) overrides ``db``; with it set and no project, the
ledger is that database alone (appends work; checkpoints need a key).

A project is initialised once ``mlward init`` wrote its ``[ledger]`` table. From then on its
ledger must exist: a ``ledger.db`` that is missing or empty is :class:`LedgerTampered`, never
replaced by a new one, and the signed checkpoint kept beside it (``.mlward/checkpoint``,
rewritten after every append) says how many entries were lost.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mlward._internal.io import atomic_write_text
from mlward._internal.ledger.errors import LedgerError, LedgerTampered

if TYPE_CHECKING:
    from mlward._internal.ledger.ledger import Ledger

# The ledger machinery (cryptography, database drivers, the TOML parser) is imported only
# when a ledger is actually there: finding out that there is none must stay cheap for every
# command.

FOLDER = ".mlward"
CONFIG = "mlward.toml"
KEY_FILE = "keys/ledger.key"
VERIFIER_FILE = "keys/ledger.pub"
CHECKPOINT_FILE = "checkpoint"


def find_project(start: Path | None = None) -> Path | None:
    """The ``.mlward`` folder of the project containing ``start`` (default: the cwd)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / FOLDER
        try:
            if candidate.is_dir():
                return candidate
        except OSError:  # a folder that cannot be searched holds no project for us
            continue
    return None


class LedgerConfig(NamedTuple):
    folder: Path | None
    db: str
    origin: str | None
    key: Path | None
    verifier: str | None
    witnesses: tuple[str, ...] = ()
    witness_quorum: int | None = None


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG
    if not path.is_file():
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LedgerError(f"cannot read {path}: {exc}") from None
    section = data.get("ledger", {})
    if not isinstance(section, dict):
        raise LedgerError(f"{path}: [ledger] must be a table")
    return section


def resolve(db: str | None = None, project: Path | None = None) -> LedgerConfig | None:
    """Where the ledger is, or None when nothing configures one (no initialised project, no
    ``db`` setting)."""
    folder = find_project(project)
    section = _read_config(folder) if folder else {}
    db = db or None
    if db is None and folder is not None:
        if "db" in section:
            db = str(section["db"])
        elif section.get("origin") or section.get("verifier") or \
                (folder / "ledger.db").is_file():
            db = "ledger.db"  # initialised: its ledger is expected there, present or not
    if db is None:
        return None
    if folder is not None and "://" not in db and not Path(db).is_absolute():
        db = str(folder / db)
    key = folder / str(section.get("key", KEY_FILE)) if folder else None
    origin = section.get("origin")
    verifier = section.get("verifier")
    witnesses = section.get("witnesses", [])
    quorum = section.get("witness_quorum")
    if not isinstance(witnesses, list) or not all(isinstance(w, str) for w in witnesses):
        raise LedgerError(f"{folder}/{CONFIG}: [ledger] witnesses must be a list of witness "
                          "keys (<name>+<id>+<key>)")
    if quorum is not None and (not isinstance(quorum, int) or isinstance(quorum, bool)
                               or not 1 <= quorum <= len(witnesses)):
        raise LedgerError(f"{folder}/{CONFIG}: [ledger] witness_quorum must be a whole number "
                          "from 1 to the number of witnesses")
    return LedgerConfig(folder, db, str(origin) if origin else None,
                        key if key is not None and key.is_file() else None,
                        str(verifier) if verifier else None, tuple(witnesses), quorum)


def check_present(path: Path, folder: Path) -> None:
    """Raise :class:`LedgerTampered` when the project's ledger file is missing or empty."""
    try:
        size: int | None = path.stat().st_size
    except FileNotFoundError:
        size = None
    except OSError:
        return  # unreadable: opening it says why
    if size:
        return
    state = "missing" if size is None else "empty (0 bytes)"
    kept = folder / CHECKPOINT_FILE
    try:
        note = kept.read_text(encoding="utf-8")
        lines = note.split("\n")
        lost = (f"the last checkpoint kept beside it ({kept}) was signed over {lines[1]} "
                f"entries (root {lines[2]}), which are lost" if len(lines) > 2 and
                lines[1].isdigit() else f"{kept} is not a checkpoint")
    except OSError:
        lost = f"no checkpoint is kept beside it ({kept} is gone too)"
    raise LedgerTampered(
        f"the ledger {path} of this initialised project is {state}: it was deleted or "
        f"emptied; {lost}. mlward does not make a new one in its place: restore it from a "
        f"backup (to start over knowingly, move {folder} aside and run `mlward init`)")


def open_ledger(db: str | None = None, project: Path | None = None, *,
                read_only: bool = False) -> Ledger:
    from mlward._internal.ledger.ledger import Ledger
    from mlward._internal.ledger.note import NoteSigner, NoteVerifier
    from mlward._internal.ledger.store import open_store

    """Open the configured ledger; LedgerError when there is none or it is broken,
    LedgerTampered when an initialised project's ledger is gone."""
    config = resolve(db, project)
    if config is None:
        raise LedgerError("no ledger here: run `mlward init`, or pass --db / set MLWARD_DB")
    if db is None and config.folder is not None and "://" not in config.db:
        check_present(Path(config.db), config.folder)  # the project's own ledger file
    store = open_store(config.db, read_only=read_only)
    try:
        signer = None
        if config.key is not None:
            try:
                signer = NoteSigner.parse(config.key.read_text(encoding="utf-8"))
            except OSError as exc:
                raise LedgerError(f"cannot read the ledger key {config.key}: {exc}") from None
        text = config.verifier or store.meta("verifier")
        verifier = NoteVerifier.parse(text) if text else None
        origin = config.origin or store.meta("origin") or (verifier.name if verifier else None)
        if origin is None:
            raise LedgerError("the ledger has no origin (run `mlward init`)")
        checkpoint_file = config.folder / CHECKPOINT_FILE if config.folder else None
        from mlward._internal.ledger.witness import WitnessVerifier

        return Ledger(store, origin, signer=signer, verifier=verifier,
                      checkpoint_file=checkpoint_file,
                      witnesses=[WitnessVerifier.parse(w) for w in config.witnesses],
                      witness_quorum=config.witness_quorum)
    except BaseException:
        store.close()
        raise


def _toml_string(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def init_project(root: Path, *, db: str | None = None, origin: str | None = None) -> Ledger:
    """Create ``root/.mlward`` with its configuration, a new Ed25519 ledger key and the ledger.

    With ``db`` a PostgreSQL URL the ledger lives there; a team ledger that already has an
    origin and key keeps them (this project then verifies with the team's verifier key).
    """
    import re
    import secrets

    from mlward._internal.ledger.note import NoteSigner
    from mlward._internal.ledger.store import open_store

    folder = root / FOLDER
    if (folder / CONFIG).exists():
        raise LedgerError(f"{folder} is already initialised")
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", root.resolve().name) or "project"
    origin = origin or f"mlward.local/{safe}-{secrets.token_hex(4)}"
    signer = NoteSigner.generate(origin)
    (folder / "keys").mkdir(parents=True, exist_ok=True)
    db_setting = db or "ledger.db"
    location = db_setting if "://" in db_setting else str(folder / db_setting)
    store = open_store(location, create=True)
    try:
        origin = store.set_meta_default("origin", origin)
        verifier = store.set_meta_default("verifier", str(signer.verifier))
        key_line = f"key = {_toml_string(KEY_FILE)}\n"
        if verifier == str(signer.verifier):
            atomic_write_text(folder / KEY_FILE, str(signer) + "\n", mode=0o600)
        else:
            key_line = "# the team ledger's key is held elsewhere: copy it to keys/ledger.key\n"
        atomic_write_text(folder / VERIFIER_FILE, verifier + "\n", mode=0o644)
        atomic_write_text(folder / CONFIG, (
            "# mlward project settings (created by `mlward init`)\n\n[ledger]\n"
            f"origin = {_toml_string(origin)}\n"
            f"db = {_toml_string(db_setting)}  # or postgresql://...; MLWARD_DB overrides\n"
            f"{key_line}"
            f"verifier = {_toml_string(verifier)}\n"), mode=0o644)
    finally:
        store.close()
    ledger = open_ledger(db, root)
    ledger.keep_checkpoint()  # from now on, a deleted ledger.db is provably a loss
    return ledger
