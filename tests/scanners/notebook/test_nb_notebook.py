"""Reading notebooks: versions, every place text hides, malformed and hostile input, and
the text scanner that gives other small files the secrets pass."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_output, new_raw_cell

from conftest import by_rule, code, md, notebook, result, stream, tokens, write_nb
from mlward._internal.pipeline import scan

TOKENS = tokens()


@pytest.mark.parametrize("minor", [0, 1, 2, 3, 4, 5])
def test_v4_minor_versions(tmp_path: Path, minor: int) -> None:
    nb = notebook(code(f'HF = "{TOKENS["hf"]}"'))
    nb.nbformat_minor = minor
    data = json.loads(nbformat.writes(nb))
    if minor < 5:
        for cell in data["cells"]:
            cell.pop("id", None)
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(data))
    report = scan([path])
    assert [(f.rule_id, f.location.cell) for f in report.findings] == [("MW401", 1)]


def test_v3_notebook_with_worksheets(tmp_path: Path) -> None:
    from nbformat import v3

    cell = v3.new_code_cell(input="import torch\ntorch.load('m.pt')", outputs=[
        v3.new_output("stream", output_text=f"key {TOKENS['databricks']}\n"),
        v3.new_output("pyout", output_text="contact bob@acme-corp.com", prompt_number=1),
        v3.new_output("pyerr", ename="E", evalue="x", traceback=[f"pw {TOKENS['google']}"]),
    ])
    nb = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[v3.new_text_cell("markdown", "# t"),
                                                             cell])])
    path = tmp_path / "old.ipynb"
    path.write_text(nbformat.writes(nb, version=3))
    report = scan([path])
    got = {(f.rule_id, f.location.cell, f.location.output) for f in report.findings}
    assert got == {("MW302", 2, None), ("MW401", 2, 1), ("MW410", 2, 2), ("MW401", 2, 3)}


def test_every_place_text_hides(tmp_path: Path) -> None:
    t = TOKENS
    cell = code("x = 1",
                stream(f"{t['hf']}\n"),
                result({"text/plain": f"'{t['replicate']}'", "image/png": "iVBORw0KGgo=",
                        "application/json": {"token": t["databricks"]}}),
                new_output("display_data", data={"text/html": f"<p>{t['langsmith']}</p>",
                                                 "image/jpeg": "/9j/4AAQ"}),
                new_output("error", ename="AuthError", evalue=f"bad key {t['pinecone']}",
                           traceback=[f"\x1b[0;31m{t['anthropic']}\x1b[0m"]))
    cell.metadata["tags"] = [t["neptune"]]
    mark = md("![img](attachment:a.png)")
    mark["attachments"] = {"a.png": {"image/png": "iVBORw0KGgo="},
                           "notes.txt": {"text/plain": f"key {t['aws_id']}"}}
    raw = new_raw_cell(f"AWS {t['google']}")
    nb = notebook(cell, mark, raw,
                  widgets={"application/vnd.jupyter.widget-state+json": {
                      "state": {"w1": {"state": {"value": t["openai_proj"]}}}}})
    report = scan([write_nb(tmp_path / "all.ipynb", nb)])
    where = {f.details["kind"]: (f.location.cell, f.location.output)
             for f in report.findings if f.rule_id.startswith("MW40")}
    assert where == {
        "Hugging Face token": (1, 1), "Replicate API token": (1, 2),
        "Databricks token": (1, 2), "LangSmith API key": (1, 3),
        "Pinecone API key": (1, 4), "Anthropic API key": (1, 4),
        "Neptune API token": (1, None), "AWS access key ID": (2, None),
        "Google API key": (3, None), "OpenAI API key": (None, None),
    }
    assert any("3 image output(s)/attachment(s)" in s.reason for s in report.skipped)


@pytest.mark.parametrize("content", [
    b'{"cells": [ {"cell_type": "code", "source": "x"',      # truncated
    b'{"cells": [], "nbformat": 4, "nbformat_minor": 5,}',   # trailing comma
    b"\xff\xfe{\x00",                                        # not UTF-8
    b'{"cells": "nope", "nbformat": 4}',                     # wrong shape
    b'{"cells": [], "nbformat": 99}',                        # unknown version
])
def test_malformed_notebook_is_a_clear_finding_not_a_crash(tmp_path: Path,
                                                           content: bytes) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_bytes(content)
    report = scan([path])
    assert [f.rule_id for f in report.findings] == ["MW313"]
    assert report.inconclusive and report.exit_code(report.findings[0].severity) == 1


def test_malformed_notebook_still_gets_a_text_secrets_pass(tmp_path: Path) -> None:
    path = tmp_path / "half.ipynb"
    path.write_text('{"cells": [{"source": "HF = \\"' + TOKENS["hf"] + '\\"\\n"')
    assert {f.rule_id for f in scan([path]).findings} == {"MW313", "MW401"}


def test_hostile_nesting_and_size_are_bounded(tmp_path: Path) -> None:
    deep = tmp_path / "deep.ipynb"
    deep.write_text('{"cells": [' + "[" * 200_000 + "]" * 200_000 + "], \"nbformat\": 4}")
    wide = tmp_path / "wide.ipynb"
    big_line = "A" * 3_000_000
    wide.write_text(nbformat.writes(notebook(code("x", stream(big_line)))))
    start = time.monotonic()
    report = scan([deep, wide])
    assert time.monotonic() - start < 30
    assert [f.location.uri for f in by_rule(report, "MW313")] == ["deep.ipynb"]


def test_json_that_is_not_a_notebook_goes_to_the_text_scanner(tmp_path: Path) -> None:
    cfg = tmp_path / "settings.json"
    cfg.write_text(json.dumps({"metadata": {"name": "x"}, "api_token": TOKENS["hf"]}))
    report = scan([cfg])
    assert sorted(e.format for e in report.examined) == ["config", "text"]  # not "notebook"
    assert [f.rule_id for f in report.findings] == ["MW401"]


def test_notebook_is_sniffed_by_content_without_the_extension(tmp_path: Path) -> None:
    path = write_nb(tmp_path / "notebook-backup", notebook(code(f"k = '{TOKENS['hf']}'")))
    report = scan([path])
    assert [e.format for e in report.examined] == ["notebook"]


@pytest.mark.parametrize(("name", "content"), [
    (".env", "HF_TOKEN={hf}\nDB_PASSWORD=Sup3rSecretValue\n"),
    ("config.yaml", "wandb:\n  project: x\nopenai_key: {openai_proj}\n"),
    ("deploy.sh", "export AWS_ACCESS_KEY_ID={aws_id}\n"),
    ("README.md", "Use the token `{replicate}` to test.\n"),
])
def test_text_files_get_the_secrets_pass(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content.format(**TOKENS))
    report = scan([path])
    assert "text" in {e.format for e in report.examined}  # configs are also read as configs
    assert report.findings and all(f.rule_id.startswith("MW40") for f in report.findings)


def test_text_scanner_does_not_claim_binary_or_large_files(tmp_path: Path) -> None:
    binary = tmp_path / "weights.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100 + TOKENS["hf"].encode())
    big = tmp_path / "dump.txt"
    big.write_text("row\n" * 1_000_000)
    report = scan([binary, big])
    assert "text" not in {e.format for e in report.examined}
