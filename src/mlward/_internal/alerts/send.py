"""Alert messages and their delivery: generic webhook (JSON signed with HMAC-SHA256), Slack
and Microsoft Teams incoming webhooks, e-mail over SMTP with STARTTLS.

An alert carries what the gate decided, never what a check read: rule, severity, title, the
item (a path, a package), the fix, the fingerprint. No evidence, no message text quoted from a
file, no secrets (the channel's own URL and credentials stay out of every message and error).

Webhook signature, for receivers to verify::

    X-Mlward-Timestamp: 1764871234
    X-Mlward-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

A receiver recomputes the HMAC over the timestamp, a dot and the exact body bytes, compares
in constant time, and refuses timestamps more than a few minutes old (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from mlward._internal.alerts.config import AlertConfig, Channel
from mlward._version import __version__

FORMAT = "mlward-alert/1"
MAX_ITEMS = 50
"""Items listed in one chat message or e-mail (the webhook body lists them all)."""
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Item:
    """One violation as an alert tells it."""

    rule: str
    severity: str
    title: str
    subject: str
    fingerprint: str
    remediation: str
    location: str


@dataclass(frozen=True)
class Alert:
    kind: str
    """``violations`` (new, or all with --alert-all) or ``resolved``."""
    project: str
    verdict: str
    policy: str
    policy_digest: str
    time: str
    items: tuple[Item, ...]

    @property
    def headline(self) -> str:
        n = len(self.items)
        if self.kind == "resolved":
            return f"mlward gate: {n} violation(s) resolved in {self.project}"
        return f"mlward gate {self.verdict.upper()}: {n} violation(s) in {self.project}"

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "kind": self.kind, "project": self.project,
                "verdict": self.verdict, "policy": {"name": self.policy,
                                                    "digest": self.policy_digest},
                "time": self.time, "tool": f"mlward {__version__}",
                "items": [vars(i) for i in self.items]}

    def lines(self) -> list[str]:
        shown = [f"[{i.severity}] {i.rule}: {i.subject}" for i in self.items[:MAX_ITEMS]]
        if len(self.items) > MAX_ITEMS:
            shown.append(f"... and {len(self.items) - MAX_ITEMS} more")
        return shown


@dataclass
class Delivery:
    channel: Channel
    alert: Alert
    ok: bool
    attempts: int
    error: str | None = None
    statuses: list[int] = field(default_factory=list)


# --- message bodies -----------------------------------------------------------------------------


def webhook_request(alert: Alert, secret: str | None, now: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(alert.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": f"mlward/{__version__}",
               "X-Mlward-Timestamp": str(now)}
    if secret:
        mac = hmac.new(secret.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
        headers["X-Mlward-Signature"] = f"sha256={mac}"
    return body, headers


def _escape_slack(text: str) -> str:
    # Slack mrkdwn: &, < and > are the only characters to escape; they would make links.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(alert: Alert) -> dict[str, Any]:
    text = "\n".join(f"• {_escape_slack(line)}" for line in alert.lines())
    return {
        "text": _escape_slack(alert.headline),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": alert.headline[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900] or "-"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _escape_slack(
                f"policy {alert.policy} ({alert.policy_digest[:19]}) · {alert.time}")}]},
        ],
    }


def teams_body(alert: Alert) -> dict[str, Any]:
    """An Adaptive Card in the message envelope Teams incoming webhooks and workflows take."""
    facts = [{"title": i.rule, "value": f"[{i.severity}] {i.subject}"}
             for i in alert.items[:MAX_ITEMS]]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard", "version": "1.4",
        "body": [
            {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True,
             "text": alert.headline},
            {"type": "FactSet", "facts": facts},
            {"type": "TextBlock", "isSubtle": True, "wrap": True,
             "text": f"policy {alert.policy} ({alert.policy_digest[:19]}) · {alert.time}"},
        ],
    }
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}


def email_message(alert: Alert, channel: Channel) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = alert.headline
    msg["From"] = channel.sender or ""
    msg["To"] = ", ".join(channel.to)
    body = [alert.headline, "", *alert.lines(), ""]
    if alert.kind != "resolved":
        body += ["How to fix:", *sorted({f"- {i.rule}: {i.remediation}" for i in alert.items
                                         if i.remediation})]
    body += ["", f"Policy {alert.policy} ({alert.policy_digest}), {alert.time}."]
    msg.set_content("\n".join(body))
    return msg


# --- delivery ---------------------------------------------------------------------------------


class _Failed(Exception):
    def __init__(self, message: str, *, retry: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.status = status


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        raise _Failed(f"HTTP {exc.code}", retry=exc.code in _RETRY_STATUS,
                      status=exc.code) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Failed(f"no answer ({type(reason).__name__})", retry=True) from None


def _send_email(channel: Channel, alert: Alert, timeout: float) -> None:
    context = ssl.create_default_context(cafile=channel.cafile)
    try:
        with smtplib.SMTP(channel.host or "", channel.port, timeout=timeout) as smtp:
            smtp.ehlo()
            if channel.starttls:
                if not smtp.has_extn("starttls"):
                    raise _Failed("the server does not offer STARTTLS (set starttls = false "
                                  "only for a server on this machine)", retry=False)
                smtp.starttls(context=context)
                smtp.ehlo()
            if channel.username:
                smtp.login(channel.username, channel.password or "")
            smtp.send_message(email_message(alert, channel))
    except smtplib.SMTPAuthenticationError:
        raise _Failed("authentication refused", retry=False) from None
    except smtplib.SMTPResponseException as exc:
        raise _Failed(f"SMTP {exc.smtp_code}", retry=400 <= exc.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise _Failed(f"SMTP failed ({type(exc).__name__})", retry=True) from None


def _attempt(channel: Channel, alert: Alert, timeout: float) -> int | None:
    if channel.kind == "email":
        _send_email(channel, alert, timeout)
        return None
    assert channel.url is not None
    if channel.kind == "webhook":
        body, headers = webhook_request(alert, channel.secret, int(time.time()))
    else:
        payload = slack_body(alert) if channel.kind == "slack" else teams_body(alert)
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"mlward/{__version__}"}
    return _post(channel.url, body, headers, timeout)


def deliver(channel: Channel, alert: Alert, config: AlertConfig, *,
            sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """Send ``alert`` through ``channel``: retried with exponential backoff on timeouts,
    connection errors, 429 and 5xx answers; never raises."""
    delivery = Delivery(channel, alert, ok=False, attempts=0)
    for n in range(config.retries + 1):
        if n:
            sleep(config.backoff * (2 ** (n - 1)))
        delivery.attempts += 1
        try:
            status = _attempt(channel, alert, config.timeout)
        except _Failed as exc:
            if exc.status is not None:
                delivery.statuses.append(exc.status)
            delivery.error = f"{channel.kind} {channel.name} ({channel.target}): {exc}"
            if not exc.retry:
                break
            continue
        if status is not None:
            delivery.statuses.append(status)
        delivery.ok, delivery.error = True, None
        break
    return delivery


def deliver_all(config: AlertConfig, alerts: Sequence[tuple[Channel, Alert]], *,
                sleep: Callable[[float], None] = time.sleep) -> list[Delivery]:
    return [deliver(channel, alert, config, sleep=sleep) for channel, alert in alerts]
