"""Secret detection: provider formats, the entropy detector, and detect-secrets' plugins.

Text is examined line by line. A cheap pre-filter drops lines that cannot hold a secret, so
large outputs cost little; the remaining lines go, in this order, through the provider
formats (:mod:`.providers`, with their checksums), random-looking values in a secret context
(:mod:`.entropy`), and a selection of detect-secrets plugins (called directly, without its
global settings, so no verification request is ever sent). A span claimed by an earlier
stage is not reported again by a later one. detect-secrets' indirect-reference filter is
applied only when the value is not a quoted literal: ``OpenAI(api_key="sk-...")`` is
reported; its keyword hits that are prose (``secret = "ask the admin for it"``) are not.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from mlward._internal.scanners.secrets import entropy
from mlward._internal.scanners.secrets.providers import CONTEXT_WORDS, FORMATS
from mlward.errors import MissingExtra
from mlward.findings import Severity
from mlward.rules import (
    SECRET_ENTROPY,
    SECRET_KEYWORD,
    SECRET_PRIVATE_KEY,
    SECRET_TOKEN,
    SECRET_URI,
    Rule,
)

MAX_LINE = 4096
"""Longer lines are examined in overlapping windows of this size (bounded regex work)."""
_OVERLAP = 256


@dataclass(frozen=True)
class SecretHit:
    """One secret found in a text: what it is, which rule, and where (1-based line/column;
    within a line's scan, line 0 and the 0-based column in the chunk)."""

    kind: str
    rule: Rule
    value: str
    line: int
    column: int
    severity: Severity | None = None
    """When the case overrides the rule's severity (Stripe test-mode keys)."""
    checked: str = ""
    """The provider check the value passed (``CRC32 checksum``), when it has one."""

    @property
    def evidence(self) -> str:
        return mask(self.value)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.value)


def fingerprint(value: str) -> str:
    """A short, stable identifier of a secret (for baselines); not reversible for real keys."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def mask(value: str) -> str:
    """A short prefix and a hash: ``hf_abc…[sha256:1a2b3c4d5e6f]``; never the whole value."""
    keep = min(6, len(value) // 5) if len(value) >= 20 else 0
    return f"{value[:keep]}…[sha256:{fingerprint(value)}]"


# Text without a long word-character run, one of these words or "://…@" cannot hold a secret
# we report: it is skipped cheaply. (Substring tests run in C; a regex alternation of the
# words is several times slower on notebook output.) The prefixes are those of formats whose
# random part may be cut into short runs by "-", "." or "+/".
_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "cred", "bearer", "begin", "q~",
          "sg.", "hrku-", "pscale_", "atlasv1", "whsec_", "glc_", "eyjrijoi", "pypi-")
_LONG_RUN = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z0-9_]{20}")
"""Starts only where a run starts: no rescanning of every shorter run from each position."""


def _may_hold_secret(text: str, lower: str) -> bool:
    return any(w in lower for w in _WORDS) or bool(_LONG_RUN.search(text)) \
        or ("://" in text and "@" in text)


# In long lines (minified JSON, widget state) only windows around these are examined: the
# fixed prefixes of the formats we know, context words, and the keywords (lower case).
_ANCHORS = tuple(sorted({f.needle for f in FORMATS if f.needle} | set(CONTEXT_WORDS)
                        | set(entropy.GATE) | {
    "akia", "asia", "abia", "acca", "a3t", "eyj", "begin", "glpat-", "xox", "sq0csp-", "cred",
}))


def _anchor_positions(line: str) -> list[int]:
    lower = line.lower()
    found: list[int] = []
    for anchor in _ANCHORS:
        at = lower.find(anchor)
        while at >= 0:
            found.append(at)
            at = lower.find(anchor, at + 1)
    return sorted(found)

_PLACEHOLDER = re.compile(
    r"example|x{5,}|\*{3,}|\.{3}|<[^>]*>|\$\{|\{\{|your[_\-]?|changeme|redacted|dummy|"
    r"placeholder|^(?:none|null|true|false|password|secret|token|test|admin)$",
    re.IGNORECASE)
_KEY_MATERIAL = re.compile(r"[A-Za-z0-9+/=]{40,}")
_PASSWORD_HASH = re.compile(r"^(?:argon2:|sha1:|sha256:|\$argon2|\$2[aby]\$|\$[56]\$|pbkdf2)")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?:\(\))?$")

# detect-secrets plugins to run (the high-entropy and IP ones are too noisy on notebook output:
# .entropy judges random strings in context). GitHub, npm, PyPI, SendGrid and Stripe formats
# are ours (with the providers' checksums), so detect-secrets' unchecked ones are not run; so
# are AWS key IDs (detect-secrets' pattern has no boundaries: it finds them inside DNA).
# Each with the lower-case substrings one of its patterns needs (checked first, cheaply);
# an empty tuple: always run.
_DS_PLUGINS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("azure_storage_key", "AzureStorageKeyDetector", ("accountkey",)),
    ("basic_auth", "BasicAuthDetector", ("://",)),
    ("gitlab_token", "GitLabTokenDetector", ("gl", "gr1348941")),
    ("jwt", "JwtTokenDetector", ("eyj",)),
    ("keyword", "KeywordDetector", ("pass", "pwd", "secret", "token", "key", "auth", "cred",
                                    "private")),
    ("mailchimp", "MailchimpDetector", ("-us",)),
    ("openai", "OpenAIDetector", ("t3blbkfj",)),
    ("private_key", "PrivateKeyDetector", ("private", "putty")),
    ("slack", "SlackDetector", ("xox", "hooks.slack.com")),
    ("twilio", "TwilioKeyDetector", ()),
    ("discord", "DiscordBotTokenDetector", ()),
    ("telegram_token", "TelegramBotTokenDetector", ()),
    ("artifactory", "ArtifactoryDetector", ()),
    ("square_oauth", "SquareOAuthDetector", ("sq0csp",)),
)
_DS_KINDS = {"Secret Keyword": "Hard-coded secret", "Basic Auth Credentials": "Password in URI"}
_DS_RULES = {"Secret Keyword": SECRET_KEYWORD, "Basic Auth Credentials": SECRET_URI,
             "Private Key": SECRET_PRIVATE_KEY,
             "Azure Storage Account access key": SECRET_PRIVATE_KEY}


@dataclass(frozen=True)
class _Engine:
    plugins: tuple[tuple[Any, tuple[str, ...]], ...]
    keyword: tuple[tuple[Any, tuple[str, ...]], ...]
    regex_base: Any
    keyword_regexes: dict[str, Any]
    is_indirect_reference: Any
    is_sequential_string: Any
    is_likely_id_string: Any
    is_templated_secret: Any


@lru_cache(maxsize=1)
def _engine() -> _Engine:
    try:
        from detect_secrets.filters import heuristic
        from detect_secrets.plugins import keyword
        from detect_secrets.plugins.base import RegexBasedDetector
    except ImportError:
        raise MissingExtra("detect-secrets", None) from None  # a core dependency
    plugins = [(getattr(importlib.import_module(f"detect_secrets.plugins.{mod}"), cls)(),
                needles) for mod, cls, needles in _DS_PLUGINS]
    keyword_plugin = tuple(p for p in plugins if isinstance(p[0], keyword.KeywordDetector))
    regexes = {
        "code": keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
        "text": keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
        "config": keyword.CONFIG_DENYLIST_REGEX_TO_GROUP,
    }
    return _Engine(tuple(p for p in plugins if p not in keyword_plugin), keyword_plugin,
                   RegexBasedDetector, regexes, heuristic.is_indirect_reference,
                   heuristic.is_sequential_string, heuristic.is_likely_id_string,
                   heuristic.is_templated_secret)


def require_engine() -> None:
    """Raise :class:`MissingExtra` when detect-secrets is not installed."""
    _engine()


_CONFIG_SUFFIXES = (".yaml", ".yml", ".ini", ".cfg", ".conf", ".toml", ".properties", ".env",
                    ".netrc", ".npmrc", ".pypirc", "credentials")


_CODE_SUFFIXES = (".py", ".pyi", ".pyw", ".ipy", ".js", ".mjs", ".ts", ".tsx", ".jsx", ".go",
                  ".java", ".kt", ".scala", ".rb", ".rs", ".c", ".h", ".cc", ".cpp", ".hpp",
                  ".cs", ".php", ".swift", ".r", ".jl", ".lua", ".dart")


def syntax_for(name: str) -> str:
    """How a file's text is read: ``config`` for key: value files (unquoted values are
    secrets to every detector), ``code`` for source code (literals are quoted: an unquoted
    value is a name or a type), ``text`` for the rest (shell, JSON, Markdown: unquoted
    ``NAME=value`` counts for the entropy detector, the keyword one wants quotes)."""
    lower = name.lower()
    if lower.endswith(_CONFIG_SUFFIXES) or "/.env" in lower or lower == ".env":
        return "config"
    return "code" if lower.endswith(_CODE_SUFFIXES) else "text"


_ALLOW = re.compile(r"mlward:\s*allow|pragma:\s*allowlist secret", re.IGNORECASE)
_ALLOW_NEXT = re.compile(r"pragma:\s*allowlist nextline secret|mlward:\s*allow-next-line",
                         re.IGNORECASE)


def find_secrets(text: str, *, syntax: str = "code") -> list[SecretHit]:
    """Every secret in ``text``, one hit per distinct value and line. ``syntax``: ``code``
    (source code: literals are quoted), ``text`` (outputs, prose, other text files) or
    ``config`` (key: value files), as :func:`syntax_for` tells.

    Lines carrying ``mlward: allow`` (or detect-secrets' ``pragma: allowlist secret``) are
    skipped, as is the line after ``pragma: allowlist nextline secret``.
    """
    engine = _engine()
    if not _may_hold_secret(text, text.lower()):
        return []
    lines = text.splitlines()
    hits: list[SecretHit] = []
    seen: set[str] = set()
    allow_next = False
    for number, line in enumerate(lines, 1):
        commented = "allow" in line  # cheap test before the regexes
        if allow_next or (commented and _ALLOW.search(line)):
            allow_next = False
            continue
        allow_next = commented and bool(_ALLOW_NEXT.search(line))
        for start, chunk in _windows(line):
            lower = chunk.lower()
            if not _may_hold_secret(chunk, lower):
                continue
            context = "\n".join([*lines[max(0, number - 3):number - 1], chunk])
            for m in _scan_chunk(engine, chunk, lower, context, syntax):
                if m.value in seen:
                    continue
                if m.kind == "Private Key" and not _KEY_MATERIAL.search(
                        "\n".join([chunk[m.column:], *lines[number:number + 3]])):
                    continue  # a PEM header alone (code that handles keys), not a key
                seen.add(m.value)
                hits.append(replace(m, line=number, column=start + m.column + 1))
    _service_account(text, hits, seen)
    return hits


def _windows(line: str) -> Iterator[tuple[int, str]]:
    """The line itself, or for a long line the windows around anchors a secret needs."""
    if len(line) <= MAX_LINE:
        yield 0, line
        return
    spans: list[list[int]] = []
    for at in _anchor_positions(line):
        a, b = max(0, at - _OVERLAP), at + 3 * _OVERLAP
        if spans and a <= spans[-1][1]:
            spans[-1][1] = b
        else:
            spans.append([a, b])
    step = MAX_LINE - _OVERLAP
    for a, b in spans:
        for start in range(a, b, step):
            yield start, line[start:min(b, start + MAX_LINE)]


def _scan_chunk(engine: _Engine, chunk: str, lower: str, context: str,
                syntax: str) -> Iterator[SecretHit]:
    """Provider formats, detect-secrets' provider plugins, random values in a secret context,
    then detect-secrets' keyword plugin; each span is reported by the first stage claiming it."""
    taken: list[tuple[int, int]] = []

    def claim(at: int, value: str) -> bool:
        span = (at, at + len(value))
        if any(a < span[1] and span[0] < b for a, b in taken):
            return False
        taken.append(span)
        return True

    for f in FORMATS:
        if (f.needle and f.needle not in lower) \
                or (f.context is not None and not f.context.search(context)):
            continue
        for m in f.regex.finditer(chunk):
            value = m.group(1)
            if f.public or (f.check is not None and not f.check(value)):
                if f.public or f.checked:  # public, or the provider's own check says no
                    claim(m.start(1), value)  # token: no later stage may call it a secret
                continue
            if _placeholder(value) or (f.rule is SECRET_URI and _placeholder_password(value)) \
                    or engine.is_sequential_string(value) or entropy.sequence(value) \
                    or not claim(m.start(1), value):
                continue
            yield SecretHit(f.kind, f.rule, value, 0, m.start(1), f.severity, f.checked)
    yield from _plugin_matches(engine, engine.plugins, chunk, lower, syntax, claim)
    if any(word in lower for word in entropy.GATE):
        for value, at in entropy.assigned_secrets(chunk, code=syntax == "code"):
            if not _placeholder(value) and not engine.is_sequential_string(value) \
                    and claim(at, value):
                yield SecretHit("High-entropy secret", SECRET_ENTROPY, value, 0, at)
    yield from _plugin_matches(engine, engine.keyword, chunk, lower, syntax, claim)


def _plugin_matches(engine: _Engine, plugins: tuple[tuple[Any, tuple[str, ...]], ...],
                    chunk: str, lower: str, syntax: str,
                    claim: Callable[[int, str], bool]) -> Iterator[SecretHit]:
    for plugin, needles in plugins:
        if needles and not any(n in lower for n in needles):
            continue
        kind = str(plugin.secret_type)
        if kind == "Secret Keyword":
            found = plugin.analyze_string(
                chunk, denylist_regex_to_group=engine.keyword_regexes[syntax])
        else:
            found = _regex_values(engine, plugin, chunk)
        for value in found:
            if not isinstance(value, str) or not value or entropy.sequence(value):
                continue
            at = max(chunk.find(value), 0)
            if _keep(engine, kind, value, chunk) and claim(at, value):
                yield SecretHit(_DS_KINDS.get(kind, kind), _DS_RULES.get(kind, SECRET_TOKEN),
                                value, 0, at)


def _regex_values(engine: _Engine, plugin: Any, chunk: str) -> Iterator[str]:
    """A regex plugin's matches. Some patterns capture only a prefix (GitHub's ``(ghp|...)_``):
    then the whole match is the secret, not the group."""
    if type(plugin).analyze_string is not engine.regex_base.analyze_string:
        yield from plugin.analyze_string(chunk)  # the plugin validates its matches (JWT)
        return
    for regex in plugin.denylist:
        for m in regex.finditer(chunk):
            group = m.group(m.lastindex or 0)
            yield m.group(0) if len(group) < 8 and len(m.group(0)) >= 16 else group


def _keep(engine: _Engine, kind: str, value: str, line: str) -> bool:
    if _placeholder(value) or engine.is_templated_secret(value) \
            or engine.is_sequential_string(value):
        return False
    if kind == "Basic Auth Credentials" and _placeholder_password(value):
        return False
    if kind != "Secret Keyword":
        return True
    if len(value) < 6 or (_IDENTIFIER.fullmatch(value) and ("." in value or "(" in value)) \
            or _PASSWORD_HASH.match(value) or _prose(value) \
            or entropy.reference_name(entropy.assigned_name(line, value)):
        return False
    if engine.is_likely_id_string(value, line):
        return False
    quoted = f'"{value}"' in line or f"'{value}'" in line
    # detect-secrets drops ``x = f(...)`` lines; a quoted literal passed as an argument is
    # still a literal secret, so the filter applies only to unquoted values.
    return quoted or not engine.is_indirect_reference(line)


_PROSE_WORD = re.compile(r"[A-Za-z]{2,}")


def _prose(value: str) -> bool:
    """A sentence, not a secret: three or more words with spaces between them."""
    return " " in value.strip() and len(_PROSE_WORD.findall(value)) >= 3


_RUN = re.compile(r"[A-Za-z0-9]{16,}")


def _placeholder(value: str) -> bool:
    """Fill-ins: example words, masks, templates, and long runs of one to three characters
    (``dop_v1_0000…``: a real token's random part never repeats so)."""
    return bool(_PLACEHOLDER.search(value)) or len(set(value)) <= 2 \
        or any(len(set(run)) <= 3 for run in _RUN.findall(value))


def _placeholder_password(value: str) -> bool:
    return value.lower() in {"password", "pass", "pwd", "secret", "user"} \
        or value.startswith(("$", "%", "{")) or bool(_PLACEHOLDER.search(value))


_SA_TYPE = re.compile(r"\"type\"\s*:\s*\"service_account\"")
_SA_KEY = re.compile(r"\"private_key\"\s*:\s*\"([^\"]*PRIVATE KEY[^\"]{200,})\"")


def _service_account(text: str, hits: list[SecretHit], seen: set[str]) -> None:
    """A GCP service-account JSON key whose private key was not already reported."""
    if "service_account" not in text or not _SA_TYPE.search(text):
        return
    m = _SA_KEY.search(text)
    if m is None or _placeholder(m.group(1)):
        return
    value = m.group(1)
    if any(value.startswith(s) or s.startswith(value[:40]) for s in seen):
        return
    seen.add(value)
    line = text.count("\n", 0, m.start(1)) + 1
    column = m.start(1) - (text.rfind("\n", 0, m.start(1)) + 1) + 1
    hits.append(SecretHit("GCP service-account private key", SECRET_PRIVATE_KEY, value,
                          line, column))


def redact_secrets(text: str, *, label: bool = False, syntax: str = "text") -> tuple[str, int]:
    """``text`` with every secret replaced by its mask (or ``[REDACTED:kind]``), and the count."""
    hits = find_secrets(text, syntax=syntax)
    for hit in hits:
        text = replace_whole(text, hit.value,
                             f"[REDACTED:{hit.kind}]" if label else hit.evidence)[0]
    return text, len(hits)


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def replace_whole(text: str, value: str, replacement: str) -> tuple[str, int]:
    """``text`` with every occurrence of ``value`` replaced, each widened to the whole token
    it is part of, and the number replaced. A detector may match only part of a token (a
    fixed-length pattern, a longer token of a newer format): the rest must not stay in clear.
    A value that ends (or starts) with punctuation is not widened on that side (a password
    inside ``user:pw@host`` stops at its delimiters)."""
    if not value:
        return text, 0
    out: list[str] = []
    done = count = 0
    at = text.find(value)
    while at >= 0:
        start, end = at, at + len(value)
        if value[0] in _TOKEN_CHARS:
            while start > done and text[start - 1] in _TOKEN_CHARS:
                start -= 1
        if value[-1] in _TOKEN_CHARS:
            while end < len(text) and text[end] in _TOKEN_CHARS:
                end += 1
        out += [text[done:start], replacement]
        done, count = end, count + 1
        at = text.find(value, end)
    return "".join(out) + text[done:], count
