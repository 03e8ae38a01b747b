"""Personal data in text: emails, phone numbers, payment cards, IBANs, US SSNs, public IPs.

Offline and deterministic: patterns plus checksums (Luhn for cards, ISO 7064 mod 97 for
IBANs, the SSA's never-issued ranges for SSNs, :mod:`ipaddress` for IPs). Samples are
redacted before they leave this module.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from mlward.findings import Severity

SENSITIVE = frozenset({"payment card", "IBAN", "US SSN"})


@dataclass(frozen=True)
class PiiHit:
    kind: str
    value: str
    line: int

    @property
    def sample(self) -> str:
        return redact(self.kind, self.value)


_EMAIL = re.compile(r"(?<![\w.%+\-:/])[A-Za-z0-9._%+\-]{1,64}"
                    r"@([A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.([A-Za-z]{2,24}))(?![\w\-])")
_NOT_TLD = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "py", "js", "css", "html",
                      "ipynb", "json", "txt", "md", "local", "localhost", "internal",
                      "example", "invalid", "test"})
_DOC_DOMAINS = frozenset({"example.com", "example.org", "example.net", "users.noreply.github.com"})
_PHONE = re.compile(
    r"(?<![\w+\-.])(?:\+\d{1,3}[ .\-]?)?(?:\(\d{3}\) ?|\d{3}[ .\-])\d{3}[ .\-]\d{4}(?![\w\-])"
    r"|(?<![\w+])\+\d{10,14}(?!\w)")
# Patterns start with a digit (fast scanning); the "not preceded by" checks are in _starts.
_CARD = re.compile(r"\d(?:[ \-]?\d){12,18}(?![\d\-])")
_IBAN = re.compile(r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)\b")
_SSN = re.compile(r"(\d{3})-(\d{2})-(\d{4})(?![\d\-])")
_PII_GATE = re.compile(r"[\d@]")
_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w.])")
# Necessary conditions of the patterns above that start with a plain character class, which
# the regex engine scans for quickly: most text fails them and skips the full pattern.
_PHONE_GATE = re.compile(r"\d{3}[ .\-]\d{4}|\+\d{10}")
_CARD_GATE = re.compile(r"\d[ \-]?\d[ \-]?\d[ \-]?\d[ \-]?\d")
_IBAN_GATE = re.compile(r"[A-Z]{2}\d{2}")

_IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22,
    "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18,
    "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26,
    "AE": 23, "BR": 29, "IL": 23, "SA": 24, "QA": 29, "UA": 29,
}
_NOT_SSN = frozenset({"123-45-6789", "078-05-1120", "219-09-9999"})


def find_pii(text: str) -> list[PiiHit]:
    """Every personal-data item in ``text`` (each distinct value once), in text order.

    Patterns run over the whole text (no per-line Python loop) and never span a line break.
    """
    if not _PII_GATE.search(text):
        return []
    items = sorted(_items(text))
    hits: list[PiiHit] = []
    seen: set[tuple[str, str]] = set()
    line, last = 1, 0
    for at, kind, value in items:
        line += text.count("\n", last, at)
        last = at
        if (kind, value) not in seen:
            seen.add((kind, value))
            hits.append(PiiHit(kind, value, line))
    return hits


def _items(text: str) -> Iterator[tuple[int, str, str]]:
    if "@" in text:
        for m in _EMAIL.finditer(text):
            domain, tld = m.group(1).lower(), m.group(2).lower()
            if tld not in _NOT_TLD and domain not in _DOC_DOMAINS \
                    and not domain.endswith(".example.com"):
                yield m.start(), "email", m.group(0)
    cards: set[int] = set()
    for m in _starts(_CARD, text, "-") if _CARD_GATE.search(text) else ():
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and _card_prefix(digits) and _luhn(digits):
            cards.add(m.start())
            yield m.start(), "payment card", m.group(0)
    ssns: set[int] = set()
    for m in _starts(_SSN, text, "-") if "-" in text else ():
        area, group, serial = m.groups()
        ssns.add(m.start())
        if area not in {"000", "666"} and area[0] != "9" and group != "00" \
                and serial != "0000" and m.group(0) not in _NOT_SSN:
            yield m.start(), "US SSN", m.group(0)
    for m in _PHONE.finditer(text) if _PHONE_GATE.search(text) else ():
        if m.start() not in cards and m.start() not in ssns:
            yield m.start(), "phone number", m.group(0).strip()
    for m in _IBAN.finditer(text) if _IBAN_GATE.search(text) else ():
        if _iban_ok(m.group(1)):
            yield m.start(), "IBAN", m.group(1)
    for m in _starts(_IPV4, text, "._"):
        try:
            ip = ipaddress.IPv4Address(m.group(0))
        except ValueError:
            continue
        if ip.is_global:
            yield m.start(), "public IP address", m.group(0)


def _starts(pattern: re.Pattern[str], text: str, also: str) -> Iterator[re.Match[str]]:
    """Matches not preceded by a letter, digit or one of ``also`` (inside a longer token)."""
    for m in pattern.finditer(text):
        at = m.start()
        if at == 0 or not (text[at - 1].isalnum() or text[at - 1] in also):
            yield m


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_prefix(d: str) -> bool:
    two, four = int(d[:2]), int(d[:4])
    return (d[0] == "4" or 51 <= two <= 55 or 2221 <= four <= 2720
            or two in {30, 34, 35, 36, 37, 38, 65} or four == 6011
            or 644 <= int(d[:3]) <= 649) and len(set(d)) > 1


def _iban_ok(raw: str) -> bool:
    iban = raw.replace(" ", "")
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def redact(kind: str, value: str) -> str:
    """A sample that shows the shape, not the person: ``j***@acme.com``, ``****1111``."""
    if kind == "email":
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if kind == "public IP address":
        return value.split(".")[0] + ".*.*.*"
    digits = [c for c in value if c.isalnum()]
    tail = "".join(digits[-4:]) if kind in {"payment card", "IBAN"} else "".join(digits[-2:])
    head = value[:2] if kind == "IBAN" else ""
    return f"{head}****{tail}"


def severity_for(counts: Counter[str]) -> Severity:
    """Severity rising with the count, sooner for cards, SSNs and IBANs."""
    sensitive = sum(n for k, n in counts.items() if k in SENSITIVE)
    total = sum(counts.values())
    if sensitive >= 10 or total >= 100:
        return Severity.HIGH
    if sensitive >= 1 or total >= 10:
        return Severity.MEDIUM
    return Severity.LOW
