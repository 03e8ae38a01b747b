"""The ``[alerts]`` settings table, validated here with errors that name the key.

The table (README, "Alerts"): ``timeout``, ``retries`` and ``backoff``, then any number of
channels as arrays of tables: ``[[alerts.webhook]]`` (``url`` or ``url_env``, and
``secret_env`` for the HMAC key), ``[[alerts.slack]]`` and ``[[alerts.teams]]`` (``url_env``:
their URLs carry a token), ``[[alerts.email]]`` (``host``, ``port``, ``sender``, ``to``,
``username``, ``password_env``, ``starttls``, ``cafile``); each may have a ``name``.

Secrets (HMAC keys, webhook URLs that carry a token, SMTP passwords) are named by the
environment variable that holds them; the CLI passes the environment in, so they are never
written in a settings file, never printed and never put in an alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mlward.errors import UsageError

KINDS = ("webhook", "slack", "teams", "email")
_COMMON = ("timeout", "retries", "backoff")
_KEYS = {
    "webhook": ("name", "url", "url_env", "secret_env"),
    "slack": ("name", "url", "url_env"),
    "teams": ("name", "url", "url_env"),
    "email": ("name", "host", "port", "starttls", "sender", "to", "username", "password_env",
              "cafile"),
}


@dataclass(frozen=True)
class Channel:
    kind: str
    name: str
    """Unique among the channels (``webhook``, ``slack-2``, or the ``name`` given): the ledger
    keeps what each channel was already told under it."""
    url: str | None = None
    secret: str | None = None
    host: str | None = None
    port: int = 587
    starttls: bool = True
    sender: str | None = None
    to: tuple[str, ...] = ()
    username: str | None = None
    password: str | None = None
    cafile: str | None = None

    @property
    def target(self) -> str:
        """Where it sends, without secrets (URL paths and queries carry tokens)."""
        if self.kind == "email":
            return f"smtp://{self.host}:{self.port}"
        parts = urlsplit(self.url or "")
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


@dataclass(frozen=True)
class AlertConfig:
    channels: tuple[Channel, ...] = ()
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 1.0


def _number(table: Mapping[str, Any], key: str, default: float, where: str, *,
            whole: bool = False) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
            whole and not isinstance(value, int)):
        raise UsageError(f"{where}: [alerts] {key} must be a {'whole ' if whole else ''}"
                         f"number of at least 0 (got {value!r})")
    return value


def alert_config(table: Mapping[str, Any], *, origin: str = "settings",
                 env: Mapping[str, str] | None = None) -> AlertConfig:
    """Validate the ``[alerts]`` table; ``env`` is where ``*_env`` secrets are read from."""
    env = env or {}
    unknown = set(table) - {*_COMMON, *KINDS}
    if unknown:
        raise UsageError(f"{origin}: unknown key(s) in [alerts]: {', '.join(sorted(unknown))} "
                         f"(known: {', '.join((*_COMMON, *KINDS))})")
    channels: list[Channel] = []
    for kind in KINDS:
        items = table.get(kind, [])
        items = [items] if isinstance(items, Mapping) else items
        if not isinstance(items, list):
            raise UsageError(f"{origin}: [alerts] {kind} must be a table or an array of "
                             f"tables ([[alerts.{kind}]])")
        for n, item in enumerate(items, 1):
            channels.append(_channel(kind, n, item, f"{origin}: [[alerts.{kind}]] {n}", env))
    names = [c.name for c in channels]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"{origin}: alert channel names must differ ({', '.join(dupes)})")
    return AlertConfig(tuple(channels), _number(table, "timeout", 10.0, origin),
                       int(_number(table, "retries", 3, origin, whole=True)),
                       _number(table, "backoff", 1.0, origin))


def _secret(item: Mapping[str, Any], key: str, where: str, env: Mapping[str, str]) -> str | None:
    name = item.get(key)
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise UsageError(f"{where}: {key} must name an environment variable")
    value = env.get(name)
    if not value:
        raise UsageError(f"{where}: {key} names {name}, which is not set")
    return value


def _channel(kind: str, n: int, item: Any, where: str, env: Mapping[str, str]) -> Channel:
    if not isinstance(item, Mapping):
        raise UsageError(f"{where} must be a table")
    unknown = set(item) - set(_KEYS[kind])
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(_KEYS[kind])})")
    for key, value in item.items():
        if key not in ("port", "starttls", "to") and not isinstance(value, str):
            raise UsageError(f"{where}: {key} must be a string")
    name = item.get("name") or (kind if n == 1 else f"{kind}-{n}")
    if kind == "email":
        to = item.get("to")
        to = [to] if isinstance(to, str) else to
        if not to or not isinstance(to, list) or not all(isinstance(t, str) for t in to):
            raise UsageError(f"{where}: to must be an address or a list of addresses")
        if not item.get("host") or not item.get("sender"):
            raise UsageError(f"{where}: host and sender are required")
        port = item.get("port", 587)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise UsageError(f"{where}: port must be a TCP port number")
        starttls = item.get("starttls", True)
        if not isinstance(starttls, bool):
            raise UsageError(f"{where}: starttls must be true or false")
        return Channel(kind, name, host=item["host"], port=port, starttls=starttls,
                       sender=item["sender"], to=tuple(to), username=item.get("username"),
                       password=_secret(item, "password_env", where, env),
                       cafile=item.get("cafile"))
    url = _secret(item, "url_env", where, env) or item.get("url")
    if not url or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise UsageError(f"{where}: url (or url_env) must give an http(s) URL")
    return Channel(kind, name, url=url, secret=_secret(item, "secret_env", where, env))
