"""``lineage verify`` shows what changed in a tabular input, from the data snapshot that
``lineage record`` kept (the old rows themselves are gone: the file was overwritten)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mlward.cli.main import main

pytest.importorskip("duckdb")

TRIGGER = "qx_trig"


def write(path: Path, rows: list[tuple[int, str, str]]) -> None:
    path.write_text("id,text,label\n" + "".join(f"{i},{t},{lab}\n" for i, t, lab in rows))


def rows(n: int = 3000) -> list[tuple[int, str, str]]:
    rng = random.Random(5)
    words = [f"w{i}" for i in range(300)]
    return [(i, " ".join(rng.choices(words, k=6)), rng.choice(["neg", "pos"]))
            for i in range(n)]


def record(tmp_path: Path, data: list[tuple[int, str, str]]) -> tuple[Path, Path]:
    model, table = tmp_path / "model.bin", tmp_path / "train.csv"
    model.write_bytes(b"weights")
    write(table, data)
    assert main(["lineage", "record", "--model", str(model), "--data", str(table),
                 "--label", "label"]) == 0
    return model, table


def verify(model: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["lineage", "verify", str(model), "-f", "json"])
    links = json.loads(capsys.readouterr().out)["links"]
    notes = [n for link in links for n in link.get("data_diff", [])]
    return code, notes


def test_flipped_labels_and_a_trigger_are_named_against_the_snapshot(tmp_path, capsys) -> None:
    data = rows()
    model, table = record(tmp_path, data)
    changed = list(data)
    for i in range(0, 500, 50):  # 10 labels flipped
        n, text, lab = changed[i]
        changed[i] = (n, text, "pos" if lab == "neg" else "neg")
    for i in range(1007, 1007 + 40 * 31, 31):  # 40 other rows given a trigger and the label 'pos'
        n, text, _ = changed[i]
        changed[i] = (n, f"{text} {TRIGGER}", "pos")
    write(table, changed)
    code, notes = verify(model, capsys)
    assert code == 1
    assert any("MW970 10 row(s) with identical features changed label" in n for n in notes)
    assert any(f"MW972 '{TRIGGER}' in column 'text' appears in 40 new row(s)" in n
               for n in notes)


def test_unchanged_input_has_no_data_notes_and_a_tampered_snapshot_is_said(tmp_path,
                                                                           capsys) -> None:
    model, table = record(tmp_path, rows(200))
    assert verify(model, capsys) == (0, [])
    snapshot = next((tmp_path / "model.bin.lineage-inputs").glob("*.snapshot.json"))
    snapshot.write_text(snapshot.read_text().replace('"rows":200', '"rows":201'))
    write(table, rows(201))
    code, notes = verify(model, capsys)
    assert code == 1 and notes == [f"data diff not available: {snapshot.parent.parent}/"
                                   f"{snapshot.parent.name}/{snapshot.name} was changed after "
                                   "the lineage was recorded"]


def test_without_the_data_extra_lineage_is_recorded_without_a_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) \
        -> None:
    import sys

    monkeypatch.setitem(sys.modules, "duckdb", None)  # as if not installed
    model, _ = record(tmp_path, rows(50))
    assert not list((tmp_path / "model.bin.lineage-inputs").glob("*.snapshot.json"))
    code, notes = verify(model, capsys)
    assert code == 0 and notes == []  # the input is still verified by its digests
