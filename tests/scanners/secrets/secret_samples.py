"""Fake provider tokens and their near misses, built at run time from each published format.

Shared by the tests beside this file and by ``bench/secrets_bench.py`` (one definition of
what a token of each provider looks like). No token-shaped literal appears in this source:
prefixes are split so that push protection and mlward's own self-scan see none, and values
are random (seeded by the caller), with the providers' checksums computed where they exist.
"""

from __future__ import annotations

import base64
import json
import string
import uuid
from collections.abc import Callable
from random import Random

from mlward._internal.scanners.secrets.providers import base62_crc32, crc32_hex, crc32_le_hex

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64URL = ALNUM + "-_"


def r(rng: Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def uuid4(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _field(kind: int, data: bytes) -> bytes:
    assert kind < 128 and len(data) < 128 * 128
    size = bytes([len(data)]) if len(data) < 128 else bytes([len(data) & 0x7F | 0x80,
                                                             len(data) >> 7])
    return bytes([kind]) + size + data


def macaroon(rng: Random, location: bytes = b"pypi.org") -> bytes:
    """A libmacaroons v2 binary macaroon as PyPI issues them: location, identifier,
    one caveat, an empty section, a 32-byte signature."""
    ident = json.dumps({"version": 1, "nonce": r(rng, HEX, 32)}).encode()
    caveat = json.dumps([{"permissions": "user", "version": 1}]).encode()
    signature = bytes(rng.randrange(256) for _ in range(32))
    return (b"\x02" + _field(1, location) + _field(2, ident) + b"\x00"
            + _field(2, caveat) + b"\x00" + b"\x00" + _field(6, signature))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _github(rng: Random, kind: str = "p") -> str:
    body = r(rng, ALNUM, 30)
    return "gh" + kind + "_" + body + base62_crc32(body)


def _npm(rng: Random) -> str:
    body = r(rng, ALNUM, 30)
    return "npm" + "_" + body + base62_crc32(body)


def _grafana_sa(rng: Random) -> str:
    key = "gl" + "sa_" + r(rng, ALNUM, 32)
    return key + "_" + crc32_le_hex(key)


def _grafana_cloud(rng: Random) -> str:
    payload = {"o": str(rng.randrange(10**6, 10**7)), "n": "stack-" + r(rng, HEX, 6),
               "k": r(rng, ALNUM, 24), "m": {"r": "prod-eu-west-2"}}
    compact = json.dumps(payload, separators=(",", ":"))  # as Grafana writes it
    return "gl" + "c_" + base64.b64encode(compact.encode()).decode()


def _cloudflare(rng: Random) -> str:
    body = r(rng, ALNUM, 40)
    return "cf" + "ut_" + body + crc32_hex(body)


def _azure(rng: Random) -> str:
    return r(rng, ALNUM + "_~.", 3) + str(rng.randrange(10)) + "Q" + "~" \
        + r(rng, ALNUM + "_~.-", 34)


VALID: dict[str, Callable[[Random], str]] = {
    "github": _github,
    "github-fine-grained": lambda g: "github" + "_pat_" + r(g, ALNUM, 22) + "_" + r(g, ALNUM, 59),
    "npm": _npm,
    "pypi": lambda g: "pypi" + "-" + b64url(macaroon(g)),
    "digitalocean": lambda g: "do" + "p_v1_" + r(g, HEX, 64),
    "doppler": lambda g: "dp" + ".pt." + r(g, ALNUM, 43),
    "grafana-service-account": _grafana_sa,
    "grafana-cloud": _grafana_cloud,
    "terraform-cloud": lambda g: r(g, ALNUM, 14) + ".atlas" + "v1." + r(g, ALNUM + "-_", 67),
    "notion": lambda g: "nt" + "n_" + r(g, string.digits, 11) + r(g, ALNUM, 35),
    "azure-ad": _azure,
    "cloudflare": _cloudflare,
    "heroku": lambda g: "HR" + "KU-AA" + r(g, B64URL, 58),
    "linear": lambda g: "lin" + "_api_" + r(g, ALNUM, 40),
    "mailgun": lambda g: "key" + "-" + r(g, HEX, 32),
    "perplexity": lambda g: "pp" + "lx-" + r(g, ALNUM, 48),
    "planetscale": lambda g: "pscale" + "_pw_" + r(g, B64URL, 43),
    "postman": lambda g: "PM" + "AK-" + r(g, HEX, 24) + "-" + r(g, HEX, 34),
    "sendgrid": lambda g: "SG" + "." + r(g, B64URL, 22) + "." + r(g, B64URL, 43),
    "stripe": lambda g: "sk" + "_live_" + r(g, ALNUM, g.choice([24, 34, 99])),
}
"""One builder per provider: a token of the published format (and valid checksum)."""

KIND = {
    "github": "GitHub token", "github-fine-grained": "GitHub fine-grained token",
    "npm": "npm access token", "pypi": "PyPI API token", "digitalocean": "DigitalOcean token",
    "doppler": "Doppler token", "grafana-service-account": "Grafana service account token",
    "grafana-cloud": "Grafana Cloud token", "terraform-cloud": "Terraform Cloud token",
    "notion": "Notion integration token", "azure-ad": "Azure AD client secret",
    "cloudflare": "Cloudflare API token", "heroku": "Heroku API key",
    "linear": "Linear API key", "mailgun": "Mailgun API key",
    "perplexity": "Perplexity API key", "planetscale": "PlanetScale credential",
    "postman": "Postman API key", "sendgrid": "SendGrid API key",
    "stripe": "Stripe secret key",
}
"""The kind mlward reports for each provider's tokens."""


def _bad_checksum(build: Callable[[Random], str], width: int) -> Callable[[Random], str]:
    def near(rng: Random) -> str:
        token = build(rng)
        alphabet = HEX if width == 8 else ALNUM
        tail = token[-width:]
        while tail == token[-width:]:
            tail = r(rng, alphabet, width)
        return token[:-width] + tail
    return near


NEAR_MISSES: dict[str, Callable[[Random], str]] = {
    "github: wrong checksum": _bad_checksum(_github, 6),
    "npm: wrong checksum": _bad_checksum(_npm, 6),
    "grafana: wrong checksum": _bad_checksum(_grafana_sa, 8),
    "cloudflare: wrong checksum": _bad_checksum(_cloudflare, 8),
    "pypi: not a macaroon": lambda g: "pypi" + "-AgEIcHlwaS5vcmc" + r(g, B64URL, 120),
    "grafana cloud: not JSON": lambda g: "gl" + "c_" + base64.b64encode(
        bytes(g.randrange(256) for _ in range(90))).decode(),
    "stripe: publishable key": lambda g: "pk" + "_live_" + r(g, ALNUM, 34),
    "stripe: placeholder": lambda g: "sk" + "_live_" + "x" * 24,
    "github: placeholder": lambda g: "gh" + "p_" + "X" * 36,
    "digitalocean: placeholder": lambda g: "do" + "p_v1_" + "0" * 64,
    "perplexity: placeholder": lambda g: "pp" + "lx-" + "x" * 48,
}
"""Strings that look like tokens but are not: checksums or structures that fail, public keys,
fill-ins (a scanner should stay silent, whatever name they are assigned to)."""

MALFORMED: dict[str, Callable[[Random], str]] = {
    "doppler: truncated": lambda g: "dp" + ".pt." + r(g, ALNUM, 20),
    "sendgrid: truncated": lambda g: "SG" + "." + r(g, B64URL, 22) + "." + r(g, B64URL, 12),
    "postman: wrong length": lambda g: "PM" + "AK-" + r(g, HEX, 24) + "-" + r(g, HEX, 20),
    "mailgun: wrong length": lambda g: "key" + "-" + r(g, HEX, 24),
    "heroku: truncated": lambda g: "HR" + "KU-AA" + r(g, B64URL, 30),
}
"""Provider prefixes on values of the wrong length: not that provider's token (though a
random value assigned to a secret name may still be some other secret)."""
