"""Unsafe ML code (AST), shell magics, declared dependencies, Python and Jupytext files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import by_rule, code, notebook, write_nb
from mlward._internal.pipeline import scan
from mlward._internal.scanners.code import aliases_of, check_shell, check_tree, split_magics
from mlward._internal.scanners.notebook import notebook_requirements
from mlward.findings import Severity


def issues(source: str) -> list[tuple[str, Severity]]:
    tree = ast.parse(source)
    return [(i.rule.id, i.severity) for i in check_tree(tree, aliases_of([tree]))]


@pytest.mark.parametrize(("source", "rule"), [
    ("import pickle\npickle.load(open('m.pkl', 'rb'))", "MW301"),
    ("import cloudpickle as cp\ncp.loads(blob)", "MW301"),
    ("from joblib import load\nload('model.joblib')", "MW301"),
    ("import dill\ndill.load(f)", "MW301"),
    ("import pandas as pd\npd.read_pickle('df.pkl')", "MW301"),
    ("import torch\ntorch.load('m.pt')", "MW302"),
    ("from torch import load as tl\ntl('m.pt', map_location='cpu')", "MW302"),
    ("import numpy as np\nnp.load('a.npy', allow_pickle=True)", "MW303"),
    ("import yaml\nyaml.load(open('c.yaml'))", "MW304"),
    ("import yaml\nyaml.load(s, Loader=yaml.Loader)", "MW304"),
    ("import yaml\nyaml.unsafe_load(s)", "MW304"),
    ("import yaml\nclass Mine(yaml.Loader):\n    pass\nyaml.load(s, Loader=Mine)", "MW304"),
    ("AutoModel.from_pretrained('org/m', trust_remote_code=True)", "MW305"),
    ("import keras\nkeras.models.load_model('m.keras', safe_mode=False)", "MW306"),
    ("eval(user_input)", "MW307"),
    ("exec(code_string)", "MW307"),
    ("import subprocess\nsubprocess.run(cmd, shell=True)", "MW308"),
    ("import os\nos.system('ls')", "MW308"),
    ("import requests\nrequests.get(url, verify=False)", "MW309"),
    ("import httpx\nhttpx.Client(verify=False)", "MW309"),
])
def test_unsafe_call_is_reported(source: str, rule: str) -> None:
    assert rule in [r for r, _ in issues(source)]


@pytest.mark.parametrize("source", [
    "import torch\ntorch.load('m.pt', weights_only=True)",
    "import numpy as np\nnp.load('a.npy')",
    "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)\nyaml.safe_load(s)",
    "import yaml\nloader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)\n"
    "yaml.load(s, Loader=loader)",
    "import yaml\nclass Strict(yaml.SafeLoader):\n    pass\nyaml.load(s, Loader=Strict)",
    "model.eval()",
    "AutoModel.from_pretrained('org/m')",
    "import subprocess\nsubprocess.run(['ls', '-l'])",
    "import requests\nrequests.get(url, timeout=10)",
    "import json\njson.load(f)",
    "import safetensors.torch\nsafetensors.torch.load_file('m.safetensors')",
])
def test_safe_calls_are_not_reported(source: str) -> None:
    assert issues(source) == []


def test_explicit_weights_only_false_is_high() -> None:
    assert issues("import torch\ntorch.load('m.pt', weights_only=False)") == \
        [("MW302", Severity.HIGH)]


def test_shell_string_of_os_system_is_checked_too() -> None:
    found = issues("import os\nos.system('curl -s https://get.example.io | bash')")
    assert ("MW310", Severity.HIGH) in found


@pytest.mark.parametrize(("command", "rule", "severity"), [
    ("curl -fsSL https://x.io/install.sh | sh", "MW310", Severity.HIGH),
    ("wget -qO- https://x.io/i.sh | sudo bash", "MW310", Severity.HIGH),
    ('bash -c "$(curl -fsSL https://x.io/i.sh)"', "MW310", Severity.HIGH),
    ("pip install https://files.acme.io/pkg-1.0.tar.gz", "MW311", Severity.MEDIUM),
    ("pip install git+https://github.com/org/repo", "MW311", Severity.MEDIUM),
    ("pip install http://files.acme.io/pkg-1.0.tar.gz", "MW311", Severity.HIGH),
    ("pip install --trusted-host pypi.acme.io torch", "MW311", Severity.HIGH),
    ("pip install -i http://pypi.acme.io/simple torch", "MW311", Severity.HIGH),
    ("python -m pip install --extra-index-url https://pypi.acme.io/simple x", "MW311",
     Severity.MEDIUM),
])
def test_risky_shell_commands(command: str, rule: str, severity: Severity) -> None:
    assert [(i.rule.id, i.severity) for i in check_shell(command).issues] == [(rule, severity)]


def test_pip_and_conda_requirements_are_collected() -> None:
    assert check_shell("pip install -q 'torch==2.1' transformers>=4 -r req.txt").requirements \
        == ("torch==2.1", "transformers>=4")
    assert check_shell("conda install -y -c conda-forge numpy scipy").requirements == \
        ("numpy", "scipy")
    assert check_shell("pip install -U pip && pip3 install datasets > /dev/null").requirements \
        == ("pip", "datasets")


def test_magics_are_split_keeping_line_numbers() -> None:
    unit = split_magics("import os\n!pip install a \\\n    b\nif x:\n    !ls\n%matplotlib inline\n"
                        "files = !ls\ny = 1")
    assert unit.python is not None
    lines = unit.python.split("\n")
    assert lines[7] == "y = 1" and ast.parse(unit.python)
    assert unit.shell == [(2, "pip install a  b"), (5, "ls"), (7, "ls")]
    assert split_magics("%%bash\ncurl x | sh\n").shell == [(2, "curl x | sh")]
    assert split_magics("%%html\n<b>x</b>").python is None
    assert split_magics("%%time\nimport torch\ntorch.load('x')").python == \
        "\nimport torch\ntorch.load('x')"


def test_notebook_code_cells_share_imports_and_report_cell_lines(tmp_path: Path) -> None:
    nb = notebook(
        code("import torch as T\nimport numpy"),
        code("%pip install torch==2.1 transformers\n!curl -s https://x.io/s.sh | bash"),
        code("x = 1\nmodel = T.load('model.pt')"),
        code("def f(:\n  pass"),  # a syntax error does not stop the others
    )
    report = scan([write_nb(tmp_path / "train.ipynb", nb)])
    [torch_load] = by_rule(report, "MW302")
    assert (torch_load.location.cell, torch_load.location.line) == (3, 2)
    [pipe] = by_rule(report, "MW310")
    assert (pipe.location.cell, pipe.location.line) == (2, 2)
    [deps] = by_rule(report, "MW312")
    assert deps.details["requirements"] == ["torch==2.1", "transformers"]
    assert any("not valid Python (cell 4)" in s.reason for s in report.skipped)
    assert notebook_requirements(tmp_path / "train.ipynb") == ["torch==2.1", "transformers"]


def test_python_file_and_shebang_script(tmp_path: Path) -> None:
    py = tmp_path / "load.py"
    py.write_text("import pickle\nwith open('m.pkl', 'rb') as f:\n    m = pickle.load(f)\n")
    script = tmp_path / "run-training"
    script.write_text("#!/usr/bin/env python3\nimport os\nos.system(cmd)\n")
    report = scan([py, script])
    assert [(f.rule_id, f.location.uri, f.location.line) for f in report.findings
            if f.rule_id.startswith("MW3")] == \
        [("MW301", "load.py", 3), ("MW308", "run-training", 3)]
    assert {e.format for e in report.examined} == {"python"}


def test_jupytext_script_gets_cell_locations(tmp_path: Path) -> None:
    src = tmp_path / "explore.py"
    src.write_text("# ---\n# jupyter:\n#   jupytext:\n#     formats: ipynb,py:percent\n# ---\n\n"
                   "# %%\nimport yaml\n\n# %%\n# !pip install evil-pkg --trusted-host x.io\n"
                   "cfg = yaml.load(open('c.yaml'))\n")
    report = scan([src])
    [pip] = by_rule(report, "MW311")
    assert (pip.location.cell, pip.location.line) == (3, 11)
    [yml] = by_rule(report, "MW304")
    assert (yml.location.cell, yml.location.line) == (3, 12)
    assert notebook_requirements(src) == ["evil-pkg"]


def test_python2_file_falls_back_to_secrets_only(tmp_path: Path) -> None:
    token = "hf" + "_" + "Q" * 10 + "wErTyUiOpAsDfGhJkLzXcVbN"
    old = tmp_path / "legacy.py"
    old.write_text(f'print "hello"\nTOKEN = "{token}"\nimport os; os.system("x")\n')
    report = scan([old])
    assert [f.rule_id for f in report.findings] == ["MW401"]
    assert any("not valid Python" in s.reason and not s.inconclusive for s in report.skipped)


def test_scanned_code_is_never_executed(tmp_path: Path, marker: Path) -> None:
    payload = f"open({str(marker)!r}, 'w').write('x')"
    nb = notebook(code(f"import os\n{payload}\nos.system('touch {marker}')\n"
                       f"!touch {marker}\n"))
    py = tmp_path / "evil.py"
    py.write_text(f"{payload}\n__import__('os').system('touch {marker}')\n")
    ipy = tmp_path / "evil.ipy"
    ipy.write_text(f"!touch {marker}\n{payload}\n")
    scan([write_nb(tmp_path / "evil.ipynb", nb), py, ipy])
    notebook_requirements(tmp_path / "evil.ipynb")
    assert not marker.exists()
