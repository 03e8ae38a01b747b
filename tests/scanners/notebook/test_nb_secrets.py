"""Secret detection: provider tokens, keyword arguments, false positives, masking, allowlists."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import HEX, code, notebook, rand, result, stream, tokens, write_nb
from mlward._internal.pipeline import scan
from mlward._internal.scanners.secrets.detect import redact_secrets
from mlward._internal.scanners.secrets.report import find_secrets, mask
from mlward.findings import Severity
from mlward.formats import RenderOptions, render
from mlward.settings import Settings

TOKENS = tokens()


@pytest.mark.parametrize("name", sorted(TOKENS))
def test_every_provider_token_is_found(name: str) -> None:
    value = TOKENS[name]
    hits = find_secrets(f'key = "{value}"\n')
    assert [h.value for h in hits] == [value]
    assert hits[0].rule.id == "MW401"


def test_keyword_arguments_are_caught_despite_the_indirect_reference_filter() -> None:
    secret = "Zq8" + rand(HEX, 20)
    hits = find_secrets(f'client = boto3.client("s3", aws_secret_access_key="{secret}")')
    assert secret in {h.value for h in hits}
    hits = find_secrets(f'OpenAI(api_key="{TOKENS["openai_proj"]}")')
    assert [h.kind for h in hits] == ["OpenAI API key"]


def test_context_dependent_formats_need_their_context() -> None:
    key40 = rand(HEX, 40)
    assert [h.kind for h in find_secrets(f'wandb.login(key="{key40}")')] == \
        ["Weights & Biases API key"]
    assert find_secrets(f'commit = "{key40}"') == []
    kaggle = json.dumps({"username": "alice", "key": rand(HEX, 32)})
    assert [h.kind for h in find_secrets(kaggle)] == ["Kaggle API key"]
    cohere_key = rand("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 40)
    assert [h.kind for h in find_secrets(f'co = cohere.Client("{cohere_key}")')] == \
        ["Cohere API key"]


def test_uris_with_passwords_and_cloud_keys() -> None:
    pw = "Pw" + rand(HEX, 10)
    hits = find_secrets(f'mlflow.set_tracking_uri("https://bob:{pw}@mlflow.acme.io")\n'
                        f'engine = create_engine("postgresql://app:{pw}x@db:5432/prod")')
    assert {h.rule.id for h in hits} == {"MW403"} and len(hits) == 2
    azure = ("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey="
             + rand("ABCDEFabcdef0123456789+/", 86) + "==;EndpointSuffix=core.windows.net")
    assert [h.rule.id for h in find_secrets(azure)] == ["MW404"]
    sa = json.dumps({"type": "service_account", "project_id": "p",
                     "private_key": "-----BEGIN PRIVATE KEY-----\n" + rand(HEX, 200)
                     + "\n-----END PRIVATE KEY-----\n"}, indent=1)
    assert "MW404" in {h.rule.id for h in find_secrets(sa)}


@pytest.mark.parametrize("text", [
    "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "Downloading model.safetensors  commit 7c9d2f1e0b8a4c6d3e5f7a9b1c2d4e6f8a0b2c4d",
    'run_id = "123e4567-e89b-12d3-a456-426614174000"',
    'model = AutoModel.from_pretrained("meta-llama/Llama-2-7b-hf")',
    'tokenizer = AutoTokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")',
    'api_key = os.environ["OPENAI_API_KEY"]',
    'password = getpass.getpass("Password: ")',
    'aws_access_key_id = "AKIAIOSFODNN7EXAMPLE"',
    'token = "<your-token-here>"',
    'HF_TOKEN = "hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
    "postgresql://user:password@localhost/db",
    "Epoch 3/10 - loss: 0.2319 - acc: 0.9412 - val_loss: 0.3012",
    "torch==2.1.0+cu121 numpy-1.26.4 md5=9f86d081884c7d659a2feaa0c55ad015",
    'PEM = b"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----"',
    "c.NotebookApp.password = 'argon2:$argon2id$v=19$m=10240,t=10,p=8$abcdefghij'",
])
def test_typical_notebook_content_is_not_flagged(text: str) -> None:
    assert find_secrets(text) == []


def test_pem_private_key_with_material_is_critical() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(
        rand("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 64)
        for _ in range(5)) + "\n-----END RSA PRIVATE KEY-----\n"
    hits = find_secrets(pem)
    assert [(h.rule.id, h.rule.severity) for h in hits] == [("MW404", Severity.CRITICAL)]


def test_missing_extra_is_inconclusive_with_the_hint(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from mlward._internal.scanners.secrets import detect

    for name in [m for m in sys.modules if m.split(".")[0] == "detect_secrets"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    monkeypatch.setitem(sys.modules, "detect_secrets", None)
    detect._engine.cache_clear()
    try:
        path = write_nb(tmp_path / "a.ipynb", notebook(code("x = 1")))
        env = tmp_path / "app.env"
        env.write_text("A=1\n")
        report = scan([path, env], settings=Settings(executor="inline"))
    finally:
        monkeypatch.undo()
        detect._engine.cache_clear()
    reasons = [s.reason for s in report.inconclusive]
    assert len(reasons) == 2 and all("pip install detect-secrets" in r for r in reasons)


def test_mask_shows_a_prefix_and_a_hash_never_the_value() -> None:
    value = TOKENS["hf"]
    m = mask(value)
    assert m.startswith(value[:6]) and "sha256:" in m and value not in m
    assert mask("hunter2pass").startswith("…")  # short secrets show no prefix


def test_full_secret_appears_in_no_output_format(tmp_path: Path) -> None:
    secrets = [TOKENS["hf"], TOKENS["openai_proj"], TOKENS["aws_id"]]
    pw = "S3cret" + rand(HEX, 8)
    nb = notebook(
        code(f'HF = "{secrets[0]}"\n!curl -H "Authorization: Bearer {secrets[1]}" https://a.io',
             stream(f"token {secrets[1]}\n"), result({"text/plain": repr(secrets[2])})),
        code(f'uri = "postgresql://a:{pw}@db.acme.io/x"'),
        widgets={"state": {"m": {"value": secrets[0]}}},
    )
    report = scan([write_nb(tmp_path / "leak.ipynb", nb)])
    assert len([f for f in report.findings if f.rule_id.startswith("MW4")]) >= 5
    for fmt in ("text", "json", "sarif"):
        out = render(report, fmt, RenderOptions(fail_on=Severity.HIGH, verbose=True))
        for s in [*secrets, pw]:
            assert s not in out, (fmt, s[:4])


def test_inline_allowlist_and_baseline(tmp_path: Path) -> None:
    value, other = TOKENS["replicate"], TOKENS["databricks"]
    src = tmp_path / "train.py"
    src.write_text(f'A = "{value}"  # mlward: allow\nB = "{other}"\n')
    report = scan([src])
    assert [f.details["kind"] for f in report.findings if f.rule_id == "MW401"] == \
        ["Databricks token"]
    fp = report.findings[0].details["fingerprint"]
    (tmp_path / ".mlward").mkdir()
    (tmp_path / ".mlward" / "secrets-baseline.json").write_text(
        json.dumps({"allow": [{"fingerprint": fp, "note": "revoked test key"}]}))
    from mlward._internal.scanners.secrets.report import _baseline_in
    _baseline_in.cache_clear()
    assert [f for f in scan([src]).findings if f.rule_id == "MW401"] == []


def test_long_lines_are_scanned_in_bounded_windows() -> None:
    value = TOKENS["hf"]
    line = "x" * 50_000 + f' "{value}" ' + "y" * 50_000
    assert [h.value for h in find_secrets(line)] == [value]


def test_redact_secrets_replaces_every_occurrence() -> None:
    value = TOKENS["langsmith"]
    text, n = redact_secrets(f"a {value} b {value}", label=True)
    assert n == 1 and value not in text and text.count("[REDACTED:LangSmith API key]") == 2
