"""No credential in any output (issue 13, item 10): evidence quotes command lines and URLs with
their secrets redacted, in every writer, by one helper (``mlward._internal.redact``)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import corpus
import mlward
from mlward._internal.probe import probe_report
from mlward._internal.redact import MASK, redact_credentials
from mlward.cli.main import main
from mlward.formats import render, writer_names
from mlward.settings import Settings

# (text, the secret it holds, what must survive the redaction)
CASES = [
    ("mlflow server --backend-store-uri postgresql://admin:pw-1x@db/mlflow", "pw-1x",
     "postgresql://admin:"),
    ("https://ghp_tokentokentoken@github.com/o/r.git", "ghp_tokentokentoken", "@github.com/o/r"),
    ("jupyter lab --ServerApp.token=tk-123 --ip=0.0.0.0", "tk-123", "--ip=0.0.0.0"),
    ("jupyter lab --NotebookApp.password='sha1:abc:def'", "sha1:abc:def", "--NotebookApp"),
    ("mlflow ui --token abc-123 --port 5000", "abc-123", "--port 5000"),
    ("x --api-key=k-999 --api-key k-998", "k-99", "--api-key"),
    ("docker run -e MLFLOW_TRACKING_PASSWORD=pw-2 -e AWS_SECRET_ACCESS_KEY=\"a b\" img", "pw-2",
     "-e MLFLOW_TRACKING_PASSWORD="),
    ("docker run -e AWS_SECRET_ACCESS_KEY=\"abc def\" img", "abc def", "img"),
    ("export HF_TOKEN=hf_abcdef", "hf_abcdef", "export HF_TOKEN="),
    ("curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9' http://x", "eyJhbGciOiJIUzI1NiJ9",
     "Authorization: Bearer"),
    ("https://host/path?api_key=q-1&page=2", "q-1", "&page=2"),
    ("ray.init(_redis_password='r-3', dashboard_host='0.0.0.0')", "r-3", "dashboard_host"),
    ('{"token": "j-4", "port": 8888}', "j-4", '"port": 8888'),
    ("password: y-5\nhost: db", "y-5", "host: db"),
    ("c.ServerApp.token = 'c-6'", "c-6", "c.ServerApp.token"),
    ("clientSecret=cs-7 hfToken=ht-8", "cs-7", "clientSecret="),
    ("clientSecret=cs-7 hfToken=ht-8", "ht-8", "hfToken="),
]


@pytest.mark.parametrize(("text", "secret", "kept"), CASES)
def test_credentials_are_redacted_and_the_rest_kept(text: str, secret: str, kept: str) -> None:
    out = redact_credentials(text)
    assert secret not in out and MASK in out
    assert kept in out


@pytest.mark.parametrize("text", [
    "jupyter lab --ServerApp.token='' --ip=0.0.0.0",  # an empty token is the finding itself
    "Jupyter server with an empty token and no password",
    "mlflow server --host 0.0.0.0 --app-name basic-auth",
    "private key: found in settings.env",
    "postgresql://db:5432/mlflow and user@example.com",
    "--monkey banana --port 5000",
])
def test_what_holds_no_credential_is_left_alone(text: str) -> None:
    assert redact_credentials(text) == text


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> mlward.Report:
    root = tmp_path_factory.mktemp("exposure")
    corpus.build(root, root.parent / "PWNED_MARKER")
    return mlward.scan([root], settings=Settings(executor="inline", root=str(root)))


def test_the_quick_test_lets_every_credential_name_through() -> None:
    """Redaction skips its patterns for text with no URL userinfo and no credential word in
    it; every credential name (and one spelled with punctuation between its letters, which
    ``sensitive_name`` joins) must still reach them."""
    from mlward._internal.redact import SENSITIVE_PARTS

    for name in sorted(SENSITIVE_PARTS):
        assert redact_credentials(f"run --{name} hunter2x") == f"run --{name} {MASK}", name
    assert redact_credentials("run --p.w-d hunter2x") == f"run --p.w-d {MASK}"
    assert redact_credentials("Authorization: Bearer abcdefgh123") == \
        f"Authorization: Bearer {MASK}"


@pytest.mark.parametrize("fmt", writer_names())
def test_no_output_format_shows_a_credential(report: mlward.Report, fmt: str) -> None:
    assert {f.rule_id for f in report.findings} >= {"MW610", "MW601", "MW620"}
    out = render(report, fmt)
    leaked = [c for c in corpus.CREDENTIALS if c in out]
    assert not leaked
    # the evidence is still quoted, with the secret masked (Markdown escapes its brackets)
    assert MASK in out.replace("\\[", "[").replace("\\]", "]")


def test_the_cli_writes_no_credential_anywhere(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    corpus.build(tmp_path / "p", tmp_path / "PWNED_MARKER")
    for fmt in writer_names():
        out = tmp_path / f"report.{fmt}"
        main(["scan", "--executor", "inline", "-f", fmt, "-o", str(out), str(tmp_path / "p")])
        written = out.read_text() + capsys.readouterr().err
        assert not [c for c in corpus.CREDENTIALS if c in written], fmt


def test_probed_urls_are_shown_without_their_password() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = probe_report([f"http://admin:{corpus.PASSWORD}@127.0.0.1:{port}"], timeout=2)
    assert report.inconclusive
    for fmt in writer_names():
        assert corpus.PASSWORD not in render(report, fmt)
