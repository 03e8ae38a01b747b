"""Secret detection: detect-secrets' detectors as the engine plus ML-provider detectors.

Text is examined line by line. A cheap pre-filter drops lines that cannot hold a secret, so
large outputs cost little; the remaining lines go through our provider patterns and a
selection of detect-secrets plugins (called directly, without its global settings, so no
verification request is ever sent). detect-secrets' indirect-reference filter is applied
only when the value is not a quoted literal: ``OpenAI(api_key="sk-...")`` is reported.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mlward.errors import MissingExtra
from mlward.rules import SECRET_KEYWORD, SECRET_PRIVATE_KEY, SECRET_TOKEN, SECRET_URI, Rule

MAX_LINE = 4096
"""Longer lines are examined in overlapping windows of this size (bounded regex work)."""
_OVERLAP = 256


@dataclass(frozen=True)
class SecretHit:
    """One secret found in a text: what it is, which rule, and where (1-based line/column)."""

    kind: str
    rule: Rule
    value: str
    line: int
    column: int

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


# --- our provider patterns -----------------------------------------------------------------

@dataclass(frozen=True)
class _Pattern:
    kind: str
    rule: Rule
    regex: re.Pattern[str]
    context: re.Pattern[str] | None = None
    """When set, the line (or the two before it) must match, for formats too generic alone."""
    needle: str = ""
    """A lower-case substring every match contains: the regex runs only when it is there."""


def _p(kind: str, pattern: str, context: str | None = None, rule: Rule = SECRET_TOKEN,
       needle: str = "") -> _Pattern:
    return _Pattern(kind, rule, re.compile(pattern),
                    re.compile(context, re.IGNORECASE) if context else None, needle)


_B = r"(?<![A-Za-z0-9_\-])"   # start boundary for token-like values
_E = r"(?![A-Za-z0-9_\-])"    # end boundary

PATTERNS: tuple[_Pattern, ...] = (
    _p("Hugging Face token", _B + r"(hf_[A-Za-z]{34})" + _E, needle="hf_"),
    _p("Hugging Face organisation token", _B + r"(api_org_[A-Za-z]{34})" + _E,
       needle="api_org_"),
    _p("OpenAI API key", _B + r"(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,})", needle="sk-"),
    _p("OpenAI API key", _B + r"(sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})" + _E,
       needle="t3blbkfj"),
    _p("OpenAI API key", _B + r"(sk-[A-Za-z0-9]{48})" + _E, needle="sk-"),
    _p("Anthropic API key", _B + r"(sk-ant-[a-z]+\d*-[A-Za-z0-9_\-]{32,})", needle="sk-ant-"),
    _p("Weights & Biases API key", r"(?<![0-9a-fA-F])([0-9a-f]{40})(?![0-9a-fA-F])",
       r"wandb|weights.?(?:and|&).?biases"),
    _p("Weights & Biases API key", _B + r"((?:local|v1)-[0-9a-f]{40,})" + _E, r"wandb"),
    _p("Comet API key", _B + r"([A-Za-z0-9]{25})" + _E, r"comet"),
    _p("Neptune API token", _B + r"(eyJhcGlfYWRkcmVzcyI6[A-Za-z0-9+/=_\-]{20,})",
       needle="eyjhcglfywrkcmvzcyi6"),
    _p("Kaggle API key", r"\"key\"\s*:\s*\"([0-9a-f]{32})\"", r"username|kaggle"),
    _p("Kaggle API key", r"KAGGLE_KEY\W{1,4}([0-9a-f]{32})(?![0-9a-f])", needle="kaggle_key"),
    _p("Databricks token", _B + r"(dapi[0-9a-f]{32}(?:-\d)?)" + _E, needle="dapi"),
    _p("Replicate API token", _B + r"(r8_[A-Za-z0-9]{37})" + _E, needle="r8_"),
    _p("Cohere API key", _B + r"([A-Za-z0-9]{40})" + _E, r"cohere|CO_API_KEY"),
    _p("LangSmith API key", _B + r"(lsv2_(?:pt|sk)_[0-9a-f]{32}_[0-9a-f]{10})" + _E,
       needle="lsv2_"),
    _p("Pinecone API key", _B + r"(pcsk_[A-Za-z0-9_]{40,})" + _E, needle="pcsk_"),
    _p("Pinecone API key",
       r"(?<![0-9a-f-])([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![0-9a-f-])",
       r"pinecone"),
    _p("Google API key", _B + r"(AIza[0-9A-Za-z_\-]{35})" + _E, needle="aiza"),
    _p("AWS access key ID", r"(?<![A-Z0-9])((?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})(?![A-Z0-9])"),
    _p("AWS secret access key", r"(?<![A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
       r"aws_?secret|secret_?access_?key|SecretAccessKey"),
    _p("Azure storage account key", r"AccountKey=([A-Za-z0-9+/]{40,}={0,2})",
       rule=SECRET_PRIVATE_KEY, needle="accountkey="),
    _p("GCP service-account private key", r"\"private_key\"\s*:\s*\"(-----BEGIN[^\"]{200,})",
       rule=SECRET_PRIVATE_KEY, needle="private_key"),
    _p("Password in URI",
       r"\b[a-zA-Z][a-zA-Z0-9+.\-]{1,30}://[^\s:/@'\"<>]{1,128}:([^\s@/'\"<>]{1,256})@"
       r"[A-Za-z0-9.\-\[\]]", rule=SECRET_URI, needle="://"),
)

# Lines without any of these cannot hold a secret we report: skip them cheaply.
_PREFILTER = re.compile(
    r"[A-Za-z0-9_]{20,}|://[^\s]*@|BEGIN|pass|pwd|secret|token|key|auth|cred",
    re.IGNORECASE)

# In long lines (minified JSON, widget state) only windows around these are examined: the
# fixed prefixes of the formats we know, context words, and the keywords (lower case).
_ANCHORS = (
    "hf_", "api_org_", "sk-", "sk_live", "rk_live", "akia", "asia", "abia", "acca", "dapi",
    "r8_", "lsv2_", "pcsk_", "eyj", "aiza", "://", "begin", "accountkey", "ghp_", "gho_",
    "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox", "npm_", "pypi-", "sg.", "sq0csp-",
    "wandb", "comet", "cohere", "pinecone", "kaggle", "aws", "pass", "pwd", "secret", "token",
    "key", "auth", "cred",
)


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

# detect-secrets plugins to run (the high-entropy and IP ones are too noisy on notebook output;
# provider formats and keyword assignments cover what matters).
# Each with the lower-case substrings one of its patterns needs (checked first, cheaply);
# an empty tuple: always run.
_DS_PLUGINS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("aws", "AWSKeyDetector", ("akia", "asia", "abia", "acca", "a3t", "aws")),
    ("azure_storage_key", "AzureStorageKeyDetector", ("accountkey",)),
    ("basic_auth", "BasicAuthDetector", ("://",)),
    ("github_token", "GitHubTokenDetector", ("gh",)),
    ("gitlab_token", "GitLabTokenDetector", ("gl", "gr1348941")),
    ("jwt", "JwtTokenDetector", ("eyj",)),
    ("keyword", "KeywordDetector", ("pass", "pwd", "secret", "token", "key", "auth", "cred",
                                    "private")),
    ("mailchimp", "MailchimpDetector", ("-us",)),
    ("npm", "NpmDetector", ("_authtoken",)),
    ("openai", "OpenAIDetector", ("t3blbkfj",)),
    ("private_key", "PrivateKeyDetector", ("private", "putty")),
    ("pypi_token", "PypiTokenDetector", ("pypi-",)),
    ("sendgrid", "SendGridDetector", ("sg.",)),
    ("slack", "SlackDetector", ("xox", "hooks.slack.com")),
    ("stripe", "StripeDetector", ("_live_",)),
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
    plugins = tuple((getattr(importlib.import_module(f"detect_secrets.plugins.{mod}"), cls)(),
                     needles) for mod, cls, needles in _DS_PLUGINS)
    regexes = {
        "code": keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
        "config": keyword.CONFIG_DENYLIST_REGEX_TO_GROUP,
    }
    return _Engine(plugins, RegexBasedDetector, regexes, heuristic.is_indirect_reference,
                   heuristic.is_sequential_string, heuristic.is_likely_id_string,
                   heuristic.is_templated_secret)


def require_engine() -> None:
    """Raise :class:`MissingExtra` when detect-secrets is not installed."""
    _engine()


_CONFIG_SUFFIXES = (".yaml", ".yml", ".ini", ".cfg", ".conf", ".toml", ".properties", ".env",
                    ".netrc", "credentials")


def syntax_for(name: str) -> str:
    """``config`` for key: value files (unquoted values count), else ``code``."""
    lower = name.lower()
    return "config" if lower.endswith(_CONFIG_SUFFIXES) or "/.env" in lower or lower == ".env" \
        else "code"


_ALLOW = re.compile(r"mlward:\s*allow|pragma:\s*allowlist secret", re.IGNORECASE)
_ALLOW_NEXT = re.compile(r"pragma:\s*allowlist nextline secret|mlward:\s*allow-next-line",
                         re.IGNORECASE)


def find_secrets(text: str, *, syntax: str = "code") -> list[SecretHit]:
    """Every secret in ``text``, one hit per distinct value and line.

    Lines carrying ``mlward: allow`` (or detect-secrets' ``pragma: allowlist secret``) are
    skipped, as is the line after ``pragma: allowlist nextline secret``.
    """
    engine = _engine()
    if not _PREFILTER.search(text):
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
            if not _PREFILTER.search(chunk):
                continue
            context = "\n".join([*lines[max(0, number - 3):number - 1], chunk])
            for hit in _scan_chunk(engine, chunk, context, syntax):
                kind, rule, value, col = hit
                if value in seen:
                    continue
                if kind == "Private Key" and not _KEY_MATERIAL.search(
                        "\n".join([chunk[col:], *lines[number:number + 3]])):
                    continue  # a PEM header alone (code that handles keys), not a key
                seen.add(value)
                hits.append(SecretHit(kind, rule, value, number, start + col + 1))
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


def _scan_chunk(engine: _Engine, chunk: str, context: str,
                syntax: str) -> Iterator[tuple[str, Rule, str, int]]:
    taken: list[tuple[int, int]] = []
    lower = chunk.lower()
    for p in PATTERNS:
        if p.needle and p.needle not in lower:
            continue
        if p.context is not None and not p.context.search(context):
            continue
        for m in p.regex.finditer(chunk):
            value = m.group(1)
            if _placeholder(value) or (p.rule is SECRET_URI and _placeholder_password(value)):
                continue
            span = m.span(1)
            if any(a < span[1] and span[0] < b for a, b in taken):
                continue
            taken.append(span)
            yield p.kind, p.rule, value, span[0]
    for plugin, needles in engine.plugins:
        if needles and not any(n in lower for n in needles):
            continue
        kind = str(plugin.secret_type)
        if kind == "Secret Keyword":
            found = plugin.analyze_string(
                chunk, denylist_regex_to_group=engine.keyword_regexes[syntax])
        else:
            found = _regex_values(engine, plugin, chunk)
        for value in found:
            if not isinstance(value, str) or not value:
                continue
            at = chunk.find(value)
            span = (at, at + len(value)) if at >= 0 else (0, 0)
            if any(a < span[1] and span[0] < b for a, b in taken):
                continue
            if not _keep(engine, kind, value, chunk):
                continue
            taken.append(span)
            yield _DS_KINDS.get(kind, kind), _DS_RULES.get(kind, SECRET_TOKEN), value, max(at, 0)


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
            or _PASSWORD_HASH.match(value):
        return False
    if engine.is_likely_id_string(value, line):
        return False
    quoted = f'"{value}"' in line or f"'{value}'" in line
    # detect-secrets drops ``x = f(...)`` lines; a quoted literal passed as an argument is
    # still a literal secret, so the filter applies only to unquoted values.
    return quoted or not engine.is_indirect_reference(line)


def _placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.search(value)) or len(set(value)) <= 2


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


def redact_secrets(text: str, *, label: bool = False) -> tuple[str, int]:
    """``text`` with every secret replaced by its mask (or ``[REDACTED:kind]``), and the count."""
    hits = find_secrets(text)
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
