"""Random-looking values assigned to secret-named variables: the entropy detector.

A string is judged random by its Shannon entropy, H = -Σ p·log2 p over its characters,
with the limits truffleHog introduced and detect-secrets keeps as defaults (Base64 4.5 bits,
hex 3.0 bits, at least 20 characters; D. Ayrey, truffleHog, 2016; Yelp detect-secrets,
``Base64HighEntropyString``/``HexHighEntropyString``). Those fixed limits are blind to length:
an n-character string cannot exceed log2(n) bits, so a random 32-character token averages
4.54 bits and most would fall under 4.5. The bar here is therefore relative to random strings
of the same length and alphabet: the exact expected entropy of n uniform draws from k
symbols, less 0.55 bits (about three standard deviations for n = 20-64; measured, at most 2
in 3,000 random base62 or Base64 strings of 20 to 64 characters fall below it, and 15 in
3,000 hex strings of 20), and never above the fixed limits. Meli, McNiece and Reaves (How
Bad Can It Git? Characterizing Secret Leakage in Public GitHub Repositories, NDSS 2019)
filter candidates by entropy, by words and by patterns; the last two apply here too: words
(identifiers, slugs, environment variable names are not keys) and patterns (repeated or
sequential runs, in :mod:`.detect`).

Entropy alone flags every hash, ID and base64 blob a notebook prints, so it only ever judges
a value in a secret context: assigned to (or keyed by, or passed as) a name whose head word
is a secret noun (``token``, ``api_key``, ``client_secret``, ``password``...), never the
language-model senses of "token" (``pad_token``, ``max_tokens``, ``token_ids``), or an
``Authorization`` header. Values that are something else whatever their name are dropped:
URLs and paths, file names, numbers, DNA/RNA and protein sequences, base64 images, words.
Prose is not a secret either: values with spaces never match.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache

MIN_LENGTH = 20
MAX_LENGTH = 512
"""Longer values are data (images, serialized blobs), not credentials."""
BASE64_LIMIT = 4.5
HEX_LIMIT = 3.0
MARGIN = 0.55
"""Bits below the expected entropy of a random string of the same length and alphabet."""


def shannon(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


@lru_cache(maxsize=2048)
def expected_entropy(n: int, k: int) -> float:
    """E[H] of n characters drawn uniformly from k: log2 n - (k/n)·Σ_j P(N=j)·j·log2 j,
    with N ~ Binomial(n, 1/k) the count of one symbol (computed in logs: no overflow)."""
    p = 1 / k
    total = 0.0
    for j in range(2, n + 1):
        log_pmf = (math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                   + j * math.log(p) + (n - j) * math.log1p(-p))
        total += math.exp(log_pmf) * j * math.log2(j)
    return math.log2(n) - k / n * total


_HEX = re.compile(r"[0-9a-fA-F]+")
_ALNUM = re.compile(r"[A-Za-z0-9]+")


def looks_random(value: str) -> bool:
    """True when ``value`` (already known to be of the token alphabet) has the entropy of a
    random hex or Base64/base62 string of its length."""
    body = value.rstrip("=")
    if _HEX.fullmatch(body.replace("-", "")):
        body = body.replace("-", "")
        k, limit = 16, HEX_LIMIT
    else:
        k, limit = (62 if _ALNUM.fullmatch(body) else 64), BASE64_LIMIT
    if len(body) < MIN_LENGTH:
        return False
    return shannon(body) >= min(limit, expected_entropy(len(body), k) - MARGIN)


# --- what is not a secret whatever its name -------------------------------------------

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_PATHLIKE = re.compile(r"^(?:\.{0,2}/|~/)|://|\.[A-Za-z][A-Za-z0-9]{1,4}$")
_IMAGE_PREFIXES = ("iVBORw0KGgo", "/9j/", "R0lGOD", "UklGR", "PHN2Zy", "Qk0", "SUkq", "AAAA")
_NUCLEOTIDES = frozenset("ACGTUN")
_AMINO_ACIDS = frozenset("ACDEFGHIKLMNPQRSTVWYXBZ")


def sequence(value: str) -> bool:
    """DNA or RNA (in either case: genomes soft-mask in lower case) or protein letters."""
    return value.isalpha() and (set(value.upper()) <= _NUCLEOTIDES
                                or (value.isupper() and set(value) <= _AMINO_ACIDS))


def benign(value: str) -> bool:
    """Values that are not credentials whatever they are assigned to: paths, URLs and file
    names, numbers, sequences, base64 images, and identifiers made of words."""
    if _PATHLIKE.search(value) or not any(c.isalpha() for c in value) \
            or value.startswith(_IMAGE_PREFIXES):
        return True
    if sequence(value):
        return True
    segments = [s for s in re.split(r"[_\-.~/+=]", value) if s]
    return len(segments) >= 2 and all(_wordy(s) for s in segments)


def _wordy(segment: str) -> bool:
    """A word, a camel-case compound or a short tag (``MiniLM``, ``v2``): random text
    switches case and digits every character or two."""
    return len(segment) <= 3 or all(len(w) >= 2 for w in _WORD.findall(segment)
                                    if not w.isdigit())


# --- secret names ---------------------------------------------------------------------

_SECRET_HEADS = frozenset({
    "token", "secret", "password", "passwd", "pwd", "pass", "passphrase", "apikey",
    "credential", "credentials", "auth", "authorization", "bearer", "accesskey", "secretkey",
})
_KEY_QUALIFIERS = frozenset({
    "api", "access", "secret", "private", "auth", "client", "service", "account", "signing",
    "encryption", "master", "app", "subscription", "admin", "license", "deploy", "ingest",
    "webhook", "session", "consumer", "developer", "personal", "server", "hmac", "jwt",
    "fernet", "write", "read",
})
_LANGUAGE_TOKENS = frozenset({
    "pad", "bos", "eos", "unk", "sep", "cls", "mask", "start", "end", "special", "image", "img",
    "audio", "video", "vision", "begin", "eot", "eom", "system", "user", "assistant", "new",
    "next", "prev", "first", "last", "max", "min", "num", "n", "total", "added", "input",
    "output", "stop", "default", "sample", "pred", "predicted", "generated", "gen", "decoded",
    "target", "prompt", "tool", "vocab", "word", "char", "sub", "subword", "bpe", "answer",
    "query", "context", "doc", "text", "sentence", "seq", "boundary", "think", "response",
    "placeholder", "pause", "label", "class", "chat", "fim", "middle", "prefix", "suffix",
})


_REFERENCE_HEADS = frozenset({
    "name", "names", "id", "ids", "arn", "path", "file", "filename", "dir", "url", "uri",
    "endpoint", "env", "var", "ref", "type", "prefix", "suffix", "length", "len", "size",
    "count", "version", "region", "hint", "label", "field", "header", "scope", "policy",
    "provider", "format", "pattern", "regex", "template", "location", "mode", "method",
    "store", "vault", "source", "hash", "digest", "checksum", "sha", "sha1", "sha256", "md5",
})


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(re.split(r"[.\[]", name)[-1])]


def reference_name(name: str) -> bool:
    """A name that holds something about a secret, not the secret: ``secret_name``,
    ``password_file``, ``api_key_env``, ``token_url``, ``password_hash``."""
    words = _words(name)
    return bool(words) and words[-1] in _REFERENCE_HEADS


_NAME_BEFORE = re.compile(
    r"([A-Za-z_][\w.\-]*)[\"'\]]{0,2}\s*(?::=|=>|=|:)\s*[rbuRBU]{0,2}[\"'`]?$")


def assigned_name(line: str, value: str) -> str:
    """The name ``value`` is assigned to (or keyed by) in ``line``, or ``""``."""
    at = line.find(value)
    m = _NAME_BEFORE.search(line, 0, at) if at > 0 else None
    return m.group(1) if m else ""


def secret_name(name: str) -> bool:
    """A variable, key or argument name that holds a secret: its head (last) word is a
    secret noun, ``key`` qualified as an API/access/... key, or ``token`` in its credential
    sense (``HF_TOKEN``, ``access_token``), not a language-model one (``pad_token``)."""
    words = _words(name)
    if not words:
        return False
    head, qualifier = words[-1], words[-2] if len(words) > 1 else ""
    if head == "key":
        return qualifier in _KEY_QUALIFIERS
    if head == "token":
        return qualifier not in _LANGUAGE_TOKENS
    return head in _SECRET_HEADS


# --- finding the assignments ----------------------------------------------------------

_VALUE = rf"(?P<value>[A-Za-z0-9+/=_\-.~]{{{MIN_LENGTH},{MAX_LENGTH}}})"
_NAME = r"(?<![\w.\-])(?P<name>[A-Za-z_][\w.\-]{0,80})(?![\w.\-])"
_QUOTED = re.compile(  # name = "value", "name": "value", name="value" (keyword argument),
    # os.environ["NAME"] = "value", name: str = "value"
    _NAME + r"[\"'\]]{0,2}\s*(?::\s*[A-Za-z_][\w\[\]., |]{0,40}?\s*)?"
    r"(?::=|=>|=|:)\s*[rbuRBU]{0,2}(?P<q>[\"'`])" + _VALUE + r"(?P=q)")
_UNQUOTED = re.compile(  # NAME=value (.env, shell), name: value (YAML), "token: value" printed
    _NAME + r"[\"']?\s*[=:]\s*" + _VALUE + r"(?=$|[\s,;&)\]}])")
_HEADER = (r"(?P<name>authorization|proxy-authorization|x-api-key|api-key|x-auth-token"
           r"|private-token)[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|token|basic|bot)\s+)?" + _VALUE
           + r"(?=$|[\s\"',;)\]}])")
_IN_TEXT = (_QUOTED, _UNQUOTED, re.compile(r"(?<![\w-])" + _HEADER, re.IGNORECASE))
_IN_CODE = (_QUOTED, re.compile(r"[\"']" + _HEADER, re.IGNORECASE))
"""In code a literal is quoted: an unquoted value is a name or a type (``auth: BasicAuth``),
and a header is only one inside a string (``-H "Authorization: Bearer …"``)."""
GATE = ("token", "secret", "pass", "pwd", "key", "auth", "cred", "bearer")
"""Lower-case words one of which every secret name contains: lines without them are skipped."""


def assigned_secrets(line: str, *, code: bool) -> Iterator[tuple[str, int]]:
    """Random-looking values in a secret context in ``line``: (value, column) pairs.
    ``code``: the line is source code (literals quoted), not output, config or prose."""
    for regex in _IN_CODE if code else _IN_TEXT:
        for m in regex.finditer(line):
            value = m.group("value")
            if secret_name(m.group("name")) and not benign(value) and looks_random(value):
                yield value, m.start("value")
