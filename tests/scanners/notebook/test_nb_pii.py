"""Personal data: each kind with its checksum rules, counting, severity, redacted samples."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conftest import by_rule, code, notebook, result, stream, write_nb
from mlward._internal.pipeline import scan
from mlward._internal.scanners.secrets.pii import find_pii, redact, severity_for
from mlward.findings import Severity


@pytest.mark.parametrize(("text", "kind"), [
    ("contact: jane.roe@acme-corp.com", "email"),
    ("call (415) 555-0132 today", "phone number"),
    ("whatsapp +447911123456", "phone number"),
    ("card 4539 1488 0343 6467", "payment card"),
    ("amex 3714-496353-98431", "payment card"),
    ("IBAN GB82 WEST 1234 5698 7654 32", "IBAN"),
    ("iban=DE89370400440532013000", "IBAN"),
    ("ssn 536-22-8901", "US SSN"),
    ("client 93.184.216.34 connected", "public IP address"),
])
def test_each_kind_is_found(text: str, kind: str) -> None:
    assert [h.kind for h in find_pii(text)] == [kind]


@pytest.mark.parametrize("text", [
    "card 4539 1488 0343 6468",             # Luhn fails
    "IBAN GB82 WEST 1234 5698 7654 33",     # mod-97 fails
    "ssn 666-22-8901 or 900-12-3456",       # never-issued areas
    "server 10.0.0.12, 127.0.0.1, 192.168.1.20, 172.16.4.4",  # private and loopback
    "author: someone@example.com",          # documentation domain
    "logo: image@2x.png",                   # file name, not an address
    "postgresql://user:pw@db.acme.io/x",    # a URI's userinfo, not an email
    "Epoch 12/50 step 1200/5000 loss=0.23419 lr=0.000300",
    "version 1.26.4 built 2024-03-05 12:30:01 id 7f3a9c",
    "tensor([[0.1234, 0.5678], [1.2345, 6.7890]])",
])
def test_lookalikes_are_not_reported(text: str) -> None:
    assert find_pii(text) == []


def test_samples_are_redacted() -> None:
    assert redact("email", "jane.roe@acme.com") == "j***@acme.com"
    assert redact("payment card", "4539 1488 0343 6467") == "****6467"
    assert redact("US SSN", "536-22-8901") == "****01"
    assert redact("public IP address", "93.184.216.34") == "93.*.*.*"


def test_severity_rises_with_count_and_sensitivity() -> None:
    assert severity_for(Counter({"email": 2})) is Severity.LOW
    assert severity_for(Counter({"email": 12})) is Severity.MEDIUM
    assert severity_for(Counter({"email": 150})) is Severity.HIGH
    assert severity_for(Counter({"US SSN": 1})) is Severity.MEDIUM
    assert severity_for(Counter({"payment card": 10})) is Severity.HIGH


def test_dataframe_output_is_counted_per_output(tmp_path: Path) -> None:
    rows = "".join(f"<tr><td>user{i}@shop-{i}.com</td><td>(415) 555-{1000 + i:04d}</td></tr>"
                   for i in range(30))
    nb = notebook(
        code("df.head(30)", result({"text/html": f"<table>{rows}</table>",
                                    "text/plain": "   email  phone\n0  ..."})),
        code("print(df.email[0])", stream("user0@shop-0.com\n")),
    )
    report = scan([write_nb(tmp_path / "customers.ipynb", nb)])
    pii = sorted(by_rule(report, "MW410"), key=lambda f: f.location.output or 0)
    assert [(f.location.cell, f.location.output) for f in pii] == [(1, 1), (2, 1)]
    html = pii[0]
    assert html.details["counts"] == {"email": 30, "phone number": 30}
    assert html.severity is Severity.MEDIUM
    assert pii[1].severity is Severity.LOW
    assert "user0@shop-0.com" not in (html.evidence or "")
    assert all("***" in s or "****" in s for v in html.details["samples"].values() for s in v)
