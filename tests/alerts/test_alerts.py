"""Alerts end to end, against real receivers on 127.0.0.1: the exact bodies, the HMAC, the
retries, "only new" across consecutive gate runs, e-mail over STARTTLS, failures that never
change the verdict and are retried, and no secrets anywhere."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from mlward._internal.alerts.config import AlertConfig, Channel, alert_config
from mlward._internal.alerts.send import Alert, Item, deliver
from mlward._internal.ledger import open_ledger
from mlward.errors import UsageError

from .conftest import Inbox, gate

SECRET = "s3cr3t-hmac-key-for-tests"
TOKEN = "T0000/B0000/XXXXSECRETTOKENXXXX"


def configure(project: Path, text: str) -> None:
    with (project / ".mlward" / "mlward.toml").open("a") as f:
        f.write("\n[alerts]\nretries = 2\nbackoff = 0\ntimeout = 5\n" + text)


def webhook(project: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWARD_TEST_HOOK_SECRET", SECRET)
    configure(project, f'[[alerts.webhook]]\nurl = "{httpserver.url_for("/hook")}"\n'
              'secret_env = "MLWARD_TEST_HOOK_SECRET"\n')


def bodies(httpserver: HTTPServer) -> list[dict]:
    return [json.loads(req.get_data()) for req, _ in httpserver.log]


def verify_signature(request: object) -> None:
    """What a receiver does (README "Alerts"): HMAC over "<timestamp>." + body."""
    headers = request.headers  # type: ignore[attr-defined]
    stamp = headers["X-Mlward-Timestamp"]
    expected = "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." +
                                    request.get_data(), hashlib.sha256).hexdigest()  # type: ignore[attr-defined]
    assert hmac.compare_digest(headers["X-Mlward-Signature"], expected)
    assert abs(time.time() - int(stamp)) < 300


def ledger_events(project: Path, action: str) -> list:
    with open_ledger(project=project) as ledger:
        events = [ledger.entry(i).event for i in range(ledger.size())]
    return [e for e in events if e.action == action]


def test_three_runs_alert_once_then_stay_quiet_then_say_resolved(
        small_project: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
        marker: Path) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    webhook(small_project, httpserver, monkeypatch)

    assert gate() == 1  # 1: a new violation -> one alert
    [first] = bodies(httpserver)
    verify_signature(httpserver.log[0][0])
    assert first["format"] == "mlward-alert/1" and first["kind"] == "violations"
    assert first["verdict"] == "fail" and first["project"] == "proj"
    [item] = first["items"]
    assert (item["rule"], item["severity"], item["subject"]) == (
        "no-critical-findings", "critical", "MW101 evil.pkl")
    assert item["remediation"] and item["location"].startswith("evil.pkl")

    assert gate() == 1  # 2: the same violation -> nothing
    assert len(httpserver.log) == 1

    (small_project / "evil.pkl").unlink()
    assert gate() == 0  # 3: fixed -> a "resolved" notice for the same fingerprint
    resolved = bodies(httpserver)[1]
    assert resolved["kind"] == "resolved" and resolved["verdict"] == "pass"
    assert [i["fingerprint"] for i in resolved["items"]] == [item["fingerprint"]]
    assert resolved["items"][0]["subject"] == "MW101 evil.pkl"

    assert gate() == 0  # 4: nothing new, nothing resolved
    assert len(httpserver.log) == 2

    runs = ledger_events(small_project, "gate.run")
    assert [r.outcome for r in runs] == ["fail", "fail", "pass", "pass"]
    assert runs[1].details["violations"] == [item["fingerprint"]]
    alerts = ledger_events(small_project, "gate.alert")
    assert [(a.outcome, a.details["alert"], a.details["items"]) for a in alerts] == [
        ("delivered", "violations", 1), ("delivered", "resolved", 1)]
    assert alerts[0].resource == f"http://127.0.0.1:{httpserver.port}"
    assert not marker.exists()


def test_alert_all_sends_every_violation_again(small_project: Path, httpserver: HTTPServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    webhook(small_project, httpserver, monkeypatch)
    assert gate() == 1
    assert gate("--alert-all") == 1
    assert [b["kind"] for b in bodies(httpserver)] == ["violations", "violations"]
    assert gate("--no-alerts") == 1 and gate() == 1  # a silent run changes nothing
    assert len(httpserver.log) == 2


def test_a_failed_delivery_keeps_the_verdict_and_is_retried_next_run(
        small_project: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("down", status=500)
    webhook(small_project, httpserver, monkeypatch)
    assert gate() == 1  # the violation decides, not the alert
    err = capsys.readouterr().err
    assert "alert not delivered (MW903) after 3 attempt(s)" in err and "HTTP 500" in err
    assert len(httpserver.log) == 3  # first try and two retries
    [failed] = ledger_events(small_project, "gate.alert")
    assert failed.outcome == "failed" and failed.details["attempts"] == 3

    httpserver.clear()
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    assert gate() == 1
    [retried] = bodies(httpserver)
    assert retried["kind"] == "violations" and len(retried["items"]) == 1


def test_retries_back_off_exponentially_and_client_errors_are_final(
        httpserver: HTTPServer) -> None:
    for status in (503, 429):
        httpserver.expect_ordered_request("/r", method="POST").respond_with_data("", status)
    httpserver.expect_ordered_request("/r", method="POST").respond_with_data("ok")
    waits: list[float] = []
    channel = Channel("webhook", "webhook", url=httpserver.url_for("/r"), secret=SECRET)
    alert = Alert("violations", "p", "fail", "baseline", "sha256:00", "now", ())
    config = AlertConfig((channel,), timeout=5, retries=3, backoff=0.5)
    done = deliver(channel, alert, config, sleep=waits.append)
    assert (done.ok, done.attempts, done.statuses, waits) == (True, 3, [503, 429, 200],
                                                              [0.5, 1.0])
    httpserver.clear()
    httpserver.expect_request("/r", method="POST").respond_with_data("no", status=400)
    done = deliver(channel, alert, config, sleep=waits.append)
    assert (done.ok, done.attempts) == (False, 1) and "HTTP 400" in (done.error or "")


def test_a_receiver_that_never_answers_times_out(httpserver: HTTPServer) -> None:
    release = threading.Event()

    def stuck(request: object) -> str:
        release.wait(10)  # answers only after the client gave up
        return "late"

    httpserver.expect_request("/slow").respond_with_handler(stuck)  # type: ignore[arg-type]
    channel = Channel("webhook", "w", url=httpserver.url_for("/slow"))
    config = AlertConfig((channel,), timeout=0.3, retries=0, backoff=0)
    done = deliver(channel, Alert("violations", "p", "fail", "b", "d", "t", ()), config)
    release.set()
    assert not done.ok and "no answer" in (done.error or "")
    deadline = time.monotonic() + 10  # let the handler finish before the server is cleared
    while not httpserver.log and time.monotonic() < deadline:
        time.sleep(0.01)


def test_slack_and_teams_get_their_own_formats_and_no_secret(
        small_project: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    httpserver.expect_request(f"/services/{TOKEN}", method="POST").respond_with_data("ok")
    httpserver.expect_request("/teams/" + TOKEN, method="POST").respond_with_data("1")
    monkeypatch.setenv("MLWARD_TEST_SLACK", httpserver.url_for(f"/services/{TOKEN}"))
    monkeypatch.setenv("MLWARD_TEST_TEAMS", httpserver.url_for(f"/teams/{TOKEN}"))
    configure(small_project, '[[alerts.slack]]\nurl_env = "MLWARD_TEST_SLACK"\n'
              '[[alerts.teams]]\nurl_env = "MLWARD_TEST_TEAMS"\n')
    assert main_gate_verbose() == 1
    slack, teams = bodies(httpserver)
    assert slack["text"] == "mlward gate FAIL: 1 violation(s) in proj"
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "context"]
    assert "[critical] no-critical-findings: MW101 evil.pkl" in slack["blocks"][1]["text"]["text"]
    [attachment] = teams["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][1]["facts"] == [
        {"title": "no-critical-findings", "value": "[critical] MW101 evil.pkl"}]
    err = capsys.readouterr().err
    stored = json.dumps([e.to_json() for e in _all_entries(small_project)])
    for text in (json.dumps(slack), json.dumps(teams), err, stored):
        assert TOKEN not in text  # the webhook URL is a secret: never echoed or recorded


def main_gate_verbose() -> int:
    from mlward.cli.main import main

    return main(["gate", "--executor", "inline"])


def _all_entries(project: Path) -> list:
    with open_ledger(project=project) as ledger:
        return [ledger.entry(i) for i in range(ledger.size())]


def test_email_goes_over_starttls(small_project: Path,
                                  smtp_server: tuple[int, Path, Inbox]) -> None:
    port, cert, inbox = smtp_server
    configure(small_project, f'[[alerts.email]]\nhost = "127.0.0.1"\nport = {port}\n'
              f'cafile = "{cert}"\nsender = "mlward@example.com"\n'
              'to = ["security@example.com", "ml@example.com"]\n')
    assert gate() == 1
    [(message, over_tls, rcpt)] = inbox.messages
    assert over_tls and rcpt == ["security@example.com", "ml@example.com"]
    assert message["Subject"] == "mlward gate FAIL: 1 violation(s) in proj"
    body = message.get_payload()
    assert "[critical] no-critical-findings: MW101 evil.pkl" in body
    assert "How to fix:" in body and "posix.system" not in body  # no finding evidence


def test_email_is_never_sent_in_clear_to_a_server_without_starttls(
        small_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aiosmtpd.controller import Controller

    from .conftest import free_port

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        configure(small_project, f'[[alerts.email]]\nhost = "127.0.0.1"\nport = {port}\n'
                  'sender = "m@example.com"\nto = "s@example.com"\n')
        assert gate() == 1
    finally:
        controller.stop()
    assert inbox.messages == []
    assert "does not offer STARTTLS" in capsys.readouterr().err


@pytest.mark.parametrize(("table", "env", "message"), [
    ({"webhok": []}, {}, "unknown key(s) in [alerts]: webhok"),
    ({"webhook": [{"url": "ftp://x"}]}, {}, "url (or url_env) must give an http(s) URL"),
    ({"slack": [{"url_env": "NOPE"}]}, {}, "url_env names NOPE, which is not set"),
    ({"webhook": [{"url": "http://h", "secret": "x"}]}, {}, "unknown key(s) secret"),
    ({"email": [{"host": "h", "sender": "a@b"}]}, {}, "to must be an address"),
    ({"email": [{"host": "h", "sender": "a@b", "to": "c@d", "port": 0}]}, {},
     "port must be a TCP port number"),
    ({"retries": -1}, {}, "retries must be a whole number"),
    ({"webhook": [{"url": "http://h"}, {"url": "http://i", "name": "webhook"}]}, {},
     "alert channel names must differ (webhook)"),
])
def test_alert_settings_are_checked(table: dict, env: dict, message: str) -> None:
    with pytest.raises(UsageError) as exc:
        alert_config(table, origin="mlward.toml", env=env)
    assert message in str(exc.value) and str(exc.value).startswith("mlward.toml")


def test_a_bad_alerts_table_stops_the_gate_before_any_check(
        small_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure(small_project, '[[alerts.webhook]]\nurl_env = "MLWARD_TEST_UNSET"\n')
    assert gate() == 2
    assert "url_env names MLWARD_TEST_UNSET, which is not set" in capsys.readouterr().err
    assert ledger_events(small_project, "gate.run") == []


def test_items_carry_no_finding_text() -> None:
    item = Item("r", "high", "T", "MW401 config.py", "f" * 32, "fix", "config.py")
    body = Alert("violations", "p", "fail", "b", "d", "t", (item,)).to_dict()
    assert set(body["items"][0]) == {"rule", "severity", "title", "subject", "fingerprint",
                                     "remediation", "location"}
