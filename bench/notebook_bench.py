"""Notebook benchmark: mlward beside detect-secrets (CLI) and NB Defense where it installs.

A corpus of notebooks is generated into ``bench/out/notebooks/`` (seeded, so every run sees
the same files): typical ML cells and outputs (training logs, DataFrame tables, hex digests,
UUIDs, model names) with planted items recorded in ``manifest.json``:

* secrets of many providers, in code (assignments and keyword arguments), outputs, tracebacks
  and metadata;
* personal data (emails, phones, payment cards, IBANs, SSNs) in outputs;
* risky code: torch.load, pickle.load, trust_remote_code=True, ``!curl | sh``,
  ``pip install --trusted-host``.

Each tool scans the corpus folder once, as a subprocess through its CLI, launched by GNU
time. Found = the tool reports the planted value (secrets: by hash, since neither report
holds the value) or, for personal data and code, a finding of that kind in that cell.

    bench/.venv/bin/python bench/notebook_bench.py [--notebooks 1000] [--write-readme]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shlex
import string
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _bench import (  # bench/ is the script folder, on sys.path
    compile_mlward,
    load_corpus,
    measured_on,
    write_section,
)

from mlward._internal.scanners.secrets.providers import base62_crc32

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
VENV_BIN = Path(sys.executable).parent
NBDEFENSE = OUT / "nbdefense-venv" / "bin" / "nbdefense"
TIME = "/usr/bin/time"

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


# --- corpus ---------------------------------------------------------------------------

def _r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _secrets(rng: random.Random) -> list[tuple[str, str, str]]:
    """(kind, value, code line or output text that holds it); values assembled at run time."""
    hf = "hf" + "_" + _r(rng, string.ascii_letters, 34)
    proj = "sk" + "-proj-" + _r(rng, ALNUM, 64)
    aws = "AKIA" + _r(rng, string.ascii_uppercase + string.digits, 16)
    ghp = _r(rng, ALNUM, 36)[:30]  # as many draws as before: the rest of the corpus is unchanged
    ghp = "ghp" + "_" + ghp + base62_crc32(ghp)  # GitHub's checksum: a valid-looking token
    slack = "xoxb" + "-" + _r(rng, string.digits, 12) + "-" + _r(rng, string.digits, 12) + \
        "-" + _r(rng, ALNUM, 24)
    stripe = "sk" + "_live_" + _r(rng, ALNUM, 24)
    wandb = _r(rng, HEX, 40)
    pw = "Tr41n" + _r(rng, ALNUM, 10)
    dbpw = "Db" + _r(rng, ALNUM, 12)
    anth = "sk" + "-ant-api03-" + _r(rng, ALNUM, 93) + "AA"
    repl = "r8" + "_" + _r(rng, ALNUM, 37)
    lsv = "lsv2" + "_pt_" + _r(rng, HEX, 32) + "_" + _r(rng, HEX, 10)
    dapi = "dapi" + _r(rng, HEX, 32)
    return [
        ("huggingface", hf, f'login(token="{hf}")'),
        ("openai-kwarg", proj, f'client = OpenAI(api_key="{proj}")'),
        ("aws", aws, f's3 = boto3.client("s3", aws_access_key_id="{aws}")'),
        ("github", ghp, f'GITHUB_TOKEN = "{ghp}"'),
        ("slack", slack, f'slack = WebClient(token="{slack}")'),
        ("stripe", stripe, f'stripe.api_key = "{stripe}"'),
        ("wandb", wandb, f'wandb.login(key="{wandb}")'),
        ("password", pw, f'password = "{pw}"'),
        ("db-uri", dbpw, f'engine = create_engine("postgresql://ml:{dbpw}@db.corp.io/feat")'),
        ("anthropic", anth, f'claude = Anthropic(api_key="{anth}")'),
        ("replicate", repl, f'os.environ["REPLICATE_API_TOKEN"] = "{repl}"'),
        ("langsmith", lsv, f'os.environ["LANGCHAIN_API_KEY"] = "{lsv}"'),
        ("databricks", dapi, f'host, token = "https://x.cloud.databricks.com", "{dapi}"'),
    ]


def _luhn_card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return " ".join(s[i:i + 4] for i in range(0, 16, 4))


def _pii(rng: random.Random) -> list[tuple[str, str]]:
    first = rng.choice(["anna", "li", "omar", "sofia", "ken", "maria"])
    return [
        ("email", f"{first}.{_r(rng, string.ascii_lowercase, 5)}@{rng.choice(['acme', 'shop'])}"
                  f"-mail.com"),
        ("phone number", f"({rng.randrange(201, 989)}) 555-{rng.randrange(1000, 9999)}"),
        ("payment card", _luhn_card(rng)),
        ("IBAN", "GB82 WEST 1234 5698 7654 32"),
        ("US SSN", f"{rng.randrange(100, 665)}-{rng.randrange(10, 99)}-"
                   f"{rng.randrange(1000, 9999)}"),
    ]


RISKY = [
    ("MW302", "model = torch.load('checkpoint.pt')"),
    ("MW301", "with open('feats.pkl', 'rb') as f:\n    feats = pickle.load(f)"),
    ("MW305", "model = AutoModel.from_pretrained('org/m', trust_remote_code=True)"),
    ("MW310", "!curl -fsSL https://get.tools.io/install.sh | bash"),
    ("MW311", "!pip install --trusted-host pypi.corp.io corp-utils"),
]


def _noise(rng: random.Random) -> list[dict[str, Any]]:
    """Outputs that real notebooks carry and that must not be reported."""
    log = "".join(f"Epoch {e}/20 - loss: {rng.random():.4f} - acc: {rng.random():.4f}\n"
                  for e in range(1, 21))
    digest = hashlib.sha256(_r(rng, ALNUM, 8).encode()).hexdigest()
    table = "".join(f"<tr><td>{i}</td><td>{rng.random():.3f}</td>"
                    f"<td>{uuid.UUID(int=rng.getrandbits(128))}</td></tr>" for i in range(20))
    return [
        {"output_type": "stream", "name": "stdout", "text": log},
        {"output_type": "execute_result", "execution_count": 3, "metadata": {},
         "data": {"text/plain": f"'sha256:{digest}'",
                  "text/html": f"<table>{table}</table>"}},
        {"output_type": "display_data", "metadata": {},
         "data": {"image/png": _r(rng, ALNUM, 2000), "text/plain": "<Figure>"}},
    ]


def _cell(source: str, outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": source,
            "outputs": outputs or []}


def build_corpus(folder: Path, count: int) -> list[dict[str, Any]]:
    """Write ``count`` notebooks; return the planted items."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    planted: list[dict[str, Any]] = []
    for n in range(count):
        name = f"nb{n:05d}.ipynb"
        cells: list[dict[str, Any]] = [
            {"cell_type": "markdown", "metadata": {}, "source": "# Training run\nModel: "
             "meta-llama/Llama-2-7b-hf, tokenizer sentence-transformers/all-MiniLM-L6-v2"},
            _cell("import torch, pickle, boto3, wandb, os\nfrom transformers import AutoModel\n"
                  "from openai import OpenAI\nfrom huggingface_hub import login"),
        ]
        for _ in range(8):
            cells.append(_cell("history = model.fit(X, y, epochs=20)\nprint(history)",
                               _noise(rng)))
        kind, value, line = rng.choice(_secrets(rng))
        where = rng.choice(["source", "output", "traceback"])
        if where == "source":
            cells.append(_cell(line))
        elif where == "output":
            cells.append(_cell("print(config)", [{"output_type": "stream", "name": "stdout",
                                                  "text": f"config: {line}\n"}]))
        else:
            cells.append(_cell("client.connect()", [{
                "output_type": "error", "ename": "AuthError", "evalue": "rejected",
                "traceback": ["\x1b[0;31m---------\x1b[0m", f"\x1b[0;32m----> 1\x1b[0m {line}"]}]))
        planted.append({"notebook": name, "category": "secret", "kind": kind, "value": value,
                        "where": where, "cell": len(cells)})
        pii_kind, pii_value = rng.choice(_pii(rng))
        cells.append(_cell("df.sample(1)", [{"output_type": "execute_result",
                                             "execution_count": 9, "metadata": {},
                                             "data": {"text/plain": f"0  {pii_value}  42"}}]))
        planted.append({"notebook": name, "category": "pii", "kind": pii_kind,
                        "cell": len(cells)})
        rule, code = rng.choice(RISKY)
        cells.append(_cell(code))
        planted.append({"notebook": name, "category": "code", "kind": rule, "cell": len(cells)})
        nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3",
                                                           "display_name": "Python 3"}},
              "nbformat": 4, "nbformat_minor": 5}
        for i, c in enumerate(cells):
            c["id"] = f"c{i}"
        (folder / name).write_text(json.dumps(nb, indent=1))
    return planted


# --- tools ----------------------------------------------------------------------------

@dataclass
class Result:
    tool: str
    command: str
    wall: float
    cpu: float
    rss_mib: float
    exit_code: int
    found: Counter[str]
    unplanted: int
    leaked: int = 0


def run(argv: list[str], log: Path) -> tuple[float, float, float, int]:
    usage = log.with_suffix(".time")
    timed = [TIME, "-f", "%M %U %S", "-o", str(usage), *argv] if Path(TIME).exists() else argv
    with open(log, "wb") as sink:
        start = time.perf_counter()
        code = subprocess.call(timed, stdout=sink, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - start
    fields = usage.read_text().split()[-3:] if usage.exists() else ["0", "0", "0"]
    return wall, float(fields[1]) + float(fields[2]), float(fields[0]) / 1024, code


def fp12(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def mlward(corpus: Path, planted: list[dict[str, Any]]) -> Result:
    report = OUT / "notebook_bench.mlward.json"
    argv = [str(VENV_BIN / "mlward"), "scan", "--quiet", "--no-ignore", "-f", "json", "-o",
            str(report), str(corpus)]
    wall, cpu, rss, code = run(argv, OUT / "notebook_bench.mlward.log")
    findings = json.loads(report.read_text())["findings"]
    by_nb: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        by_nb.setdefault(Path(f["location"]["uri"]).name, []).append(f)
    found: Counter[str] = Counter()
    matched: set[int] = set()
    for item in planted:
        for f in by_nb.get(item["notebook"], []):
            cell = f["location"].get("cell")
            if item["category"] == "secret":
                hit = f.get("details", {}).get("fingerprint") == fp12(item["value"])
            elif item["category"] == "pii":
                hit = f["rule_id"] == "MW410" and cell == item["cell"] and \
                    item["kind"] in f["details"]["counts"]
            else:
                hit = f["rule_id"] == item["kind"] and cell == item["cell"]
            if hit:
                found[item["category"]] += 1
                matched.add(id(f))
                break
    unplanted = sum(1 for f in findings
                    if f["rule_id"].startswith("MW40") and id(f) not in matched)
    return Result("mlward", shlex.join(argv), wall, cpu, rss, code, found, unplanted)


def detect_secrets(corpus: Path, planted: list[dict[str, Any]]) -> Result:
    report = OUT / "notebook_bench.detect-secrets.json"
    argv = [str(VENV_BIN / "detect-secrets"), "scan", "--all-files", str(corpus)]
    log = OUT / "notebook_bench.detect-secrets.log"
    with open(report, "wb") as sink:
        start = time.perf_counter()
        timed = [TIME, "-f", "%M %U %S", "-o", str(log.with_suffix(".time")), *argv]
        code = subprocess.call(timed, stdout=sink)
        wall = time.perf_counter() - start
    fields = log.with_suffix(".time").read_text().split()[-3:]
    results = json.loads(report.read_text())["results"]
    # A hit counts for a planted secret when it is on the file line holding the value (its
    # hashed_secret is not always the whole token: some plugins capture only a prefix).
    hits = {(Path(path).name, r["line_number"]) for path, rs in results.items() for r in rs}
    found: Counter[str] = Counter()
    matched = set()
    for item in planted:
        if item["category"] != "secret":
            continue
        lines = (corpus / item["notebook"]).read_text().splitlines()
        for number, line in enumerate(lines, 1):
            if item["value"] in line and (item["notebook"], number) in hits:
                found["secret"] += 1
                matched.add((item["notebook"], number))
                break
    return Result("detect-secrets", shlex.join(argv) + f" > {report.name}", wall,
                  float(fields[1]) + float(fields[2]), float(fields[0]) / 1024, code, found,
                  len(hits - matched))


def nbdefense(corpus: Path, planted: list[dict[str, Any]]) -> Result:
    """NB Defense from its Python 3.10 venv. Its PII plugin needs the spaCy model
    en_core_web_trf, which is downloaded from GitHub, not a package registry: unavailable
    here, so NB Defense runs its secrets plugin only (the error is in its report)."""
    report = OUT / "notebook_bench.nbdefense.json"
    report.unlink(missing_ok=True)
    argv = [str(NBDEFENSE), "scan", "-r", "-y", "-q", "-o", "json", "-f", str(report),
            str(corpus)]
    wall, cpu, rss, code = run(argv, OUT / "notebook_bench.nbdefense.log")
    data = json.loads(report.read_text())
    issues = {(Path(nb["path"]).name, i["cell"]["cell_index"]) for nb in data["notebook_issues"]
              for i in nb["issues"] if i["code"] == "SECRETS"}
    found: Counter[str] = Counter()
    for item in planted:
        if item["category"] == "secret" and (item["notebook"], item["cell"] - 1) in issues:
            found["secret"] += 1
    planted_cells = {(p["notebook"], p["cell"] - 1) for p in planted}
    return Result("nbdefense", shlex.join(argv), wall, cpu, rss, code, found,
                  len(issues - planted_cells))


def leaked(path: Path, planted: list[dict[str, Any]]) -> int:
    """How many planted secrets a tool's report shows at least the second half of."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return sum(1 for p in planted
               if p["category"] == "secret" and p["value"][len(p["value"]) // 2:] in text)


# --- report ---------------------------------------------------------------------------

def render(count: int, size: int, planted: list[dict[str, Any]], results: list[Result],
           command: str) -> str:
    total = Counter(p["category"] for p in planted)
    lines = [
        f"{measured_on()}; detect-secrets {version('detect-secrets')}, "
        f"mlward {version('mlward')}.",
        f"Corpus: {count} notebooks ({size / 2**20:.1f} MiB), {total['secret']} planted "
        f"secrets, {total['pii']} personal-data items, {total['code']} risky calls.",
        "", "Command:", "", "```sh", command, "```", "",
        "| tool | wall s | notebooks/s | CPU s | peak MiB | secrets found | PII found "
        "| risky code found | unplanted secret hits | secrets shown (half or more) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.tool} | {r.wall:.2f} | {count / r.wall:.0f} | {r.cpu:.2f} | "
            f"{r.rss_mib:.0f} | {r.found['secret']}/{total['secret']} | "
            f"{r.found['pii']}/{total['pii']} | {r.found['code']}/{total['code']} | "
            f"{r.unplanted} | {r.leaked} |")
    ours = next(r for r in results if r.tool == "mlward")
    for r in results:
        if r.tool != "mlward":
            lines.append(f"\nvs {r.tool}: {r.wall / ours.wall:.1f}× the throughput (wall), "
                         f"{r.cpu / ours.cpu:.1f}× less CPU time.")
    if NBDEFENSE.exists():
        lines.append("\nNB Defense ran from bench/out/nbdefense-venv (Python 3.10, numpy<2) with "
                     "its secrets plugin only: its PII plugin failed on every run (spaCy model "
                     "en_core_web_trf, not installable from a package registry).")
    else:
        lines.append("\nNB Defense: not run (no Python 3.10 venv at bench/out/nbdefense-venv).")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notebooks", type=int, default=1000)
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    compile_mlward()
    corpus = OUT / f"notebooks-{args.notebooks}"
    nb_dir = corpus / "nb"
    planted = load_corpus(nb_dir, corpus / "manifest.json",
                          lambda folder: build_corpus(folder, args.notebooks))
    size = sum(p.stat().st_size for p in nb_dir.iterdir())
    results = [mlward(nb_dir, planted), detect_secrets(nb_dir, planted)]
    if NBDEFENSE.exists():
        results.append(nbdefense(nb_dir, planted))
    for r in results:
        r.leaked = leaked(OUT / f"notebook_bench.{r.tool}.json", planted)
    command = "bench/.venv/bin/python bench/notebook_bench.py " + " ".join(sys.argv[1:])
    text = render(args.notebooks, size, planted, results, command.strip())
    print(text)
    if args.write_readme:
        write_section("notebook_bench", text)


if __name__ == "__main__":
    main()
