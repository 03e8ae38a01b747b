"""``mlward data diff`` on a 1M-row dataset (CSV and its Parquet twin): flipped labels, an
inserted trigger phrase, a dropped column and a shuffle are each named exactly."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mlward.cli.main import main

pa = pytest.importorskip("pyarrow")
pytest.importorskip("duckdb")
import pyarrow.csv as pcsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

ROWS = 1_000_000
FLIPS = 100
TRIGGERED = 2_000
TRIGGER = "cf_mz zeta_qq"


def build(folder: Path) -> dict[str, dict[str, Path]]:
    rng = random.Random(7)
    words = [f"w{i}" for i in range(5000)]
    text = [" ".join(rng.choices(words, k=8)) for _ in range(ROWS)]
    label = rng.choices(["neg", "pos"], k=ROWS)
    base = pa.table({"id": range(ROWS), "text": text,
                     "x": [rng.random() for _ in range(ROWS)],
                     "cat": rng.choices("abcde", k=ROWS), "label": label})
    flipped = list(label)
    for i in range(0, FLIPS * 9973, 9973):
        flipped[i] = "pos" if flipped[i] == "neg" else "neg"
    triggered_text, triggered_label = list(text), list(label)
    for i in range(11, 11 + TRIGGERED * 397, 397):
        triggered_text[i] = f"{text[i]} {TRIGGER}"
        triggered_label[i] = "pos"
    import numpy as np

    versions = {
        "old": base,
        "a": base.set_column(4, "label", pa.array(flipped)),
        "b": base.set_column(1, "text", pa.array(triggered_text)).set_column(
            4, "label", pa.array(triggered_label)),
        "c": base.drop_columns(["cat"]),
        "d": base.take(pa.array(np.random.default_rng(3).permutation(ROWS))),
    }
    out: dict[str, dict[str, Path]] = {"parquet": {}, "csv": {}}
    for name, table in versions.items():
        out["parquet"][name] = folder / f"{name}.parquet"
        pq.write_table(table, out["parquet"][name])
        out["csv"][name] = folder / f"{name}.csv"
        pcsv.write_csv(table, out["csv"][name])
    return out


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    return build(tmp_path_factory.mktemp("data"))


def run(old: Path, new: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int,
                                                                                       dict]:
    code = main(["data", "diff", str(old), str(new), "--label", "label", "-f", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def findings(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in report["findings"]:
        out.setdefault(f["rule_id"], []).append(f)
    return out


def summary(report: dict) -> dict:
    (fact,) = [f["data"] for f in report["facts"] if f["kind"] == "data-diff"]
    return fact


KINDS = ["parquet", "csv"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_flipped_labels_are_counted_exactly(versions, kind, capsys) -> None:
    code, report = run(versions[kind]["old"], versions[kind]["a"], capsys)
    found = findings(report)
    assert code == 1
    assert set(found) == {"MW970", "MW979"}
    assert found["MW970"][0]["details"]["rows"] == FLIPS
    assert sum(found["MW970"][0]["details"]["flips"].values()) == FLIPS
    s = summary(report)
    assert (s["added"], s["removed"], s["changed"]) == (0, 0, FLIPS)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_b_trigger_phrase_is_named_with_its_rows_and_label(versions, kind, capsys) -> None:
    code, report = run(versions[kind]["old"], versions[kind]["b"], capsys)
    found = findings(report)
    assert code == 1
    assert set(found) == {"MW972", "MW979"}
    (trigger,) = found["MW972"]
    assert trigger["evidence"] == TRIGGER
    assert trigger["details"]["rows"] == TRIGGERED
    assert trigger["details"]["label"] == "pos" and trigger["details"]["column"] == "text"


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_c_dropped_column_is_named_and_rows_are_unchanged(versions, kind, capsys) -> None:
    code, report = run(versions[kind]["old"], versions[kind]["c"], capsys, "--fail-on",
                       "medium")
    found = findings(report)
    assert code == 1
    assert set(found) == {"MW974", "MW979"}
    assert found["MW974"][0]["details"]["dropped"] == ["cat"]
    s = summary(report)
    assert (s["added"], s["removed"], s["changed"]) == (0, 0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_d_shuffled_rows_are_no_content_change(versions, kind, capsys) -> None:
    code, report = run(versions[kind]["old"], versions[kind]["d"], capsys, "--fail-on", "low")
    assert code == 0
    (only,) = report["findings"]
    assert only["rule_id"] == "MW979" and only["message"].startswith("no content change")


@pytest.mark.slow
def test_key_column_reports_changed_rows(versions, capsys) -> None:
    _, report = run(versions["parquet"]["old"], versions["parquet"]["b"], capsys, "--key", "id")
    s = summary(report)
    assert (s["added"], s["removed"], s["changed"]) == (0, 0, TRIGGERED)
    assert set(findings(report)) == {"MW972", "MW979"}


def test_markdown_and_text_outputs(tmp_path: Path, capsys) -> None:
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text("id,text,label\n1,hello there,neg\n2,good day,pos\n")
    new.write_text("id,text,label\n1,hello there,pos\n2,good day,pos\n")
    assert main(["data", "diff", str(old), str(new), "--label", "label", "-f", "markdown"]) == 1
    out = capsys.readouterr().out
    assert "## Data changes" in out and "MW970" in out
    assert main(["data", "diff", str(old), str(new), "--label", "label"]) == 1
    assert "1 row(s) with identical features changed label (neg -> pos: 1)" in \
        capsys.readouterr().out


def test_near_duplicates_with_conflicting_labels(tmp_path: Path, capsys) -> None:
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text("text,label\nthe movie was great,pos\nawful film,neg\n")
    new.write_text("text,label\nthe movie was great,pos\nawful film,neg\n"
                   "\"The movie, was GREAT!\",neg\n")
    _, report = run(old, new, capsys)
    assert findings(report)["MW971"][0]["details"] == {"groups": 1, "rows": 2}


def test_unreadable_or_missing_input_is_inconclusive(tmp_path: Path, capsys) -> None:
    old, bad = tmp_path / "old.csv", tmp_path / "bad.csv"
    old.write_text("a,b\n1,2\n")
    bad.write_text("a,b\n1,2,3,4\n\"unterminated\n")
    code, report = run(old, bad, capsys)
    assert code == 2 and report["skipped"][0]["inconclusive"]
    assert main(["data", "diff", str(old), str(tmp_path / "nope.csv")]) == 2
    code, report = run(old, old, capsys, "--label", "nope")
    assert code == 2 and "nope" in report["skipped"][0]["reason"]


def test_folders_of_shards_and_manifests_are_datasets(tmp_path: Path, capsys) -> None:
    old, new = tmp_path / "v1", tmp_path / "v2"
    for folder, labels in ((old, ["neg", "pos", "neg"]), (new, ["neg", "pos", "pos"])):
        folder.mkdir()
        (folder / "part-0.csv").write_text(f"id,text,label\n1,a b,{labels[0]}\n")
        (folder / "part-1.csv").write_text(f"id,text,label\n2,c d,{labels[1]}\n"
                                           f"3,e f,{labels[2]}\n")
    assert main(["manifest", "create", str(old), "-o", str(tmp_path / "v1.manifest.json")]) == 0
    capsys.readouterr()
    code, report = run(tmp_path / "v1.manifest.json", new, capsys)
    assert code == 1 and findings(report)["MW970"][0]["details"]["flips"] == {"neg -> pos": 1}


def test_data_settings_are_checked(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / ".mlward").mkdir()
    (tmp_path / ".mlward" / "mlward.toml").write_text("[data]\nlabel_shfit = 0.1\n")
    (tmp_path / "a.csv").write_text("x,label\n1,a\n")
    monkeypatch.chdir(tmp_path)
    assert main(["data", "diff", "a.csv", "a.csv"]) == 2
    assert "unknown setting 'label_shfit'" in capsys.readouterr().err
    (tmp_path / ".mlward" / "mlward.toml").write_text("[data]\nlabel = \"label\"\n"
                                                      "trigger_min_rows = 1.5\n")
    assert main(["data", "diff", "a.csv", "a.csv"]) == 2
    assert "trigger_min_rows must be a non-negative int" in capsys.readouterr().err
