"""Azure shared access signatures (SAS) written into code, notebooks and configs.

A SAS is a bearer credential in a URL query: ``sv`` (version), ``sp`` (permissions), ``st``
and ``se`` (start and expiry), ``sig`` (the signature). One that grants write, delete,
create, add or list and lives longer than a week is a standing key to the data; the finding
names its permissions and lifetime and never prints the signature.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from urllib.parse import parse_qs

MAX_LIFETIME = timedelta(days=7)
BROAD = {"w": "write", "d": "delete", "c": "create", "a": "add", "l": "list",
         "x": "delete versions", "y": "permanent delete", "u": "update", "m": "move",
         "i": "set immutability"}
_SIG = re.compile(r"sig=[A-Za-z0-9%+/=]{20,}")
_TOKEN = re.compile(r"[A-Za-z0-9%&=:+/._\-?]")


class Sas(NamedTuple):
    line: int
    host: str
    permissions: str
    start: datetime | None
    expiry: datetime | None
    stored_policy: bool

    def grants(self) -> list[str]:
        return [BROAD[p] for p in self.permissions if p in BROAD]

    def lifetime(self, now: datetime) -> timedelta | None:
        if self.expiry is None:
            return None
        return self.expiry - (self.start or now)

    @property
    def evidence(self) -> str:
        """What identifies the token without revealing it: host, permissions, expiry (the
        signature is left out)."""
        expiry = self.expiry.date().isoformat() if self.expiry else "none"
        return f"{self.host or 'SAS'} sp={self.permissions} se={expiry}"


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def find(text: str) -> Iterator[Sas]:
    """Every SAS token in ``text`` (a signature with a version beside it)."""
    for m in _SIG.finditer(text):
        start, end = m.start(), m.end()
        while start > 0 and _TOKEN.match(text[start - 1]) and m.start() - start < 4096:
            start -= 1
        while end < len(text) and _TOKEN.match(text[end]) and end - m.end() < 4096:
            end += 1
        token = text[start:end]
        url, _, query = token.rpartition("?")
        params = parse_qs(query if "sv=" in query else token.split("?")[-1])
        if "sv" not in params:
            continue
        host = re.sub(r"^https?://", "", url).split("/")[0] if url else ""
        yield Sas(line=text.count("\n", 0, m.start()) + 1, host=host,
                  permissions=params.get("sp", [""])[0],
                  start=_date(params.get("st", [None])[0]),
                  expiry=_date(params.get("se", [None])[0]),
                  stored_policy="si" in params)


def is_broad(sas: Sas, now: datetime) -> bool:
    """Grants more than reading, and lives longer than :data:`MAX_LIFETIME` (a token whose
    expiry sits in a stored access policy cannot be judged here and is not reported)."""
    if not sas.grants():
        return False
    lifetime = sas.lifetime(now)
    if lifetime is None:
        return not sas.stored_policy
    return lifetime > MAX_LIFETIME and sas.expiry is not None and sas.expiry > now
