"""Secrets benchmark: mlward and detect-secrets on one generated corpus, in one run.

The corpus (seeded, generated into ``bench/out/secrets-N/files/`` with its manifest beside
the folder, since the manifest holds the planted values) is made of three kinds of files:

* **planted**: one token of a provider per file (one of 20 providers, from
  ``tests/scanners/secrets/secret_samples.py``, plus "generic": a random 40-character string
  under a secret name), in one of the places tokens leak: a Python assignment or keyword
  argument, a ``.env``, YAML or JSON config, a shell ``curl`` header, a notebook's code cell,
  printed output, error traceback or metadata, ``.npmrc``/``.pypirc`` for npm and PyPI;
* **near misses**: the same places holding look-alikes under the same names: tokens whose
  provider checksum or structure fails, publishable keys, fill-ins (``ghp_XXXX…``);
* **benign**: ML notebooks, scripts and configs with what they really carry: training logs,
  digests, git and model revisions, UUID and ID tables, DNA and protein sequences, base64
  images, tokenizer output, API responses, pip and npm lock hashes, environment lookups, prose.

Every planted and near-miss file also carries benign content around its line. Each tool
scans the folder once through its CLI (mlward: ``scan --no-ignore -f json``; detect-secrets:
``scan --all-files``, default plugins). A planted token counts as found when mlward reports
its fingerprint, or when detect-secrets reports a secret on a file line that holds it (or its
SHA-1). Every other reported secret is a false positive; they are counted once per file and
value (mlward's fingerprint, detect-secrets' ``hashed_secret``) and given per 1,000 files.

    bench/.venv/bin/python bench/secrets_bench.py [--files 1000] [--write-readme]
"""

from __future__ import annotations

import argparse
import base64
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
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _bench import (  # bench/ is the script folder, on sys.path
    compile_mlward,
    load_corpus,
    measured_on,
    write_section,
)

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests" / "scanners" / "secrets"))
from secret_samples import NEAR_MISSES, VALID  # noqa: E402  (the tests' token builders)

OUT = BENCH / "out"
VENV_BIN = Path(sys.executable).parent
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
SECRET_RULES = ("MW401", "MW402", "MW403", "MW404", "MW405")

NAMES = {  # the variable a user would keep each provider's token in
    "github": "GITHUB_TOKEN", "github-fine-grained": "GH_PAT", "npm": "NPM_TOKEN",
    "pypi": "PYPI_API_TOKEN", "digitalocean": "DIGITALOCEAN_TOKEN", "doppler": "DOPPLER_TOKEN",
    "grafana-service-account": "GRAFANA_SA_TOKEN", "grafana-cloud": "GRAFANA_CLOUD_TOKEN",
    "terraform-cloud": "TFE_TOKEN", "notion": "NOTION_TOKEN",
    "azure-ad": "AZURE_CLIENT_SECRET", "cloudflare": "CLOUDFLARE_API_TOKEN",
    "heroku": "HEROKU_API_KEY", "linear": "LINEAR_API_KEY", "mailgun": "MAILGUN_API_KEY",
    "perplexity": "PERPLEXITY_API_KEY", "planetscale": "PLANETSCALE_PASSWORD",
    "postman": "POSTMAN_API_KEY", "sendgrid": "SENDGRID_API_KEY", "stripe": "STRIPE_SECRET_KEY",
}
GENERIC_NAMES = ["token", "api_key", "auth_token", "client_secret", "ACCESS_TOKEN", "secret_key"]
NEAR_MISS_NAMES = {"github": "GITHUB_TOKEN", "npm": "NPM_TOKEN", "grafana": "GRAFANA_SA_TOKEN",
                   "cloudflare": "CLOUDFLARE_API_TOKEN", "pypi": "PYPI_API_TOKEN",
                   "grafana cloud": "GRAFANA_CLOUD_TOKEN", "stripe": "STRIPE_PUBLISHABLE_KEY",
                   "digitalocean": "DIGITALOCEAN_TOKEN", "perplexity": "PERPLEXITY_API_KEY"}


def _r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# --- benign content -------------------------------------------------------------------

def _out(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text}


def _result(data: dict[str, str]) -> dict[str, Any]:
    return {"output_type": "execute_result", "execution_count": 1, "metadata": {}, "data": data}


def _cell(source: str, *outputs: dict[str, Any]) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": source,
            "outputs": list(outputs)}


def _png(rng: random.Random) -> str:
    head = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    return base64.b64encode(head + rng.randbytes(rng.randrange(1500, 4000))).decode()


def benign_cells(rng: random.Random) -> list[dict[str, Any]]:
    """Cells real ML notebooks carry, none of which holds a secret."""
    sha = hashlib.sha256(rng.randbytes(8)).hexdigest()
    rev = _r(rng, HEX, 40)
    log = "".join(f"Epoch {e}/10 - loss: {rng.random():.4f} - val_acc: {rng.random():.4f}\n"
                  for e in range(1, 11))
    table = "".join(f"<tr><td>{uuid.UUID(int=rng.getrandbits(128))}</td><td>{_r(rng, HEX, 24)}"
                    f"</td><td>{_r(rng, ALNUM, 20)}</td><td>{rng.random():.3f}</td></tr>"
                    for _ in range(15))
    text_table = "\n".join(f"{i:>3}  {_r(rng, HEX, 24)}  {uuid.UUID(int=rng.getrandbits(128))}"
                           f"  {rng.random():.4f}" for i in range(15))
    dna = "".join(rng.choice("ACGT") for _ in range(rng.randrange(300, 900)))
    protein = "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(rng.randrange(100, 400)))
    ids = [101, *(rng.randrange(30522) for _ in range(40)), 102]
    completion = {"id": "chatcmpl-" + _r(rng, ALNUM, 29), "object": "chat.completion",
                  "created": 1718000000 + rng.randrange(10**6), "model": "gpt-4o-2024-08-06",
                  "system_fingerprint": "fp_" + _r(rng, HEX, 10),
                  "usage": {"prompt_tokens": 31, "completion_tokens": 118, "total_tokens": 149}}
    config = {"learning_rate": 3e-4, "seed": 42, "experiment_id": _r(rng, ALNUM, 22),
              "cache_key": hashlib.sha1(rng.randbytes(8)).hexdigest(), "max_tokens": 4096,
              "pad_token": "<pad>", "model_revision": rev}
    cells = [
        _cell("import os, torch, numpy as np\nfrom transformers import AutoTokenizer\n"
              'api_key = os.environ["OPENAI_API_KEY"]\ntoken = os.getenv("HF_TOKEN")\n'
              'password = getpass.getpass("Database password: ")'),
        _cell("model.fit(X, y, epochs=10)", _out(log)),
        _cell("!sha256sum weights/*.safetensors && git log -1",
              _out(f"{sha}  weights/model-00001-of-00002.safetensors\ncommit {rev}\n"
                   "Author: Ana <ana@lab.example.org>\n")),
        _cell("df.head(15)", _result({"text/plain": text_table,
                                      "text/html": f"<table>{table}</table>"})),
        _cell(f'seq = "{dna[:60]}"\nprint(seq_record.seq)\nprint(protein)',
              _out(f"{dna}\n{protein}\n")),
        _cell("tokenizer(text)", _result({"text/plain": repr(
            {"input_ids": [ids], "token_type_ids": [[0] * len(ids)],
             "attention_mask": [[1] * len(ids)]})})),
        _cell("plt.plot(history)", {"output_type": "display_data", "metadata": {},
                                    "data": {"image/png": _png(rng), "text/plain": "<Figure>"}}),
        _cell("response = client.chat.completions.create(...)\nresponse",
              _result({"text/plain": json.dumps(completion, indent=1)})),
        _cell("config", _result({"text/plain": repr(config)})),
        _cell("snapshot_download('meta-llama/Llama-3.1-8B', revision=rev)",
              _out(f"Fetching 12 files: 100%|██████████| 12/12 [00:41<00:00]\n"
                   f"wandb: Run data is saved locally in ./wandb/run-20240611_101500-"
                   f"{_r(rng, string.ascii_lowercase + string.digits, 8)}\n"
                   f"mlflow run_id={_r(rng, HEX, 32)} docker image sha256:{_r(rng, HEX, 64)}\n")),
        {"cell_type": "markdown", "metadata": {}, "source":
            "Log in with `huggingface-cli login`: never paste your token or secret here. "
            "Ask the platform team for the secret if you need one."},
        _cell('secret_help = "Ask the platform team for the secret, never commit it"\n'
              'TOKEN_URL = "https://huggingface.co/settings/tokens"\nmax_tokens = 512'),
        _cell("!nvidia-smi -L && conda env export | head", _out(
            f"GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-{uuid.UUID(int=rng.getrandbits(128))})\n"
            f"  - numpy=1.26.4=py311h64a7726_0\n  - pytorch=2.3.0=py3.11_cuda12.1_cudnn8_0\n"
            f"Key: learning_rate  Value: 0.0003\nauth: ok  token count: {rng.randrange(9999)}\n")),
        _cell("display(Audio(wave, rate=16000))", {
            "output_type": "display_data", "metadata": {}, "data": {
                "audio/wav": base64.b64encode(b"RIFF" + rng.randbytes(6000)).decode(),
                "text/plain": "<IPython.lib.display.Audio object>"}}),
        _cell("orders.head()", _result({"text/plain": "\n".join(
            f"ORD-{_r(rng, ALNUM, 16)},{_r(rng, string.ascii_uppercase + string.digits, 20)},"
            f"{rng.random() * 100:.2f}" for _ in range(12))})),
        _cell("requests.get(url).json()", _result({"text/plain": json.dumps(
            {"object_id": _r(rng, HEX, 24), "etag": _r(rng, HEX, 32), "session_id":
             _r(rng, ALNUM, 32), "next_page": _r(rng, ALNUM + "-_", 40),
             "signature_version": "s3v4", "key": f"datasets/{_r(rng, HEX, 16)}.parquet"},
            indent=1)})),
    ]
    rng.shuffle(cells)
    return cells[:rng.randrange(7, len(cells) + 1)]


def notebook(cells: list[dict[str, Any]], metadata: dict[str, Any] | None = None) -> str:
    for i, c in enumerate(cells):
        c["id"] = f"c{i}"
    return json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3"},
                                                    **(metadata or {})},
                       "nbformat": 4, "nbformat_minor": 5}, indent=1, ensure_ascii=False)


def script(rng: random.Random, line: str = "") -> str:
    return "\n".join([
        '"""Fine-tune a classifier."""', "import argparse, os", "",
        f'MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # revision {_r(rng, HEX, 40)}',
        'API_KEY = os.environ.get("OPENAI_API_KEY")', 'PAD_TOKEN = "<pad>"',
        f'DATA = "s3://ml-data/{uuid.UUID(int=rng.getrandbits(128))}/train.parquet"',
        line, "", "def main():", '    parser = argparse.ArgumentParser()',
        '    parser.add_argument("--token", default=os.environ.get("HF_TOKEN"))', ""])


def yaml_config(rng: random.Random, line: str = "") -> str:
    return "\n".join([
        "model:", "  name: meta-llama/Llama-3.1-8B", f"  revision: {_r(rng, HEX, 40)}",
        "data:", f"  sha256: {hashlib.sha256(rng.randbytes(8)).hexdigest()}",
        f"  run_id: {uuid.UUID(int=rng.getrandbits(128))}", "training:", "  max_tokens: 2048",
        "secrets:", "  secret_name: prod/db/password", "  api_key: ${OPENAI_API_KEY}",
        line, ""])


def benign_file(rng: random.Random) -> tuple[str, str]:
    kind = rng.choices(["ipynb", "py", "yaml", "requirements", "lock"], [6, 2, 1, 1, 1])[0]
    if kind == "ipynb":
        return ".ipynb", notebook(benign_cells(rng))
    if kind == "py":
        return ".py", script(rng)
    if kind == "yaml":
        return ".yaml", yaml_config(rng)
    if kind == "requirements":
        return ".txt", "".join(f"{p}==1.{rng.randrange(30)}.0 --hash=sha256:{_r(rng, HEX, 64)}\n"
                               for p in ("torch", "numpy", "pandas", "transformers"))
    integrity = {f"node_modules/pkg-{i}": {
        "version": "1.0.0", "integrity": "sha512-" + base64.b64encode(rng.randbytes(64)).decode()}
        for i in range(8)}
    return ".json", json.dumps({"lockfileVersion": 3, "packages": integrity}, indent=2)


# --- planting ---------------------------------------------------------------------------

def carriers(name: str, token: str) -> dict[str, Callable[[random.Random], tuple[str, str]]]:
    """The places a token leaks, each as a file built around it."""
    lower = name.lower()
    return {
        "python assignment": lambda g: (".py", script(g, f'{name} = "{token}"')),
        "keyword argument": lambda g: (".py", script(
            g, f'client = Client({lower}="{token}", timeout=30)')),
        ".env": lambda g: (".env", f"# {lower}\nLOG_LEVEL=info\n{name}={token}\n"),
        "yaml": lambda g: (".yaml", yaml_config(g, f"  {lower}: {token}")),
        "json": lambda g: (".json", json.dumps({"service": "ingest", lower: token}, indent=2)),
        "curl header": lambda g: (".sh", f"#!/bin/sh\n# {lower}\ncurl -s -H 'Authorization: "
                                         f"Bearer {token}' https://api.acme.io/v1/runs\n"),
        "notebook source": lambda g: (".ipynb", notebook(
            [*benign_cells(g), _cell(f'os.environ["{name}"] = "{token}"')])),
        "notebook output": lambda g: (".ipynb", notebook(
            [*benign_cells(g), _cell("print(settings)", _out(f"{{'{lower}': '{token}'}}\n"))])),
        "notebook traceback": lambda g: (".ipynb", notebook([*benign_cells(g), _cell(
            "client.connect()", {"output_type": "error", "ename": "AuthError",
                                 "evalue": "401", "traceback": [
                                     f"----> 1 client = Client({lower}='{token}')"]})])),
        "notebook metadata": lambda g: (".ipynb", notebook(
            benign_cells(g), {"env": {name: token}})),
    }


def plant(name: str, token: str, rng: random.Random, provider: str) -> tuple[str, str, str]:
    """A file holding ``token``: (suffix, text, the place chosen)."""
    places = carriers(name, token)
    if provider == "npm" and rng.random() < 0.3:
        return ".npmrc", f"registry=https://registry.npmjs.org/\n" \
                         f"//registry.npmjs.org/:_authToken={token}\n", ".npmrc"
    if provider == "pypi" and rng.random() < 0.3:
        return ".pypirc", f"[pypi]\nusername = __token__\npassword = {token}\n", ".pypirc"
    place = rng.choice(sorted(places))
    suffix, text = places[place](rng)
    return suffix, text, place


def build_corpus(folder: Path, count: int) -> list[dict[str, Any]]:
    """Write ``count`` files: 42% planted, 16% near misses, the rest benign."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2026)
    providers = [*sorted(VALID), "generic"]
    per_provider = max(1, int(count * 0.42) // len(providers))
    near_each = max(1, int(count * 0.16) // len(NEAR_MISSES))
    items: list[dict[str, Any]] = []
    for provider in providers:
        for _ in range(per_provider):
            if provider == "generic":
                token, name = _r(rng, ALNUM, 40), rng.choice(GENERIC_NAMES)
            else:
                token, name = VALID[provider](rng), NAMES[provider]
            suffix, text, place = plant(name, token, rng, provider)
            items.append({"category": "planted", "provider": provider, "value": token,
                          "place": place, "suffix": suffix, "text": text})
    for miss in sorted(NEAR_MISSES):
        for _ in range(near_each):
            value = NEAR_MISSES[miss](rng)
            name = NEAR_MISS_NAMES[miss.split(":")[0]]
            suffix, text, place = plant(name, value, rng, "")
            items.append({"category": "near miss", "provider": miss, "value": value,
                          "place": place, "suffix": suffix, "text": text})
    while len(items) < count:
        suffix, text = benign_file(rng)
        items.append({"category": "benign", "provider": "", "value": "", "place": "",
                      "suffix": suffix, "text": text})
    rng.shuffle(items)
    for n, item in enumerate(items):
        item["file"] = f"f{n:05d}{item['suffix']}"
        (folder / item["file"]).write_text(item.pop("text"))
    return items


# --- tools ------------------------------------------------------------------------------

@dataclass
class Result:
    tool: str
    command: str
    wall: float
    exit_code: int
    found: Counter[str] = field(default_factory=Counter)
    false_positives: Counter[str] = field(default_factory=Counter)


def run(argv: list[str], stdout: Path) -> tuple[float, int]:
    """Wall time and exit code. (No CPU time: mlward's workers run under a fork server that
    GNU time does not see; the notebook benchmark is the one that measures speed.)"""
    with open(stdout, "wb") as sink:
        start = time.perf_counter()
        code = subprocess.call(argv, stdout=sink, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start, code


def fp12(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def score(result: Result, items: list[dict[str, Any]],
          reported: dict[str, set[str]], matches: Callable[[dict[str, Any], str], bool]) -> None:
    """``reported``: file -> the tool's secret identities there; ``matches`` says whether one
    of them is the file's planted value. Everything else is a false positive."""
    for item in items:
        hits = reported.get(item["file"], set())
        planted = {h for h in hits if item["category"] == "planted" and matches(item, h)}
        if planted:
            result.found[item["provider"]] += 1
        result.false_positives[item["category"]] += len(hits - planted)


def mlward(corpus: Path, items: list[dict[str, Any]]) -> Result:
    report = OUT / "secrets_bench.mlward.json"
    argv = [str(VENV_BIN / "mlward"), "scan", "--quiet", "--no-ignore", "-f", "json", "-o",
            str(report), str(corpus)]
    wall, code = run(argv, OUT / "secrets_bench.mlward.log")
    reported: dict[str, set[str]] = {}
    for f in json.loads(report.read_text())["findings"]:
        if f["rule_id"] in SECRET_RULES:
            reported.setdefault(Path(f["location"]["uri"]).name, set()).add(
                f["details"]["fingerprint"])
    result = Result("mlward", shlex.join(argv), wall, code)
    score(result, items, reported, lambda item, fp: fp == fp12(item["value"]))
    return result


def detect_secrets(corpus: Path, items: list[dict[str, Any]]) -> Result:
    report = OUT / "secrets_bench.detect-secrets.json"
    argv = [str(VENV_BIN / "detect-secrets"), "scan", "--all-files", str(corpus)]
    wall, code = run(argv, report)
    reported: dict[str, set[str]] = {}
    lines: dict[tuple[str, str], int] = {}
    for path, results in json.loads(report.read_text())["results"].items():
        for r in results:
            reported.setdefault(Path(path).name, set()).add(r["hashed_secret"])
            lines[(Path(path).name, r["hashed_secret"])] = r["line_number"]

    def matches(item: dict[str, Any], hashed: str) -> bool:
        # its hash is not always of the whole token (some plugins capture a part): a hit on
        # a line holding the value counts too
        if hashed == hashlib.sha1(item["value"].encode()).hexdigest():
            return True
        text = (corpus / item["file"]).read_text().splitlines()
        return item["value"] in text[lines[(item["file"], hashed)] - 1]

    result = Result("detect-secrets", shlex.join(argv) + f" > {report.name}", wall, code)
    score(result, items, reported, matches)
    return result


# --- report -----------------------------------------------------------------------------

def render(count: int, items: list[dict[str, Any]], results: list[Result], command: str) -> str:
    planted = Counter(i["provider"] for i in items if i["category"] == "planted")
    files = Counter(i["category"] for i in items)
    ours, theirs = results
    lines = [
        f"{measured_on()}; detect-secrets {version('detect-secrets')}, "
        f"mlward {version('mlward')}.",
        f"Corpus: {count} files ({files['planted']} with a planted token, {files['near miss']} "
        f"with a near miss, {files['benign']} benign; "
        + ", ".join(f"{n} {s}" for s, n in Counter(i["suffix"] for i in items).most_common())
        + ").", "", "Command:", "", "```sh", command, "```", "",
        "| provider | planted | mlward found | detect-secrets found |", "|---|---|---|---|",
    ]
    short = []
    for provider in sorted(planted):
        a, b = ours.found[provider], theirs.found[provider]
        lines.append(f"| {provider} | {planted[provider]} | {a} ({a / planted[provider]:.0%}) "
                     f"| {b} ({b / planted[provider]:.0%}) |")
        if a < b:
            short.append(provider)
    total = sum(planted.values())
    lines.append(f"| **all** | {total} | {sum(ours.found.values())} "
                 f"({sum(ours.found.values()) / total:.0%}) | {sum(theirs.found.values())} "
                 f"({sum(theirs.found.values()) / total:.0%}) |")
    lines += ["", "| tool | false positives | per 1,000 files | in benign files | in near-miss "
              "files | in planted files (besides the token) | wall s | exit |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results:
        fp = sum(r.false_positives.values())
        lines.append(f"| {r.tool} | {fp} | {fp * 1000 / count:.1f} | "
                     f"{r.false_positives['benign']} | {r.false_positives['near miss']} | "
                     f"{r.false_positives['planted']} | {r.wall:.2f} | {r.exit_code} |")
    ours_fp = sum(ours.false_positives.values())
    theirs_fp = sum(theirs.false_positives.values())
    covered = [p for p in planted if theirs.found[p]]
    lines += ["", f"Target: recall at least detect-secrets' on every provider it "
              f"covers ({len(covered)} of {len(planted)}): "
              + ("met" if not short else "missed on " + ", ".join(short))
              + f"; at most a fifth of its false positives: {ours_fp} vs {theirs_fp} "
              + ("(met)" if ours_fp * 5 <= theirs_fp else "(missed)") + "."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    compile_mlward()
    root = OUT / f"secrets-{args.files}"
    corpus = root / "files"
    items = load_corpus(corpus, root / "manifest.json",
                        lambda folder: build_corpus(folder, args.files))
    results = [mlward(corpus, items), detect_secrets(corpus, items)]
    command = "bench/.venv/bin/python bench/secrets_bench.py " + " ".join(sys.argv[1:])
    text = render(args.files, items, results, command.strip())
    print(text)
    if args.write_readme:
        write_section("secrets_bench", text)


if __name__ == "__main__":
    main()
