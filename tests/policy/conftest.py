"""A test project with a dozen planted problems, built in code, and helpers to gate it.

The planted problems (what each policy pack must say about them is in test_gate.py):

1. ``models/evil.pkl``: a pickle that would run ``touch PWNED`` (MW101, critical)
2. ``production/model.pkl``: a harmless pickle, but a pickle, in production/
3. ``models/bert/``: a model repository with a safetensors file and a licence, unsigned
4. ``notebooks/out.ipynb``: a notebook with saved outputs, on branch main
5. ``requirements.txt``: ``vulnpkg==1.0``, CVSS 7.5, fixed in 1.1 since 2020 (MW501)
6. ``requirements.txt``: ``loosepkg>=1``, unpinned
7. ``config/settings.py``: an AWS access key (MW401, high)
8. ``train.py``: ``torch.load`` without weights_only (MW302, medium)
9. ``train.py``: ``eval`` (MW307, medium), waived in the settings
10. ``train.py``: ``numpy.load(allow_pickle=True)`` (MW303), waived until 2020: expired (MW002)
11. ``train.py``: ``trust_remote_code=True`` (MW305, high)
12. ``models/signed/model.safetensors``: signed lineage to a manifested dataset: must pass
"""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mlward.cli.main import main

VULN_RECORD = {
    "id": "GHSA-mlwd-test-0001", "modified": "2024-01-01T00:00:00Z",
    "published": "2020-01-01T00:00:00Z", "summary": "vulnpkg lets anyone in",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "vulnpkg"},
                  "ranges": [{"type": "ECOSYSTEM",
                              "events": [{"introduced": "0"}, {"fixed": "1.1"}]}]}],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
}
SETTINGS = """
[[waivers]]
rule = "MW307"
path = "train.py"
reason = "eval of a constant expression, reviewed"
owner = "ml-platform"

[[waivers]]
rule = "MW303"
reason = "old numpy cache, to be migrated"
expires = "2020-01-01"
"""


class Evil:
    """Pickles to a call of os.system: building the bytes runs nothing."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        import os

        return (os.system, (f"touch {self.marker}",))


def safetensors_bytes() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0\0\0\0"


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run("gate", ...)`` -> (exit code, stdout, stderr); files are scanned in this process
    (nothing in them is ever executed)."""

    def _run(*argv: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    return _run


def _git(root: Path, *argv: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *argv],
                   cwd=root, check=True, capture_output=True)


def build_project(root: Path, outside: Path, marker: Path) -> Path:
    """The planted project at ``root``, the current folder (keys and the OSV data go to
    ``outside``)."""
    from mlward._internal.ledger import init_project

    for d in ("models/bert", "models/signed", "production", "notebooks", "config", "data"):
        (root / d).mkdir(parents=True)
    (root / "models" / "evil.pkl").write_bytes(pickle.dumps(Evil(marker)))
    (root / "production" / "model.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    (root / "models" / "bert" / "config.json").write_text('{"model_type": "bert"}')
    (root / "models" / "bert" / "model.safetensors").write_bytes(safetensors_bytes())
    (root / "models" / "bert" / "README.md").write_text("---\nlicense: apache-2.0\n---\n# bert\n")
    (root / "models" / "signed" / "model.safetensors").write_bytes(safetensors_bytes())
    (root / "notebooks" / "out.ipynb").write_text(json.dumps({
        "cells": [{"cell_type": "code", "source": "print(1)", "metadata": {},
                   "execution_count": 1,
                   "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}]}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (root / "requirements.txt").write_text("vulnpkg==1.0\nloosepkg>=1\n")
    key = "AKIA" + "QYLPMN5HJKT2XW7E"  # the shape of an AWS access key id
    (root / "config" / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{key}"\n'
                                                 'AWS_SECRET_ACCESS_KEY = "' +
                                                 "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9x3kLm2v" +
                                                 '"\n')
    (root / "train.py").write_text(
        "import numpy, torch, transformers\n"
        "model = torch.load(path)\n"
        "value = eval('1 + 1')\n"
        "cache = numpy.load('cache.npy', allow_pickle=True)\n"
        "tok = transformers.AutoTokenizer.from_pretrained(name, trust_remote_code=True)\n")
    (root / "data" / "train.csv").write_text("x,y\n1,2\n")
    init_project(root).close()
    with (root / ".mlward" / "mlward.toml").open("a") as f:
        f.write(SETTINGS)
    osv = outside / "osv"
    osv.mkdir(parents=True, exist_ok=True)
    (osv / "GHSA-mlwd-test-0001.json").write_text(json.dumps(VULN_RECORD))
    # 12: signed lineage to a manifested dataset, key outside the project, trusted.
    keys = outside / "keys"
    keys.mkdir(exist_ok=True)
    for argv in (["manifest", "create", str(root / "data"), "-o",
                  str(root / "data.manifest.json")],
                 ["lineage", "record", "--model", str(root / "models/signed/model.safetensors"),
                  "--data", str(root / "data.manifest.json")],
                 ["keygen", "-o", str(keys / "k"), "--trust"],
                 ["sign", str(root / "models/signed/model.safetensors.lineage.json"),
                  "-k", str(keys / "k.key")]):
        assert main(argv) == 0, argv
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "planted")
    return root


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: Path) -> Path:
    """The planted project, as the current folder, with its own caches and no outside
    configuration."""
    for var in ("MLWARD_TRUST", "MLWARD_DB", "MLWARD_VULN_DB", "MLWARD_BASELINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLWARD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLWARD_OSV_API", "http://127.0.0.1:9")  # never the real service
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    build_project(root, tmp_path / "outside", marker)
    monkeypatch.setenv("MLWARD_VULN_DB", str(tmp_path / "outside" / "osv"))
    return root
