"""Provider token formats: one row per format, with the checks each provider publishes.

Each row is a pattern written from the provider's published format, the lower-case needle
every match contains (the regex runs only when the needle is in the line, which keeps
thousands of rows of notebook output cheap), and where the provider defines one, a
validator that proves the match is a token of that provider and not a look-alike:

* GitHub (``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``) and npm (``npm_``): 30 random base62
  characters and their CRC32 as 6 base62 digits ("Behind GitHub's new authentication token
  formats", GitHub blog, 2021-04-05; npm adopted the format on 2021-09-23).
* Grafana service-account tokens (``glsa_``): CRC32 of ``glsa_<secret>`` as 8 hex digits of
  its little-endian bytes (grafana ``pkg/components/satokengen``).
* Cloudflare scannable tokens (``cfk_``/``cfut_``/``cfat_``, 2026): 40 characters and a
  checksum, the CRC32 of those 40 as 8 hex digits (developers.cloudflare.com, "Token formats").
* PyPI (``pypi-``): a base64url macaroon in libmacaroons' v2 binary layout whose location is
  a PyPI host, ending in a 32-byte signature.
* Grafana Cloud (``glc_``) and legacy Grafana API keys (``eyJrIjoi``): base64 JSON objects
  with the keys Grafana writes.
* Stripe: the prefix says what the key is: ``sk_``/``rk_`` secret and restricted keys,
  ``_live_`` or ``_test_`` mode (test-mode keys are reported at low severity), ``whsec_``
  webhook signing secrets; ``pk_`` publishable keys are public.

A value failing its provider's check, or a public value (Stripe ``pk_``, Mailgun ``pubkey-``),
is claimed by its row and never reported by a later stage either.

Formats without a published check (DigitalOcean, Doppler, fine-grained GitHub PATs,
Terraform Cloud, Notion, Azure AD client secrets, Heroku, Linear, Mailgun, Perplexity,
PlanetScale, Postman, SendGrid, ...) are matched by exact length and alphabet; the
placeholder and sequence filters in :mod:`.detect` drop ``xxxx`` and ``abcd`` fill-ins.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import string
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from mlward._internal.scanners.secrets.entropy import looks_random
from mlward.findings import Severity
from mlward.rules import SECRET_PRIVATE_KEY, SECRET_TOKEN, SECRET_URI, Rule


@dataclass(frozen=True)
class TokenFormat:
    kind: str
    rule: Rule
    regex: re.Pattern[str]
    context: re.Pattern[str] | None = None
    """When set, the line (or the two before it) must match, for formats too generic alone."""
    needle: str = ""
    """A lower-case substring every match contains: the regex runs only when it is there."""
    check: Callable[[str], bool] | None = None
    """A validity check: a match failing it is not reported."""
    checked: str = ""
    """Set when ``check`` is the provider's own (checksum, structure): what it proves, shown
    in the finding's details (``CRC32 checksum``). A value failing such a check is no token
    at all, and no later stage (entropy, keywords) reports it either."""
    severity: Severity | None = None
    """Overrides the rule's severity (Stripe test-mode keys)."""
    public: bool = False
    """A public value of this format (a publishable key): never a secret, at no stage."""


# --- provider checks ------------------------------------------------------------------

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def _base62(number: int, width: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    return digits.rjust(width, "0")


def base62_crc32(text: str) -> str:
    """GitHub's and npm's checksum: CRC32 in 6 base62 digits (``0-9A-Za-z``)."""
    return _base62(zlib.crc32(text.encode()), 6)


def github_checksum_ok(token: str) -> bool:
    """GitHub and npm tokens: the last 6 characters are the base62 CRC32 of the 30 before."""
    body = token.split("_", 1)[1]
    return base62_crc32(body[:-6]) == body[-6:]


def crc32_le_hex(text: str) -> str:
    """Grafana's checksum: CRC32, its little-endian bytes in hex."""
    return zlib.crc32(text.encode()).to_bytes(4, "little").hex()


def grafana_checksum_ok(token: str) -> bool:
    """``glsa_<32>_<crc32>``: the checksum covers ``glsa_<32>``."""
    key, _, checksum = token.rpartition("_")
    return crc32_le_hex(key) == checksum


def crc32_hex(text: str) -> str:
    """Cloudflare's checksum: CRC32 in 8 hex digits."""
    return f"{zlib.crc32(text.encode()):08x}"


def cloudflare_checksum_ok(token: str) -> bool:
    """``cfut_<40><crc32>``: the checksum covers the 40 random characters."""
    body = token.split("_", 1)[1]
    return crc32_hex(body[:40]) == body[40:]


def _b64decode(text: str, *, urlsafe: bool) -> bytes | None:
    padded = text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4)
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """A protobuf-style varint at ``at``: (value, next position); (-1, at) when cut short."""
    value = shift = 0
    while at < len(data) and shift < 35:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
    return -1, at


def _macaroon_fields(data: bytes, at: int) -> tuple[dict[int, bytes], int] | None:
    """One v2 section: fields (type, length, bytes) up to the end-of-section byte 0."""
    fields: dict[int, bytes] = {}
    while at < len(data):
        kind, at = _varint(data, at)
        if kind == 0:
            return fields, at
        length, at = _varint(data, at)
        if kind < 0 or length < 0 or at + length > len(data) or kind in fields:
            return None
        fields[kind] = data[at:at + length]
        at += length
    return None


_LOCATION, _IDENTIFIER, _SIGNATURE = 1, 2, 6


def pypi_macaroon_ok(token: str) -> bool:
    """``pypi-`` + a base64url libmacaroons v2 macaroon: version byte 2, a header whose
    location is a PyPI host and which has an identifier, caveat sections, an empty section,
    then the 32-byte signature and nothing after it."""
    data = _b64decode(token[len("pypi-"):], urlsafe=True)
    if not data or data[0] != 2:
        return False
    header = _macaroon_fields(data, 1)
    if header is None or _IDENTIFIER not in header[0] \
            or not header[0].get(_LOCATION, b"").endswith(b"pypi.org"):
        return False
    at = header[1]
    while at < len(data) and data[at] != 0:
        caveat = _macaroon_fields(data, at)
        if caveat is None or _IDENTIFIER not in caveat[0]:
            return False
        at = caveat[1]
    kind, at = _varint(data, at + 1)
    length, at = _varint(data, at)
    return kind == _SIGNATURE and length == 32 and at + 32 == len(data)


def _json_object(token: str, prefix: str, keys: set[str]) -> bool:
    data = _b64decode(token[len(prefix):], urlsafe=False)
    try:
        obj = json.loads(data) if data else None
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(obj, dict) and keys <= obj.keys()


def grafana_cloud_ok(token: str) -> bool:
    """``glc_`` + base64 of ``{"o": org, "n": name, "k": key, "m": {...}}``."""
    return _json_object(token, "glc_", {"o", "n", "k"})


def grafana_api_key_ok(token: str) -> bool:
    """Legacy Grafana API keys: base64 of ``{"k": key, "n": name, "id": org}``."""
    return _json_object(token, "", {"k", "n", "id"})


def azure_sas_signature_ok(signature: str) -> bool:
    """An Azure SAS ``sig``: the base64 (URL-encoded or not) of an HMAC-SHA256, 32 bytes."""
    data = _b64decode(unquote(signature), urlsafe=False)
    return data is not None and len(data) == 32


# --- the table ------------------------------------------------------------------------

def _t(kind: str, pattern: str, *, needle: str = "", context: str | None = None,
       rule: Rule = SECRET_TOKEN, check: Callable[[str], bool] | None = None,
       checked: str = "", severity: Severity | None = None,
       public: bool = False) -> TokenFormat:
    return TokenFormat(kind, rule, re.compile(pattern),
                       re.compile(context, re.IGNORECASE) if context else None, needle,
                       check, checked, severity, public)


B = r"(?<![A-Za-z0-9_\-])"   # start boundary for token-like values
E = r"(?![A-Za-z0-9_\-])"    # end boundary
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_CRC32 = "CRC32 checksum"

FORMATS: tuple[TokenFormat, ...] = (
    # ML and AI providers
    _t("Hugging Face token", B + r"(hf_[A-Za-z]{34})" + E, needle="hf_"),
    _t("Hugging Face organisation token", B + r"(api_org_[A-Za-z]{34})" + E, needle="api_org_"),
    _t("OpenAI API key", B + r"(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,})", needle="sk-"),
    _t("OpenAI API key", B + r"(sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})" + E,
       needle="t3blbkfj"),
    _t("OpenAI API key", B + r"(sk-[A-Za-z0-9]{48})" + E, needle="sk-"),
    _t("Anthropic API key", B + r"(sk-ant-[a-z]+\d*-[A-Za-z0-9_\-]{32,})", needle="sk-ant-"),
    _t("Perplexity API key", B + r"(pplx-[A-Za-z0-9]{48})" + E, needle="pplx-"),
    _t("Weights & Biases API key", r"(?<![0-9a-fA-F])([0-9a-f]{40})(?![0-9a-fA-F])",
       context=r"wandb|weights.?(?:and|&).?biases"),
    _t("Weights & Biases API key", B + r"((?:local|v1)-[0-9a-f]{40,})" + E, context=r"wandb"),
    _t("Comet API key", B + r"([A-Za-z0-9]{25})" + E, context=r"comet"),
    _t("Neptune API token", B + r"(eyJhcGlfYWRkcmVzcyI6[A-Za-z0-9+/=_\-]{20,})",
       needle="eyjhcglfywrkcmvzcyi6"),
    _t("Kaggle API key", r"\"key\"\s*:\s*\"([0-9a-f]{32})\"", context=r"username|kaggle"),
    _t("Kaggle API key", r"KAGGLE_KEY\W{1,4}([0-9a-f]{32})(?![0-9a-f])", needle="kaggle_key"),
    _t("Databricks token", B + r"(dapi[0-9a-f]{32}(?:-\d)?)" + E, needle="dapi"),
    _t("Replicate API token", B + r"(r8_[A-Za-z0-9]{37})" + E, needle="r8_"),
    _t("Cohere API key", B + r"([A-Za-z0-9]{40})" + E, context=r"cohere|CO_API_KEY"),
    _t("LangSmith API key", B + r"(lsv2_(?:pt|sk)_[0-9a-f]{32}_[0-9a-f]{10})" + E,
       needle="lsv2_"),
    _t("Pinecone API key", B + r"(pcsk_[A-Za-z0-9_]{40,})" + E, needle="pcsk_"),
    _t("Pinecone API key", r"(?<![0-9a-f-])(" + _UUID + r")(?![0-9a-f-])", context=r"pinecone"),
    # code hosting and package registries
    _t("GitHub token", B + r"(gh[pousr]_[A-Za-z0-9]{36})" + E, needle="gh",
       check=github_checksum_ok, checked=_CRC32),
    _t("GitHub fine-grained token", B + r"(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})" + E,
       needle="github_pat_"),
    _t("npm access token", B + r"(npm_[A-Za-z0-9]{36})" + E, needle="npm_",
       check=github_checksum_ok, checked=_CRC32),
    _t("npm access token", r"_authToken\s*=\s*[\"']?(" + _UUID + r")(?![0-9a-f-])",
       needle="_authtoken"),
    _t("PyPI API token", B + r"(pypi-AgE[A-Za-z0-9_\-]{60,})" + E, needle="pypi-",
       check=pypi_macaroon_ok, checked="macaroon structure"),
    _t("Terraform Cloud token", B + r"([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,70})" + E,
       needle="atlasv1"),
    _t("Postman API key", B + r"(PMAK-[0-9a-f]{24}-[0-9a-f]{34})" + E, needle="pmak-"),
    _t("Linear API key", B + r"(lin_api_[A-Za-z0-9]{40})" + E, needle="lin_api_"),
    _t("Linear OAuth token", B + r"(lin_oauth_[0-9a-f]{64})" + E, needle="lin_oauth_"),
    _t("Notion integration token", B + r"(ntn_\d{11}[A-Za-z0-9]{35})" + E, needle="ntn_"),
    _t("Notion integration token", B + r"(secret_[A-Za-z0-9]{43})" + E, needle="secret_"),
    # cloud and infrastructure
    _t("Google API key", B + r"(AIza[0-9A-Za-z_\-]{35})" + E, needle="aiza"),
    _t("AWS access key ID",
       r"(?<![A-Za-z0-9])((?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16})(?![A-Za-z0-9])"),
    _t("AWS secret access key", r"(?<![A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
       context=r"aws_?secret|secret_?access_?key|SecretAccessKey"),
    _t("Azure AD client secret",
       r"(?<![A-Za-z0-9_~.\-])([A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34})(?![A-Za-z0-9_~.\-])",
       needle="q~"),
    _t("DigitalOcean token", B + r"(do[opr]_v1_[0-9a-f]{64})" + E, needle="_v1_"),
    _t("Doppler token", B + r"(dp\.(?:pt|ct|sa|scim|audit)\.[A-Za-z0-9]{40,44})" + E,
       needle="dp."),
    _t("Doppler service token", B + r"(dp\.st\.(?:[a-z0-9_\-]{1,40}\.)?[A-Za-z0-9]{40,44})" + E,
       needle="dp.st."),
    _t("Cloudflare API token", B + r"(cf(?:k|ut|at)_[A-Za-z0-9]{40}[0-9a-f]{8})" + E,
       needle="cf", check=cloudflare_checksum_ok, checked=_CRC32),
    _t("Cloudflare API token", B + r"([A-Za-z0-9_\-]{40})" + E, context=r"cloudflare|\bCF_API",
       check=looks_random),
    _t("Cloudflare global API key", r"(?<![0-9a-f])([0-9a-f]{37,45})(?![0-9a-f])",
       context=r"cloudflare|\bCF_API", check=looks_random),
    _t("Heroku API key", B + r"(HRKU-AA[A-Za-z0-9_\-]{58})" + E, needle="hrku-"),
    _t("Heroku API key", r"(?<![0-9a-f-])(" + _UUID + r")(?![0-9a-f-])", context=r"heroku"),
    _t("PlanetScale credential", B + r"(pscale_(?:pw|tkn|oauth)_[A-Za-z0-9_\-.=]{32,64})" + E,
       needle="pscale_"),
    _t("Grafana service account token", B + r"(glsa_[A-Za-z0-9]{32}_[0-9a-f]{8})" + E,
       needle="glsa_", check=grafana_checksum_ok, checked=_CRC32),
    _t("Grafana Cloud token", B + r"(glc_[A-Za-z0-9+/]{32,400}={0,2})", needle="glc_",
       check=grafana_cloud_ok, checked="token structure"),
    _t("Grafana API key", r"(?<![A-Za-z0-9+/])(eyJrIjoi[A-Za-z0-9+/]{40,400}={0,2})",
       needle="eyjrijoi", check=grafana_api_key_ok, checked="token structure"),
    # messaging and payments
    _t("SendGrid API key", B + r"(SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43})" + E, needle="sg."),
    _t("Mailgun API key", B + r"(key-[0-9a-f]{32})" + E, needle="key-"),
    _t("Mailgun API key", r"(?<![0-9a-f-])([0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8})(?![0-9a-f-])",
       context=r"mailgun"),
    _t("Stripe secret key", B + r"((?:sk|rk)_live_[A-Za-z0-9]{24,247})" + E, needle="_live_"),
    _t("Stripe test-mode key", B + r"((?:sk|rk)_test_[A-Za-z0-9]{24,247})" + E,
       needle="_test_", severity=Severity.LOW),
    _t("Stripe webhook secret", B + r"(whsec_[A-Za-z0-9+/]{32,}={0,2})", needle="whsec_"),
    _t("Stripe publishable key", B + r"(pk_(?:live|test)_[A-Za-z0-9]{24,247})" + E, needle="pk_",
       public=True),
    _t("Mailgun public validation key", B + r"(pubkey-[0-9a-f]{32})" + E, needle="pubkey-",
       public=True),
    # keys and URIs
    _t("Azure storage account key", r"AccountKey=([A-Za-z0-9+/]{40,}={0,2})",
       rule=SECRET_PRIVATE_KEY, needle="accountkey="),
    _t("Azure SAS token", r"[?&]sig=((?:[A-Za-z0-9+/]|%2[BbFf]){40,}(?:=|%3[Dd]){0,2})"
       r"(?![A-Za-z0-9+/%=])", needle="sig=", context=r"[?&]sv=\d{4}-\d\d-\d\d",
       check=azure_sas_signature_ok, checked="HMAC-SHA256 signature"),
    _t("GCP service-account private key", r"\"private_key\"\s*:\s*\"(-----BEGIN[^\"]{200,})",
       rule=SECRET_PRIVATE_KEY, needle="private_key"),
    _t("Password in URI",
       r"\b[a-zA-Z][a-zA-Z0-9+.\-]{1,30}://[^\s:/@'\"<>]{1,128}:([^\s@/'\"<>]{1,256})@"
       r"[A-Za-z0-9.\-\[\]]", rule=SECRET_URI, needle="://"),
)

CONTEXT_WORDS = ("wandb", "comet", "cohere", "pinecone", "kaggle", "aws", "cloudflare",
                 "heroku", "mailgun")
"""The words the context-bound formats above look for."""
