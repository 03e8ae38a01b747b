"""``mlward notebook clean`` leaves nothing behind (issue 13, item 11): every secret the scan
reports, at any depth and whole; no backup unless asked; no temporary file when killed; the
file's mode kept and read-only files refused; links followed, not replaced; and a ledger entry
that names what was redacted without the values."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from conftest import code, notebook, result, stream, tokens, write_nb
from mlward._internal.pipeline import scan
from mlward.cli.main import main

TOKENS = tokens()
SRC = Path(__file__).resolve().parents[3] / "src"


def _nested(depth: int, leaf: Any) -> Any:
    for n in range(depth):
        leaf = {f"level{n}": leaf}
    return leaf


def _secrets_reported(path: Path) -> list[str]:
    return [f"{f.rule_id} {f.location}" for f in scan([path]).findings
            if f.rule_id.startswith("MW4")]


def test_secrets_at_any_depth_are_redacted(tmp_path: Path) -> None:
    deep = _nested(120, {"token": TOKENS["hf"]})
    nb = notebook(code("x = 1", result({"application/json": _nested(90, TOKENS["databricks"]),
                                         "text/plain": "done"})), custom=deep)
    path = write_nb(tmp_path / "deep.ipynb", nb)
    assert main(["notebook", "clean", str(path), "--redact"]) == 0
    text = path.read_text()
    assert TOKENS["hf"] not in text and TOKENS["databricks"] not in text
    nbformat.validate(nbformat.reads(text, as_version=4))


def test_metadata_values_the_scan_reports_are_redacted(tmp_path: Path) -> None:
    password = "Tr0ub4dor-and-3-horses"
    nb = notebook(code("x = 1"), db={"host": "db.internal", "password": password})
    nb.cells[0].metadata["connection"] = {"api_key": "Zm9vYmFyYmF6cXV4cXV1eA"}
    path = write_nb(tmp_path / "meta.ipynb", nb)
    assert _secrets_reported(path)  # the scan sees them: "password": "..." in metadata
    assert main(["notebook", "clean", str(path), "--redact"]) == 0
    text = path.read_text()
    assert password not in text and "Zm9vYmFyYmF6cXV4cXV1eA" not in text
    assert "db.internal" in text  # only the secret goes
    assert _secrets_reported(path) == []


def test_the_whole_token_is_redacted_not_a_prefix() -> None:
    """A detector may match only part of a token (a fixed-length pattern meeting a longer
    token of a newer format): the redaction widens to the whole token."""
    from mlward._internal.scanners.secrets.detect import replace_whole

    longer = "ghp_" + "a1B2c3D4e5" * 3 + "F6g7H8" + "Zq9xTAIL"
    matched = longer[:40]  # what a 36-character pattern would have matched
    text, n = replace_whole(f"token {longer}\nagain: {longer}.", matched,
                            "[REDACTED:GitHub Token]")
    assert n == 2 and "Zq9xTAIL" not in text
    assert text == "token [REDACTED:GitHub Token]\nagain: [REDACTED:GitHub Token]."


def test_no_backup_unless_asked_and_then_it_says_what_it_holds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_nb(tmp_path / "nb.ipynb", notebook(code("x", stream(TOKENS["hf"] + "\n"))))
    assert main(["notebook", "clean", str(path), "--redact"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb.ipynb"]
    write_nb(path, notebook(code("x", stream(TOKENS["hf"] + "\n"))))
    assert main(["notebook", "clean", str(path), "--redact", "--backup"]) == 0
    assert "still holds the original content, secrets included" in capsys.readouterr().out
    backup = tmp_path / "nb.ipynb.bak"
    assert TOKENS["hf"] in backup.read_text() and backup.stat().st_mode & 0o777 == 0o600


def test_mode_is_kept_and_read_only_notebooks_are_refused_unless_forced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_nb(tmp_path / "nb.ipynb", notebook(code("x", stream(TOKENS["hf"] + "\n"))))
    path.chmod(0o640)
    assert main(["notebook", "clean", str(path), "--strip-outputs"]) == 0
    assert path.stat().st_mode & 0o777 == 0o640
    write_nb(path, notebook(code("x", stream(TOKENS["hf"] + "\n"))))
    path.chmod(0o444)
    before = path.read_bytes()
    assert main(["notebook", "clean", str(path), "--redact"]) == 2
    assert "read-only" in capsys.readouterr().err and path.read_bytes() == before
    assert main(["notebook", "clean", str(path), "--redact", "--force"]) == 0
    assert TOKENS["hf"] not in path.read_text() and path.stat().st_mode & 0o777 == 0o444


def test_a_symbolic_link_keeps_being_a_link_and_its_target_is_cleaned(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = write_nb(tmp_path / "real" / "nb.ipynb",
                      notebook(code("x", stream(TOKENS["hf"] + "\n"))))
    link = tmp_path / "link.ipynb"
    link.symlink_to(target)
    assert main(["notebook", "clean", str(link), "--redact"]) == 0
    assert link.is_symlink() and link.resolve() == target
    assert TOKENS["hf"] not in target.read_text()


# Killed (SIGKILL: no clean-up code runs) at the moment the new content is complete and about
# to be synced to disk: the one point where a half-done write could be left behind.
_KILLED_WHILE_WRITING = """
import os, signal, sys
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
from mlward.cli.main import main
main(["notebook", "clean", "--strip-outputs", sys.argv[1]])
"""


def test_a_killed_clean_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = write_nb(tmp_path / "nb.ipynb", notebook(code("x", stream("y" * 1000 + "\n"))))
    original = path.read_bytes()
    proc = subprocess.run([sys.executable, "-c", _KILLED_WHILE_WRITING, str(path)],
                          env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True,
                          timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL  # it did die while writing
    assert os.listdir(tmp_path) == ["nb.ipynb"]
    assert path.read_bytes() == original


def test_the_ledger_records_what_was_redacted_never_the_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLWARD_DB", raising=False)
    assert main(["init"]) == 0
    path = write_nb(tmp_path / "nb.ipynb", notebook(
        code("x", stream(f"{TOKENS['hf']} jane.roe@acme-corp.com\n")),
        db={"password": "Tr0ub4dor-and-3-horses"}))
    assert main(["notebook", "clean", str(path), "--redact"]) == 0
    assert main(["ledger", "log", "--format", "json", "--action", "notebook.clean"]) == 0
    from mlward._internal.ledger import open_ledger
    from mlward._internal.ledger.store import Filters

    with open_ledger() as ledger:
        (entry,) = [e.to_json() for e in ledger.log(Filters(action="notebook.clean"))]
    assert entry["resource"] == path.as_uri() and entry["outcome"] == "changed"
    redacted = {(r["rule"], r["where"]) for r in entry["details"]["redacted"]}
    assert ("MW401", "cell 1 output 1") in redacted and ("MW410", "cell 1 output 1") in redacted
    assert any(where == "notebook metadata" for _, where in redacted)
    everything = json.dumps(entry) + (tmp_path / ".mlward" / "ledger.db").read_bytes().decode(
        "latin-1")
    for value in (TOKENS["hf"], "jane.roe@acme-corp.com", "Tr0ub4dor-and-3-horses"):
        assert value not in everything


def test_each_redaction_is_counted_once_in_the_part_it_was_in(tmp_path: Path) -> None:
    from mlward._internal.scanners.notebook.clean import clean_notebook

    path = write_nb(tmp_path / "nb.ipynb", notebook(
        code(f'token = "{TOKENS["hf"]}"', stream(TOKENS["hf"] + "\n"))))
    result = clean_notebook(path, strip_outputs=False, redact=True, sources=True)
    assert sorted((r.rule, r.where) for r in result.redactions) == [
        ("MW401", "cell 1 output 1"), ("MW401", "cell 1 source")]
    assert TOKENS["hf"] not in path.read_text()
