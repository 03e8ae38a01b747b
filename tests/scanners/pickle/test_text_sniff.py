"""Text is judged as text; protocol-0 pickles (printable too) are still caught.

Protocol 0 writes printable lines, so short text parses as a few opcodes by accident: the
label list ``cat``/``dog`` is a GLOBAL of ``at.dog``, a line starting with ``V`` pushes a
string. A plausible pickle does what text does not: it calls what it imports, builds
containers, uses its memo, or reaches STOP. Text files that are not pickles go to the text
scanners (a secret in a label file is found), and are not reported as pickles.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest
from pickle_payloads import evidence, scan_bytes

from mlward.cli.main import main

TEXT = {
    "labels": b"cat\ndog\n",
    "labels, one per line, c-words": b"car\ncat\ncow\ncrab\ncrow\ncub\n",
    "labels, three": b"cat\ndog\nbird\n",
    "one-line label": b"label\n",
    "class names": b"class\nlabels\n",
    "cities starting with P and V": b"Paris\nVienna\nPrague\nValencia\nPorto\n",
    "trig functions": b"cos\nsin\ntan\n",
    "csv header": b"id,name,value\n",
    "csv": b"label,score\ncat,0.91\ndog,0.09\n",
    "requirements": b"certifi\nidna\nclick\nrequests\n",
    "requirements with versions": b"numpy>=1.21\ntorch==2.0.1\npandas\n",
    "markdown": b"# Model card\n\nThis model classifies (cats) and dogs.\n",
    "enumeration": b"(a) first\n(b) second\n",
    "notes": b"Version: 1.0\nIdeas: none\n",
    "ignore file": b"*.pyc\n__pycache__/\n",
    "integer line": b"I 1\n",
    "a word list": b"Set\nList\nDict\n",
    "cos and system": b"cos\nsystem\n",
}


@pytest.mark.parametrize("name", sorted(TEXT))
def test_short_text_is_not_a_pickle(tmp_path: Path, name: str):
    report = scan_bytes(tmp_path, TEXT[name], "labels.txt")
    assert not [f for f in report.findings if f.rule_id.startswith("MW1")], name
    assert "pickle" not in {e.format for e in report.examined}
    assert report.inconclusive == ()
    assert main(["scan", "-q", str(tmp_path / "labels.txt")]) == 0


def test_a_label_file_still_gets_its_secrets_pass(tmp_path: Path):
    key = "AKIA" + "".join(random.Random(7).choice(string.ascii_uppercase + string.digits)
                            for _ in range(16))
    data = f"cat\ndog\naws_access_key_id = {key}\n".encode()
    report = scan_bytes(tmp_path, data, "labels.txt")
    assert {f.rule_id for f in report.findings} == {"MW401"}


PAYLOADS = {
    "classic": b"cos\nsystem\n(S'id'\ntR.",
    "INST": b"(S'id'\nios\nsystem\n.",
    "no STOP": b"cos\nsystem\n(S'id'\ntR",
    "prose after the call": b"cos\nsystem\n(S'id'\ntR\nThis is a label file.\n",
    "labels pushed first": b"Vcat\nVdog\nVbird\n000cos\nsystem\n(S'id'\ntR.",
    "after a label-looking import": b"cat\ndog\n0(S'id'\nios\nsystem\n.",
    "after 100 string lines": b"Vlabel\n" * 100 + b"cos\nsystem\n(S'id'\ntR.",
    "a quoted comment first": b"S'# labels'\n0cos\nsystem\n(S'id'\ntR.",
    "python 2 builtins": b"c__builtin__\neval\n(Vprint(1)\ntR.",
    "through the memo": b"Vos\np0\n0Vsystem\np1\n0g0\ng1\n\x93(S'id'\ntR.",
}


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_protocol_0_payloads_are_still_caught(tmp_path: Path, name: str):
    report = scan_bytes(tmp_path, PAYLOADS[name], "labels.txt")
    dangerous = evidence(report, "MW101")
    assert dangerous & {"os.system", "builtins.eval"}, name
    assert main(["scan", "-q", str(tmp_path / "labels.txt")]) == 1


def test_protocol_0_data_is_still_a_pickle(tmp_path: Path):
    import pickle

    for value in ({"labels": ["cat", "dog"], "n": 2}, ["cat", "dog"], ("a", 1.5)):
        report = scan_bytes(tmp_path, pickle.dumps(value, protocol=0), "labels.txt")
        assert "pickle" in {e.format for e in report.examined}, value
        assert report.findings == ()
