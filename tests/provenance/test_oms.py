"""OpenSSF model signing (OMS v1.0) interop, both ways, with the model_signing package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Run, run_json

signing = pytest.importorskip("model_signing.signing")
verifying = pytest.importorskip("model_signing.verifying")


def _ms_verify(model: Path, signature: Path, public: Path) -> None:
    verifying.Config().use_elliptic_key_verifier(public_key=public).verify(model, signature)


def test_model_signing_accepts_an_mlward_bundle(run: Run, model: Path) -> None:
    run("keygen", "-o", "k")
    assert run("sign", "--oms", model, "-k", "k.key")[0] == 0
    bundle = Path(f"{model}.sig")
    doc = json.loads(bundle.read_text())
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    _ms_verify(model, bundle, Path("k.pub"))
    (model / "weights.bin").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="mismatch"):
        _ms_verify(model, bundle, Path("k.pub"))


def test_model_signing_accepts_an_mlward_bundle_inside_the_model(run: Run, model: Path) -> None:
    run("keygen", "-o", "k")
    run("sign", "--oms", model, "-k", "k.key", "-o", model / "model.sig")
    _ms_verify(model, model / "model.sig", Path("k.pub"))


def test_mlward_accepts_a_model_signing_bundle(run: Run, model: Path) -> None:
    run("keygen", "-o", "k")
    signing.Config().use_elliptic_key_signer(private_key=Path("k.key")).sign(
        model, Path("ms.sig"))
    code, result = run_json(run, "verify", model, "--signature", "ms.sig", "--key", "k.pub")
    assert code == 0 and result["links"][0]["name"] == "OMS signature"
    (model / "config.json").write_text('{"layers": 3}')
    (model / "extra.bin").write_bytes(b"new")
    code, result = run_json(run, "verify", model, "--signature", "ms.sig", "--key", "k.pub")
    assert code == 1
    assert {(c["path"], c["status"]) for c in result["links"][0]["changes"]} == {
        ("config.json", "modified"), ("extra.bin", "added")}


def test_a_bundle_from_another_key_is_refused(run: Run, model: Path) -> None:
    run("keygen", "-o", "k")
    run("keygen", "-o", "other")
    signing.Config().use_elliptic_key_signer(private_key=Path("k.key")).sign(
        model, Path("ms.sig"))
    code, out, _ = run("verify", model, "--signature", "ms.sig", "--key", "other.pub")
    assert code == 1 and "not trusted" in out


def test_a_tampered_model_signing_bundle_is_refused(run: Run, model: Path) -> None:
    run("keygen", "-o", "k")
    signing.Config().use_elliptic_key_signer(private_key=Path("k.key")).sign(
        model, Path("ms.sig"))
    doc = json.loads(Path("ms.sig").read_text())
    import base64
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "00" * 32
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    Path("ms.sig").write_text(json.dumps(doc))
    code, out, _ = run("verify", model, "--signature", "ms.sig", "--key", "k.pub")
    assert code == 1 and "signature does not match" in out


def test_oms_needs_a_nist_key(run: Run, model: Path) -> None:
    run("keygen", "-o", "k", "--type", "ed25519")
    code, _, err = run("sign", "--oms", model, "-k", "k.key")
    assert code == 2 and "ecdsa-p256" in err
