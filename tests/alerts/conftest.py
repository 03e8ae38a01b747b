"""Real receivers on 127.0.0.1 for the alert tests: HTTP (pytest-httpserver) and an SMTP
server with STARTTLS (aiosmtpd), its certificate made here with ``cryptography``."""

from __future__ import annotations

import datetime
import ipaddress
import pickle
import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from mlward._internal.ledger import init_project
from mlward.cli.main import main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made now (never committed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Inbox:
    """An aiosmtpd handler keeping what it received (and whether it came over TLS)."""

    def __init__(self) -> None:
        self.messages: list[tuple[Message, bool, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((message_from_bytes(envelope.content), session.ssl is not None,
                              list(envelope.rcpt_tos)))
        return "250 OK"


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[int, Path, Inbox]]:
    """An SMTP server on 127.0.0.1 that refuses mail before STARTTLS."""
    from aiosmtpd.controller import Controller

    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True)
    controller.start()
    try:
        yield port, cert, inbox
    finally:
        controller.stop()


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def small_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: Path) -> Path:
    """A project with a ledger and one critical problem (a pickle that would run code)."""
    for var in ("MLWARD_TRUST", "MLWARD_DB", "MLWARD_VULN_DB"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "proj"
    root.mkdir()
    (root / "evil.pkl").write_bytes(pickle.dumps(Evil(marker)))
    (root / "notes.txt").write_text("nothing here\n")
    init_project(root).close()
    with (root / ".mlward" / "mlward.toml").open("a") as f:
        f.write('\n[gate]\npolicy = "baseline"\nchecks = ["scan"]\n')
    monkeypatch.chdir(root)
    return root


def gate(*argv: str) -> int:
    return main(["gate", "--executor", "inline", "-q", *argv])


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver listens on 127.0.0.1 (an ephemeral port), not every interface."""
    return ("127.0.0.1", 0)
