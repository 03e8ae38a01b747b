"""``mlward notebook clean``: strip outputs, redact, backups, validation, errors."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from conftest import code, md, notebook, result, stream, tokens, write_nb
from mlward._internal.pipeline import scan
from mlward.cli.main import main

TOKENS = tokens()


def leaky(tmp_path: Path) -> Path:
    nb = notebook(
        code(f'HF = "{TOKENS["hf"]}"\nprint(HF)', stream(f"{TOKENS['hf']}\n"),
             result({"text/plain": "'jane.roe@acme-corp.com'",
                     "text/html": "<td>jane.roe@acme-corp.com</td>"})),
        md("Owner: bob@acme-corp.com"),
        widgets={"state": {"w": {"value": TOKENS["databricks"]}}},
    )
    return write_nb(tmp_path / "leaky.ipynb", nb)


def test_strip_outputs_keeps_sources_and_a_backup_when_asked(tmp_path: Path) -> None:
    path = leaky(tmp_path)
    before = path.read_bytes()
    assert main(["notebook", "clean", str(path), "--strip-outputs", "--backup"]) == 0
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].outputs == [] and nb.cells[0].execution_count is None
    assert "widgets" not in nb.metadata
    assert TOKENS["hf"] in nb.cells[0].source  # sources untouched unless asked
    assert (tmp_path / "leaky.ipynb.bak").read_bytes() == before


def test_redact_outputs_only(tmp_path: Path) -> None:
    path = leaky(tmp_path)
    assert main(["notebook", "clean", str(path), "--redact"]) == 0
    text = path.read_text()
    nb = nbformat.reads(text, as_version=4)
    assert "[REDACTED:Hugging Face token]" in nb.cells[0].outputs[0].text
    assert "jane.roe@acme-corp.com" not in json.dumps(nb.cells[0].outputs)
    assert TOKENS["databricks"] not in text
    assert TOKENS["hf"] in nb.cells[0].source and "bob@acme-corp.com" in nb.cells[1].source
    assert not (tmp_path / "leaky.ipynb.bak").exists()
    remaining = {f.rule_id for f in scan([path]).findings}
    assert remaining == {"MW401", "MW410"}  # only the sources still hold them


def test_redact_sources_when_asked(tmp_path: Path) -> None:
    path = leaky(tmp_path)
    assert main(["notebook", "clean", str(path), "--redact", "--sources", "--backup"]) == 0
    text = path.read_text()
    assert TOKENS["hf"] not in text and "bob@acme-corp.com" not in text
    assert [f for f in scan([path]).findings if f.rule_id.startswith("MW4")] == []
    assert (tmp_path / "leaky.ipynb.bak").exists()
    assert main(["notebook", "clean", str(path), "--redact", "--backup"]) == 0
    assert (tmp_path / "leaky.ipynb.bak1").exists() is False  # nothing left: no new backup


def test_second_backup_does_not_overwrite_the_first(tmp_path: Path) -> None:
    path = leaky(tmp_path)
    assert main(["notebook", "clean", str(path), "--redact", "--backup"]) == 0
    assert main(["notebook", "clean", str(path), "--strip-outputs", "--backup"]) == 0
    assert (tmp_path / "leaky.ipynb.bak").exists() and (tmp_path / "leaky.ipynb.bak1").exists()


def test_v3_notebook_is_upgraded_and_valid(tmp_path: Path) -> None:
    from nbformat import v3

    cell = v3.new_code_cell(input="x", outputs=[v3.new_output("stream", output_text="hi")])
    nb = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[cell])])
    path = tmp_path / "old.ipynb"
    path.write_text(nbformat.writes(nb, version=3))
    assert main(["notebook", "clean", str(path), "--strip-outputs"]) == 0
    assert nbformat.read(path, as_version=nbformat.NO_CONVERT).nbformat == 4


def test_usage_and_unreadable_notebooks_exit_2(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = leaky(tmp_path)
    assert main(["notebook", "clean", str(path)]) == 2
    assert main(["notebook", "clean", str(path), "--sources"]) == 2
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    assert main(["notebook", "clean", str(broken), "--strip-outputs"]) == 2
    assert "not a readable notebook" in capsys.readouterr().err
    assert broken.read_text() == '{"cells": ['
