"""The provenance check's verdict per model: signed by a trusted key and unchanged, changed
since, signed by a key nobody trusts, unsigned; lineage verified, broken, missing."""

from __future__ import annotations

from pathlib import Path

from mlward._internal.policy.gate import _trusted, model_provenance
from mlward.cli.main import main
from mlward.settings import load_settings

from .conftest import safetensors_bytes

SIGNED = "models/signed/model.safetensors"


def statuses(project: Path, *uris: str) -> dict[str, tuple[str, str]]:
    trusted = _trusted(load_settings(start=project))
    found = model_provenance(project, uris, trusted)
    return {u: (p.signature.status, p.lineage.status) for u, p in found.items()}


def test_signed_lineage_then_the_model_changes(project: Path) -> None:
    assert statuses(project, SIGNED, "models/evil.pkl") == {
        SIGNED: ("valid", "verified"), "models/evil.pkl": ("unsigned", "missing")}
    (project / SIGNED).write_bytes(safetensors_bytes() + b"\0")
    assert statuses(project, SIGNED)[SIGNED] == ("invalid", "broken")


def test_the_data_changes_after_the_lineage_was_recorded(project: Path) -> None:
    (project / "data" / "train.csv").write_text("x,y\n1,3\n")
    # The signature still covers the unchanged model; the lineage to its data is broken.
    assert statuses(project, SIGNED)[SIGNED] == ("valid", "broken")


def test_an_oms_bundle_over_a_model_folder_covers_its_files(project: Path,
                                                            tmp_path: Path) -> None:
    key = tmp_path / "outside" / "keys" / "k.key"
    assert main(["sign", "--oms", str(project / "models" / "bert"), "-k", str(key)]) == 0
    uris = ("models/bert", "models/bert/model.safetensors")
    assert statuses(project, *uris) == dict.fromkeys(uris, ("valid", "missing"))
    (project / "models" / "bert" / "config.json").write_text('{"model_type": "gpt2"}')
    assert statuses(project, *uris) == dict.fromkeys(uris, ("invalid", "missing"))


def test_a_key_nobody_trusts_and_no_trust_file(project: Path, tmp_path: Path) -> None:
    assert main(["keygen", "-o", str(tmp_path / "stranger")]) == 0
    assert main(["sign", "--oms", str(project / "models" / "bert"), "-k",
                 str(tmp_path / "stranger.key")]) == 0
    assert statuses(project, "models/bert")["models/bert"][0] == "invalid"
    (project / ".mlward" / "trusted_keys.pem").unlink()
    assert statuses(project, "models/bert", SIGNED) == {
        "models/bert": ("unchecked", "missing"), SIGNED: ("unchecked", "verified")}
