"""Credentials out of everything mlward prints: one helper for every producer of evidence.

Findings quote what they came from (a command line, a URL, a line of code), and those quote
secrets as often as not: ``postgresql://admin:pw@db/x``, ``--token abc``,
``MLFLOW_TRACKING_PASSWORD=abc``. :func:`redact_credentials` replaces the secret part and keeps
the rest, so the evidence still shows *what* was wrong. :meth:`mlward.rules.Rule.finding`
applies it to every finding's message, evidence and string details, and commands apply it to
the inputs they echo (URLs given to ``probe``), so no writer ever sees a credential.

What counts as a credential (the value is replaced by ``[REDACTED]``; an empty value is kept,
since "no password" is often the very finding):

- the password of a URL's userinfo (``scheme://user:PASSWORD@host``), or the whole userinfo
  when it has no password (``https://TOKEN@host``: tokens travel as user names);
- the value of a command-line option or ``KEY=VALUE`` / ``key: value`` pair whose name has a
  part meaning a credential: password, passwd, pwd, pass, secret, token, key, apikey,
  credential(s), auth, authorization, passphrase, cookie, session, signature, sig (a name
  is split on punctuation and camelCase, so ``--ServerApp.token``, ``hfToken``,
  ``AWS_SECRET_ACCESS_KEY`` and ``?api_key=`` all count, and ``--monkey`` does not);
- what follows ``Authorization:`` / ``Bearer`` / ``Basic`` / ``token`` in an HTTP header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlward._internal.lazy import lazy_pattern

MASK = "[REDACTED]"
SENSITIVE_PARTS = frozenset({
    "password", "passwd", "pwd", "pass", "secret", "secrets", "token", "tokens", "key",
    "keys", "apikey", "accesskey", "secretkey", "privatekey", "credential", "credentials",
    "auth", "authorization", "passphrase", "cookie", "session", "signature", "sig",
})

# scheme://userinfo@ : userinfo is user[:password]; "@" may not appear unescaped in it.
_USERINFO = lazy_pattern(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^\s/@:?#\"']*)"
                       r"(?::(?P<password>[^\s/@?#\"']*))?@")
_VALUE = r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s&;,\"')\]}]*)"
_NAME = r"(?P<name>[A-Za-z_][\w.\-]*)"
_LEAD = r"(?P<lead>(?:^|(?<=[\s?&;,({\[\"']))-{0,2})"
# --name=value, NAME=VALUE, name = value, ?name=value&...
_ASSIGN = lazy_pattern(_LEAD + _NAME + r"(?P<sep>\s*=\s*)" + _VALUE)
# --name value (an option and its argument)
_ARGUMENT = lazy_pattern(_LEAD + _NAME + r"(?P<sep>[ \t]+(?=[^\s-]))" + _VALUE)
# name: value and "name": "value", at the start of a line or of a mapping entry (not prose)
_COLON = lazy_pattern(r"(?P<lead>(?:^|(?<=[{,\[]))[ \t]*[\"']?)" + _NAME
                    + r"(?P<sep>[\"']?[ \t]*:[ \t]+)" + _VALUE, re.MULTILINE)
_HEADER = lazy_pattern(r"(?i)\b(?P<head>authorization\s*:\s*(?:bearer|basic|token)?\s*|"
                     r"bearer\s+|basic\s+(?=[A-Za-z0-9+/=]{8,}))(?P<value>[^\s\"',;]+)")
_SCHEMES = frozenset({"bearer", "basic", "token"})
_PARTS = lazy_pattern(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def sensitive_name(name: str) -> bool:
    """Whether an option or key name says its value is a credential."""
    parts = [p.lower() for p in _PARTS.findall(name)]
    return any(p in SENSITIVE_PARTS for p in parts) or "".join(parts) in SENSITIVE_PARTS


def _userinfo(m: re.Match[str]) -> str:
    user, password = m.group("user"), m.group("password")
    if password is None:
        return f"{m.group('scheme')}{MASK}@" if user else m.group(0)
    if not password:
        return m.group(0)
    return f"{m.group('scheme')}{user}:{MASK}@"


def _masked(value: str) -> str:
    if not value or MASK in value or value.lower() in _SCHEMES:
        return value  # empty (often the finding itself), already masked, or a header word
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value if len(value) == 2 else f"{value[0]}{MASK}{value[0]}"
    return MASK


def _pair(m: re.Match[str]) -> str:
    name, sep = m.group("name"), m.group("sep")
    if not sensitive_name(name) or (not sep.strip() and "-" not in m.group("lead")):
        return m.group(0)  # "token and password" is prose; "--token abc" is an option
    return f"{m.group('lead')}{name}{sep}{_masked(m.group('value'))}"


_HINTS = ("pass", "pwd", "secret", "token", "key", "auth", "credential", "cookie", "session",
          "sig", "bearer", "basic")
"""Every name in :data:`SENSITIVE_PARTS` and every header word holds one of these."""
_NOT_ALNUM = lazy_pattern(r"[^a-z0-9]+")


def _may_hold_credentials(text: str) -> bool:
    """A cheap test before the patterns (every finding's message, evidence and details pass
    through here): a URL with userinfo, or a name or header word with a credential part.
    Names are matched with their punctuation removed, as :func:`sensitive_name` joins them."""
    if "@" in text and "://" in text:
        return True
    squashed = _NOT_ALNUM.sub("", text.lower())
    return any(hint in squashed for hint in _HINTS)


def redact_credentials(text: str) -> str:
    """``text`` with every credential it shows replaced by ``[REDACTED]``."""
    if not text or not _may_hold_credentials(text):
        return text
    text = _USERINFO.sub(_userinfo, text)
    text = _HEADER.sub(lambda m: m.group("head") + MASK, text)
    for pattern in (_COLON, _ASSIGN, _ARGUMENT):
        text = pattern.sub(_pair, text)
    return text


def redact_value(value: Any) -> Any:
    """Strings redacted inside lists and mappings (a finding's details), other values kept."""
    if isinstance(value, str):
        return redact_credentials(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value
