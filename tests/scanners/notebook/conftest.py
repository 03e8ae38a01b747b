"""Helpers for the notebook, code and secrets tests: tokens and notebooks built in code.

Tokens are assembled at run time so that no secret-shaped literal sits in this source tree
(mlward scans its own tree in CI).
"""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mlward._internal.pipeline import scan
from mlward.findings import Report

_rng = random.Random(7)


def rand(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


LETTERS = string.ascii_letters
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


def tokens() -> dict[str, str]:
    """One realistic-looking fake token per provider we detect."""
    return {
        "hf": "hf" + "_" + rand(LETTERS, 34),
        "openai_proj": "sk" + "-proj-" + rand(ALNUM + "_-", 64),
        "openai_legacy": "sk" + "-" + rand(ALNUM, 20) + "T3Blbk" + "FJ" + rand(ALNUM, 20),
        "anthropic": "sk" + "-ant-api03-" + rand(ALNUM + "_-", 93) + "AA",
        "databricks": "dapi" + rand(HEX, 32),
        "replicate": "r8" + "_" + rand(ALNUM, 37),
        "langsmith": "lsv2" + "_pt_" + rand(HEX, 32) + "_" + rand(HEX, 10),
        "pinecone": "pcsk" + "_" + rand(ALNUM, 50),
        "neptune": "eyJhcGlfYWRkcmVzcyI6" + rand(ALNUM, 60),
        "aws_id": "AKIA" + rand(string.ascii_uppercase + string.digits, 16),
        "google": "AIza" + rand(ALNUM, 35),
    }


def write_nb(path: Path, nb: Any) -> Path:
    path.write_text(nbformat.writes(nb))
    return path


def notebook(*cells: Any, **metadata: Any) -> Any:
    nb = new_notebook(cells=list(cells))
    nb.metadata.update(metadata)
    return nb


def code(source: str, *outputs: Any) -> Any:
    return new_code_cell(source, outputs=list(outputs))


def md(source: str) -> Any:
    return new_markdown_cell(source)


def stream(text: str) -> Any:
    return new_output("stream", name="stdout", text=text)


def result(data: dict[str, Any]) -> Any:
    return new_output("execute_result", data=data, execution_count=1)


def by_rule(report: Report, rule_id: str) -> list[Any]:
    return [f for f in report.findings if f.rule_id == rule_id]


@pytest.fixture
def scan_one(tmp_path: Path) -> Any:
    def run(path: Path) -> Report:
        return scan([path])
    return run
