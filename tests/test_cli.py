from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from mlward.cli.main import main


def test_version(capsys):
    from mlward import __version__
    from mlward.cli.main import build_parser

    assert main(["--version"]) == 0
    quick = capsys.readouterr().out
    assert quick == f"mlward {__version__}\n"
    with pytest.raises(SystemExit):  # the answer the full parser gives
        build_parser().parse_args(["--version"])
    assert capsys.readouterr().out == quick


def test_no_command_is_usage_error():
    assert main([]) == 2


def test_missing_path_is_usage_error(tmp_path: Path, capsys):
    assert main(["scan", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_benign_pickle_passes(tmp_path: Path, capsys):
    (tmp_path / "w.pkl").write_bytes(pickle.dumps({"a": [1, 2.0, "x"]}, protocol=4))
    assert main(["scan", "--format", "json", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["verdicts"] == {"w.pkl": "clean"}
    assert data["root"] == str(tmp_path)


def test_command_table_names_the_module_of_every_command():
    """Running one command imports only the module the table names: it must register it."""
    import argparse
    import importlib

    from mlward.cli.main import COMMAND_MODULES, COMMANDS

    registered = {}
    for module in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        registered.update(dict.fromkeys(sub.choices, module))
    assert registered == COMMANDS


def test_help_lists_every_command(capsys):
    from mlward.cli.main import COMMANDS

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in COMMANDS)


def test_scanning_a_checkpoint_loads_no_machinery_it_does_not_need(tmp_path: Path) -> None:
    """Start-up is most of a one-file scan: analysis for other formats, the ledger, the
    advisory database and heavy standard modules load only when a run meets what needs them."""
    import subprocess
    import sys

    target = tmp_path / "model.pkl"
    target.write_bytes(pickle.dumps({"weights": [0.5] * 8}, protocol=4))
    code = ("import sys; from mlward.cli.main import main; "
            "rc = main(['scan', '-q', '--executor', 'inline', '-f', 'json', "
            f"'-o', {str(tmp_path / 'r.json')!r}, "
            f"{str(target)!r}]); print(rc); print('\\n'.join(sorted(name for name, m in "
            "sys.modules.items() if type(m).__name__ != '_LazyModule')))")  # not yet loaded
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout.split()
    assert out[0] == "0"
    loaded = set(out[1:])
    assert "mlward._internal.scanners.pickle" in loaded  # what the file needs
    unneeded = {
        "dataclasses", "inspect", "ast", "tomllib", "jinja2", "cryptography", "detect_secrets",
        "yaml", "rich", "importlib.metadata", "mlward._internal.scanners.code",
        "mlward._internal.scanners.notebook.read", "mlward._internal.scanners.keras.config",
        "mlward._internal.scanners.templates", "mlward._internal.ledger.store",
        "mlward._internal.vulndb.index",
    }
    assert not unneeded & loaded, sorted(unneeded & loaded)
