"""Provider token formats: every provider's tokens found in every place they leak, the
providers' own checks (checksums, macaroon and JSON structure) applied, look-alikes ignored."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from random import Random

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from secret_samples import (
    ALNUM,
    HEX,
    KIND,
    MALFORMED,
    NEAR_MISSES,
    VALID,
    b64url,
    macaroon,
    r,
    uuid4,
)

from mlward._internal.pipeline import scan
from mlward._internal.scanners.secrets.detect import find_secrets
from mlward._internal.scanners.secrets.providers import (
    github_checksum_ok,
    grafana_checksum_ok,
    pypi_macaroon_ok,
)
from mlward.findings import Severity
from mlward.formats import RenderOptions, render

CHECKED = {"github": "CRC32 checksum", "npm": "CRC32 checksum",
           "grafana-service-account": "CRC32 checksum", "cloudflare": "CRC32 checksum",
           "pypi": "macaroon structure", "grafana-cloud": "token structure"}

PLACES = {
    "assignment": 'TOKEN = "{}"',
    "keyword argument": 'client = Client(api_key="{}", timeout=30)',
    "env file": "export SERVICE_TOKEN={}",
    "yaml": "  token: {}",
    "json": '{{"credentials": {{"token": "{}"}}}}',
    "header": 'curl -H "Authorization: Bearer {}" https://api.example.io',
    "printed": "Using credentials {} for the upload",
}


@pytest.mark.parametrize("provider", sorted(VALID))
@pytest.mark.parametrize("place", sorted(PLACES))
def test_every_provider_token_is_found_wherever_it_leaks(provider: str, place: str) -> None:
    rng = Random(f"{provider}/{place}")
    for _ in range(5):
        token = VALID[provider](rng)
        hits = find_secrets(PLACES[place].format(token) + "\n")
        assert [(h.kind, h.value, h.rule.id) for h in hits] == [(KIND[provider], token, "MW401")]
        assert hits[0].checked == CHECKED.get(provider, "")


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_look_alikes_are_not_reported_even_under_a_secret_name(name: str) -> None:
    rng = Random(name)
    for _ in range(20):
        value = NEAR_MISSES[name](rng)
        assert find_secrets(f'value = "{value}"\n') == [], value[:12]
        assert find_secrets(f'API_TOKEN = "{value}"\n') == [], value[:12]


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_provider_prefixes_on_values_of_the_wrong_length_are_no_provider_token(name: str) -> None:
    rng = Random(name)
    for _ in range(20):
        assert find_secrets(f'value = "{MALFORMED[name](rng)}"\n') == []


def test_github_checksum_matches_githubs_published_example() -> None:
    # The example token of GitHub's format announcement, as reproduced in the base62 token
    # write-up (gist coolaj86/eb8cddfd3e4251258712dfed03e1f86d): "ghp_" + 30 + checksum.
    example = "ghp" + "_" + "zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ" + "0mLq17"
    assert github_checksum_ok(example)
    assert not github_checksum_ok(example[:-1] + "8")


def test_grafana_checksum_matches_grafanas_test_vector() -> None:
    # grafana/grafana pkg/components/satokengen/tokengen_test.go (TestApiKeyValidation).
    vector = "gl" + "sa_" + "iNValIdinValiDinvalidinvalidinva" + "_5b582697"
    assert grafana_checksum_ok(vector)
    assert not grafana_checksum_ok(vector[:-1] + "8")


def test_pypi_macaroon_structure() -> None:
    rng = Random(1)
    ok = macaroon(rng)
    assert pypi_macaroon_ok("pypi" + "-" + b64url(ok))
    assert pypi_macaroon_ok("pypi" + "-" + b64url(macaroon(rng, b"test.pypi.org")))
    for broken in (ok[:-1], ok + b"\x00", b"\x01" + ok[1:], macaroon(rng, b"evil.example.io"),
                   ok.replace(b"\x06\x20", b"\x06\x1f", 1),
                   b"\x02" + b"\xff" * 40,  # a varint that never ends
                   b"\x02\x01\x7f" + b"x" * 10):  # a length past the end
        assert not pypi_macaroon_ok("pypi" + "-" + b64url(broken))
    assert not pypi_macaroon_ok("pypi" + "-" + "A")  # not base64 at all


def test_stripe_prefixes_say_what_the_key_is() -> None:
    rng = Random(2)
    test_key = "sk" + "_test_" + r(rng, ALNUM, 24)
    restricted = "rk" + "_live_" + r(rng, ALNUM, 24)
    webhook = "wh" + "sec_" + r(rng, ALNUM, 32)
    publishable = "pk" + "_live_" + r(rng, ALNUM, 24)
    hits = {h.value: h for h in find_secrets(
        f'a = "{test_key}"\nb = "{restricted}"\nc = "{webhook}"\nd = "{publishable}"\n')}
    assert set(hits) == {test_key, restricted, webhook}
    assert hits[test_key].severity == Severity.LOW
    assert hits[restricted].severity is None and hits[webhook].kind == "Stripe webhook secret"


def test_context_bound_formats_need_their_context() -> None:
    rng = Random(3)
    key = uuid4(rng)
    assert [h.kind for h in find_secrets(f'HEROKU_API_KEY = "{key}"')] == ["Heroku API key"]
    assert find_secrets(f'run_id = "{key}"') == []
    mailgun = f"{r(rng, HEX, 32)}-{r(rng, HEX, 8)}-{r(rng, HEX, 8)}"
    assert [h.kind for h in find_secrets(f'mailgun_key = "{mailgun}"')] == ["Mailgun API key"]
    key37 = r(rng, HEX, 37)
    assert [h.kind for h in find_secrets(f"CLOUDFLARE_GLOBAL_KEY={key37}")] == \
        ["Cloudflare global API key"]
    assert find_secrets(f"checksum = {key37}") == []


def test_legacy_formats_of_npm_and_grafana() -> None:
    rng = Random(4)
    npmrc = f"//registry.npmjs.org/:_authToken={uuid4(rng)}\n"
    assert [h.kind for h in find_secrets(npmrc, syntax="config")] == ["npm access token"]
    legacy = base64.b64encode(json.dumps(  # Go's compact JSON, as Grafana writes it
        {"k": r(rng, ALNUM, 32), "n": "ci", "id": 1}, separators=(",", ":")).encode()).decode()
    assert [h.checked for h in find_secrets(f'GRAFANA = "{legacy}"')] == ["token structure"]


def test_new_formats_in_a_notebook_are_reported_masked(tmp_path: Path) -> None:
    rng = Random(5)
    tokens = {name: VALID[name](rng) for name in ("npm", "doppler", "grafana-service-account",
                                                   "sendgrid", "azure-ad")}
    nb = new_notebook(cells=[
        new_code_cell(f'NPM_TOKEN = "{tokens["npm"]}"', outputs=[
            new_output("stream", name="stdout", text=f"doppler {tokens['doppler']}\n")]),
        new_code_cell("client.connect()", outputs=[new_output(
            "error", ename="AuthError", evalue="denied",
            traceback=[f"----> 1 connect('{tokens['grafana-service-account']}')"])]),
    ], metadata={"env": {"SENDGRID_API_KEY": tokens["sendgrid"],
                         "AZURE_CLIENT_SECRET": tokens["azure-ad"]}})
    path = tmp_path / "leak.ipynb"
    path.write_text(nbformat.writes(nb))
    report = scan([path])
    kinds = {f.details["kind"] for f in report.findings if f.rule_id == "MW401"}
    assert kinds == {KIND[name] for name in tokens}
    checked = {f.details["kind"]: f.details.get("checked") for f in report.findings}
    assert checked["npm access token"] == "CRC32 checksum"
    for fmt in ("text", "json", "sarif"):
        out = render(report, fmt, RenderOptions(fail_on=Severity.HIGH, verbose=True))
        assert not [name for name, token in tokens.items() if token in out], fmt
