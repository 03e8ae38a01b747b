"""Hostile dataset metadata: absurd lengths, deep nesting, offsets outside the buffer, bombs.
Each ends as a finding or an inconclusive skip, in bounded time, never a traceback."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
from tests.conftest import INLINE

import mlward
from mlward._internal.scanners.datasets.flatbuf import FlatBufferError, root
from mlward._internal.scanners.datasets.thrift import ThriftError, read_struct


def parquet_with_footer(path: Path, footer: bytes) -> Path:
    path.write_bytes(b"PAR1" + footer + struct.pack("<I", len(footer)) + b"PAR1")
    return path


@pytest.mark.parametrize("footer", [
    b"\x19" * 100_000,                       # lists inside lists, 100k deep
    b"\x59\xf9\xff\xff\xff\x0f",             # a list claiming 4 billion elements
    b"\x58\xff\xff\xff\xff\x0f",             # a string claiming 4 GiB
    b"\x5c" * 50 + b"\x00" * 10,             # structs nested 50 deep
    b"\x1d",                                 # an unknown type
], ids=["deep-lists", "huge-list", "huge-string", "deep-structs", "bad-type"])
def test_hostile_parquet_footers_are_malformed_not_crashes(tmp_path: Path,
                                                           footer: bytes) -> None:
    with pytest.raises(ThriftError):
        read_struct(footer)
    report = mlward.scan([parquet_with_footer(tmp_path / "t.parquet", footer)], settings=INLINE)
    assert {f.rule_id for f in report.findings} == {"MW953"} and report.inconclusive


@pytest.mark.parametrize("buf", [
    b"\xff\xff\xff\x7f" + b"\x00" * 12,      # root offset past the end
    struct.pack("<Ii", 4, -1000) + b"\x00" * 8,  # vtable before the buffer
    struct.pack("<IHHi", 8, 200, 8, 4),      # vtable claims 200 bytes of 12
])
def test_flatbuffer_offsets_outside_the_buffer_are_refused(buf: bytes) -> None:
    with pytest.raises((FlatBufferError, struct.error)):
        root(buf).tables(1)


def test_arrow_stream_with_garbage_schema_is_not_claimed_or_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "t.arrows"
    path.write_bytes(b"\xff\xff\xff\xff" + struct.pack("<i", 64) + b"\x01" * 64)
    report = mlward.scan([path], settings=INLINE)
    assert not any(f.rule_id.startswith("MW1") for f in report.findings)


def test_zip_bomb_inside_a_workbook_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (300 << 20))
    report = mlward.scan([path], settings=INLINE)
    assert "MW251" in {f.rule_id for f in report.findings}
    assert report.inconclusive


def test_oversized_csv_is_checked_on_its_first_part_and_inconclusive(tmp_path: Path,
                                                                     monkeypatch) -> None:
    from mlward._internal.scanners.datasets import tabular

    monkeypatch.setattr(tabular, "MAX_TABLE_BYTES", 1000)
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "1,2\n" * 1000 + "3,\"=cmd|' /C calc'!A0\"\n")
    report = mlward.scan([path], settings=INLINE)
    assert report.inconclusive and "only the first" in report.inconclusive[0].reason
    assert "MW961" not in {f.rule_id for f in report.findings}
