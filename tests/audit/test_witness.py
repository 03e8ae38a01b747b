"""Witness cosignatures (C2SP cosignature/v1): a cosigned checkpoint verifies, a forged
cosignature fails, and a witness refuses a rolled-back or rewritten ledger."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mlward._internal.ledger import Event, LedgerError, init_project, open_ledger
from mlward._internal.ledger.note import DASH
from mlward._internal.ledger.witness import WitnessSigner, WitnessVerifier, check_cosignatures
from mlward.cli.main import main

NAME = "witness.example.com/w1"


@pytest.fixture
def ledger_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    with init_project(root) as ledger:
        ledger.append([Event("sign", f"/d/{n}.csv", "pass") for n in range(5)])
        ledger.checkpoint()
    monkeypatch.chdir(root)
    return root


def _configure(root: Path, *witnesses: WitnessVerifier) -> None:
    config = root / ".mlward" / "mlward.toml"
    keys = ", ".join(f'"{w}"' for w in witnesses)
    config.write_text(config.read_text() + f"witnesses = [{keys}]\n")


def test_a_cosigned_checkpoint_verifies_and_a_forged_one_fails(ledger_root: Path,
                                                               tmp_path: Path) -> None:
    signer = WitnessSigner.generate(NAME)
    assert WitnessVerifier.parse(str(signer.verifier)) == signer.verifier
    assert WitnessSigner.parse(str(signer)) == signer
    state = tmp_path / "w.state"
    with open_ledger(None, ledger_root) as ledger:
        cosigned = ledger.cosign(signer, state)
    assert cosigned.count(f"{DASH} {NAME} ") == 1
    assert check_cosignatures(cosigned, [signer.verifier]).valid.keys() == {NAME}
    _configure(ledger_root, signer.verifier)
    with open_ledger(None, ledger_root) as ledger:
        result = ledger.verify()
    assert result.ok and result.witnessed == 5, result.problems

    # A forged cosignature: the right name and key id, someone else's signature.
    forger = WitnessSigner(NAME, b"\x07" * 32)
    forged = forger.cosign(cosigned.replace(f"{DASH} {NAME} ", f"{DASH} other "))
    line = forged.strip().split("\n")[-1]
    raw = base64.b64decode(line.split(" ")[2])
    forged = forged.replace(line, f"{DASH} {NAME} " + base64.b64encode(
        signer.verifier.key_id + raw[4:]).decode())
    problems = check_cosignatures(forged, [signer.verifier]).problems
    assert problems and "does not verify" in problems[0]
    (ledger_root / ".mlward" / "checkpoint").write_text(forged)
    with open_ledger(None, ledger_root) as ledger:
        result = ledger.verify()
    assert not result.ok
    assert any(p.kind == "cosignature" and "does not verify" in p.message
               for p in result.problems)


def test_verify_requires_a_cosignature_when_witnesses_are_configured(ledger_root: Path) -> None:
    _configure(ledger_root, WitnessSigner.generate(NAME).verifier)
    assert main(["ledger", "verify"]) == 1


def test_a_witness_refuses_a_rewritten_history(ledger_root: Path, tmp_path: Path) -> None:
    import sqlite3

    signer = WitnessSigner.generate(NAME)
    state = tmp_path / "w.state"
    with open_ledger(None, ledger_root) as ledger:
        ledger.cosign(signer, state)
    # The ledger's owner (who has the ledger key) rebuilds it with entry 2 changed.
    db = ledger_root / ".mlward" / "ledger.db"
    other = tmp_path / "q"
    other.mkdir()
    with init_project(other) as fresh:
        fresh.append([Event("sign", f"/d/{n}.csv", "pass") for n in range(6)])
    (other / ".mlward" / "ledger.db").replace(db)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM ledger_checkpoints")
    # The owner also removes the checkpoint kept beside the ledger (which would refuse to sign
    # over the rewrite): only the witness's own state is left to notice.
    (ledger_root / ".mlward" / "checkpoint").unlink()
    with open_ledger(None, ledger_root) as ledger:
        ledger.checkpoint()  # signed with the ledger key, over the rewritten tree
        with pytest.raises(LedgerError, match="history was rewritten"):
            ledger.cosign(signer, state)


def test_witness_cli(ledger_root: Path, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "w"
    assert main(["ledger", "witness", "keygen", NAME, "-o", str(prefix)]) == 0
    assert (prefix.with_suffix(".key").stat().st_mode & 0o777) == 0o600
    capsys.readouterr()
    assert main(["ledger", "witness", "cosign", "--key", str(prefix) + ".key"]) == 0
    assert f"{DASH} {NAME} " in capsys.readouterr().out
    _configure(ledger_root, WitnessVerifier.parse(prefix.with_suffix(".pub").read_text()))
    assert main(["ledger", "verify"]) == 0
