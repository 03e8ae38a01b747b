"""Keys, DSSE envelopes and the trust file."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from mlward._internal.provenance import dsse, keys
from mlward._internal.provenance.errors import ProvenanceError

from .conftest import Run, run_json


def test_pae_matches_the_dsse_spec_example() -> None:
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


@pytest.mark.parametrize("kind", ["ecdsa-p256", "ed25519"])
def test_keygen_writes_a_private_key_only_its_owner_reads(run: Run, kind: str) -> None:
    code, out, _ = run("keygen", "-o", "k", "--type", kind)
    assert code == 0
    assert stat.S_IMODE(Path("k.key").stat().st_mode) == 0o600
    key = keys.load_private(Path("k.key"))
    assert keys.key_type(key) == ("ed25519" if kind == "ed25519" else "ecdsa-secp256r1")
    assert keys.key_id(keys.load_public(Path("k.pub"))) in out
    code, _, err = run("keygen", "-o", "k")
    assert code == 2 and "exists" in err


@pytest.mark.parametrize("kind", ["ecdsa-p256", "ed25519"])
def test_sign_and_verify_a_manifest(run: Run, dataset: Path, kind: str) -> None:
    run("manifest", "create", dataset, "-o", "m.json")
    run("keygen", "-o", "k", "--type", kind, "--trust", "trust.pem")
    code, out, _ = run("sign", "m.json", "-k", "k.key")
    assert code == 0 and "m.json.dsse.json" in out
    envelope = json.loads(Path("m.json.dsse.json").read_text())
    assert envelope["payloadType"] == dsse.MANIFEST_TYPE
    assert base64.b64decode(envelope["payload"]) == Path("m.json").read_bytes()
    code, result = run_json(run, "verify", "m.json", "--trust", "trust.pem")
    assert code == 0 and result["ok"]


def test_tampered_file_fails(run: Run, dataset: Path) -> None:
    run("manifest", "create", dataset, "-o", "m.json")
    run("keygen", "-o", "k", "--trust", "trust.pem")
    run("sign", "m.json", "-k", "k.key")
    text = Path("m.json").read_text()
    assert '"size":8,' in text
    Path("m.json").write_text(text.replace('"size":8,', '"size":9,'))
    code, out, _ = run("verify", "m.json", "--trust", "trust.pem")
    assert code == 1 and "not the content that was signed" in out


def test_tampered_signature_fails(run: Run, dataset: Path) -> None:
    run("manifest", "create", dataset, "-o", "m.json")
    run("keygen", "-o", "k", "--type", "ed25519", "--trust", "trust.pem")
    run("sign", "m.json", "-k", "k.key")
    envelope = json.loads(Path("m.json.dsse.json").read_text())
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[5] ^= 1
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    Path("m.json.dsse.json").write_text(json.dumps(envelope))
    code, out, _ = run("verify", "m.json", "--trust", "trust.pem")
    assert code == 1 and "signature does not match" in out


def test_swapped_payload_type_fails(run: Run, dataset: Path) -> None:
    run("manifest", "create", dataset, "-o", "m.json")
    run("keygen", "-o", "k", "--trust", "trust.pem")
    run("sign", "m.json", "-k", "k.key")
    envelope = json.loads(Path("m.json.dsse.json").read_text())
    envelope["payloadType"] = dsse.IN_TOTO_TYPE
    Path("m.json.dsse.json").write_text(json.dumps(envelope))
    assert run("verify", "m.json", "--trust", "trust.pem")[0] == 1


def test_key_not_in_the_trust_file_fails(run: Run, dataset: Path) -> None:
    run("manifest", "create", dataset, "-o", "m.json")
    run("keygen", "-o", "signer")
    run("keygen", "-o", "other", "--trust", "trust.pem")
    run("sign", "m.json", "-k", "signer.key")
    code, out, _ = run("verify", "m.json", "--trust", "trust.pem")
    assert code == 1 and "not trusted" in out
    assert run("verify", "m.json", "--key", "signer.pub")[0] == 0


def test_default_trust_file_and_its_absence(run: Run, dataset: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    run("manifest", "create", dataset, "-o", "m.json")
    run("keygen", "-o", "k")
    run("sign", "m.json", "-k", "k.key")
    code, _, err = run("verify", "m.json")
    assert code == 2 and "no trust file" in err
    run("keygen", "-o", "k", "--force", "--trust")
    assert Path(".mlward/trusted_keys.pem").exists()
    run("sign", "m.json", "-k", "k.key")
    assert run("verify", "m.json")[0] == 0
    monkeypatch.setenv("MLWARD_TRUST", "elsewhere.pem")
    assert run("verify", "m.json")[0] == 2


def test_unsigned_file_is_an_error(run: Run, dataset: Path) -> None:
    run("manifest", "create", dataset, "-o", "m.json")
    code, _, err = run("verify", "m.json", "--key", "x.pub")
    assert code == 2 and "no signature" in err


@pytest.mark.parametrize("content", [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                     b"-----END PRIVATE KEY-----\n"])
def test_bad_key_files_are_clear_errors(run: Run, dataset: Path, content: bytes) -> None:
    Path("bad.key").write_bytes(content)
    run("manifest", "create", dataset, "-o", "m.json")
    code, _, err = run("sign", "m.json", "-k", "bad.key")
    assert code == 2 and "not a PEM private key" in err


def test_garbage_envelope_is_a_clear_error(tmp_path: Path) -> None:
    for content in ({}, {"payload": "!!", "payloadType": "x", "signatures": [{"sig": "AA=="}]},
                    {"payload": "", "payloadType": "x", "signatures": []}, []):
        with pytest.raises(ProvenanceError, match="not a DSSE envelope"):
            dsse.Envelope.from_dict(content)
