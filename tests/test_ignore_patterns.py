"""Ignore and exclude patterns rule paths out by their literal pieces before importing
pathspec: whatever they rule out, pathspec must find unmatched too, so that the answer is
always pathspec's (a wrong "no match" here would scan an ignored file; a wrong one the other
way would skip a file the user wants scanned)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pathspec
import pytest

from mlward._internal.ignore import Patterns
from mlward.errors import UsageError

SRC = str(Path(__file__).resolve().parent.parent / "src")

REAL = [
    ".venv/", "__pycache__/", "*.py[cod]", "*.egg-info/", "/build", "dist/", "bench/out/",
    "!bench/out/keep.txt", "**/logs", "data/**/*.csv", "a/**/b", "\\#notes", "\\!bang",
    "# a comment", "", "   ", "name with space.txt", "trailing  ", "*.ckpt", "models/*.pt",
    "!models/ok.pt", "./local", "double//slash", "[!a]bc", "x?y", "[abc", "doc/**",
    ".*", "*", "!important/", "/only-root.pkl", "**/", "foo/**/", "**/bar/**/baz",
]


def _random_patterns(rng: random.Random) -> list[str]:
    atoms = ["a", "b", "ab", "x.pkl", ".", "..", "/", "*", "**", "?", "[ab]", "[!a]", "[",
             "!", "\\", "\\*", " ", "#", "data", "out", "-", "_", "é"]
    return ["".join(rng.choice(atoms) for _ in range(rng.randrange(1, 6)))
            for _ in range(rng.randrange(1, 5))]


def _random_path(rng: random.Random) -> str:
    parts = ["a", "b", "ab", "x.pkl", "data", "out", "a b", ".hidden", "é", "[ab]", "*",
             "!", "#x", "bench", "logs", "c.csv"]
    path = "/".join(rng.choice(parts) for _ in range(rng.randrange(1, 5)))
    return path + "/" if rng.random() < 0.3 else path


def _paths(rng: random.Random, n: int) -> list[str]:
    fixed = ["bench/out/", "bench/out/keep.txt", "bench/out/m.pkl", "x/logs/", "logs",
             "data/a/b/c.csv", "data/c.csv", "a/b", "a/x/y/b", "#notes", "!bang", "local",
             "name with space.txt", "trailing", "m.ckpt", "models/a.pt", "models/ok.pt",
             "build", "src/build", "only-root.pkl", "sub/only-root.pkl", "q/bar/z/baz",
             "dir.egg-info/", "x.pyc", "xyy", "xy", "bbc", "abc", "doc/a/b"]
    return fixed + [_random_path(rng) for _ in range(n)]


@pytest.mark.filterwarnings("ignore::FutureWarning")  # pathspec, on random "[[" patterns
def test_what_the_pieces_rule_out_pathspec_does_not_match() -> None:
    rng = random.Random(5)
    cases = [(REAL, _paths(rng, 400))]
    cases += [(_random_patterns(rng), _paths(rng, 40)) for _ in range(1500)]
    decided_alone = 0
    for lines, paths in cases:
        try:
            spec = pathspec.GitIgnoreSpec.from_lines(lines)
        except ValueError:  # a line pathspec cannot read (tested below)
            continue
        ours = Patterns(lines, [f"line {n}" for n in range(len(lines))])
        for path in paths:
            expected = spec.check_file(path).include
            assert ours.check(path) == expected, (lines, path)
        decided_alone += ours._spec is None
    assert decided_alone > 100  # most pattern sets never needed pathspec on these paths


def test_a_scan_that_matches_no_pattern_does_not_import_pathspec(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text(".venv/\n__pycache__/\n*.pyc\nbuild/\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.bin").write_bytes(b"\x00" * 16)
    (tmp_path / "x.pyc").write_bytes(b"\x00" * 16)
    code = f"""
import sys
from pathlib import Path
from mlward._internal.walk import Walk
root = Path({str(tmp_path)!r})
walk = Walk(root)
names = sorted(Path(i.path).name for i in walk.files([root / "models"]))
assert names == ["m.bin"], names
assert "pathspec" not in sys.modules, "imported for paths no pattern can match"
names = sorted(Path(i.path).name for i in walk.files([root]))
assert names == [".gitignore", "m.bin"], names  # x.pyc is ignored: pathspec decided that
assert "pathspec" in sys.modules
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_a_bad_line_in_an_ignore_file_is_left_out_with_a_warning(tmp_path: Path) -> None:
    """As git does: the other lines still apply, and the run names the line it left out."""
    (tmp_path / ".gitignore").write_text("*.log\\\n*.tmp\n")  # line 1 ends in a lone "\\"
    for name in ("a.log", "b.tmp", "c.bin"):
        (tmp_path / name).write_bytes(b"\x00" * 16)
    proc = subprocess.run([sys.executable, "-m", "mlward", "scan", "-f", "json", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"})
    assert "Traceback" not in proc.stderr
    assert f"WARNING: {tmp_path / '.gitignore'}, line 1:" in proc.stderr
    why = {s["location"]["uri"]: s["reason"] for s in json.loads(proc.stdout)["skipped"]}
    assert "ignore file" in why["b.tmp"]  # *.tmp still applies
    assert why["a.log"] == why["c.bin"] == "unrecognised format"  # the bad line ignores nothing


def test_a_bad_exclude_pattern_is_a_usage_error() -> None:
    from mlward._internal.walk import Walk

    with pytest.raises(UsageError, match="is not a valid pattern") as raised:
        Walk(Path("."), exclude=["*.ok", "a\\"])
    assert str(raised.value).startswith("exclude pattern 'a")
