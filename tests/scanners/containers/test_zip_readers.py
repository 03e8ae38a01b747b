"""Zips read the way every reader reads them: Python's zipfile, PyTorch's reader (miniz: the
central directory at the offset the end record states, CRCs unchecked, names unchecked) and a
walk of the local headers (streaming readers). Where they disagree, every interpretation is
judged and the disagreement is a high finding; data outside the members is judged too.

Every archive here is written field by field (``raw_zip``) so that its headers can lie.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from containers_util import RawMember, eocd, evil_pickle, high, raw_zip, rules, scan_one, verdict

import mlward
from mlward.findings import Report, Severity, Verdict
from mlward.settings import Limits, Settings


def _evil_at(report: Report) -> list[tuple[str, ...]]:
    """The member paths of the findings that name os.system."""
    return [f.location.members for f in report.findings
            if f.rule_id == "MW101" and f.evidence and "system" in f.evidence]


def _disagree(report: Report) -> list[str]:
    return [f.message for f in report.findings if f.rule_id == "MW257"
            and f.severity >= Severity.HIGH]


def _write(tmp_path: Path, data: bytes, name: str = "m.zip") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- what one reader refuses, another reads -------------------------------------------------


def test_member_with_an_empty_name_is_judged(tmp_path: Path, marker: Path) -> None:
    path = _write(tmp_path, raw_zip([RawMember("", evil_pickle(marker))]))
    report = scan_one(path)
    assert "MW001" not in rules(report)
    assert _evil_at(report)
    assert verdict(report, path) is Verdict.DANGEROUS
    assert not marker.exists()


def test_local_name_differs_from_central_name(tmp_path: Path, marker: Path) -> None:
    """zipfile refuses the member (names differ); PyTorch's reader and streaming readers
    read it."""
    member = RawMember("weights.bin", evil_pickle(marker), local={"name": b"payload.pkl"})
    path = _write(tmp_path, raw_zip([member]))
    report = scan_one(path)
    assert _disagree(report), high(report)
    assert _evil_at(report)
    assert not marker.exists()


def test_member_only_in_the_local_headers(tmp_path: Path, marker: Path) -> None:
    hidden = RawMember("hidden.pkl", evil_pickle(marker), listed=False)
    path = _write(tmp_path, raw_zip([hidden, RawMember("readme.txt", b"hello\n")]))
    report = scan_one(path)
    assert _disagree(report), high(report)
    assert ("hidden.pkl",) in _evil_at(report)


def test_local_sizes_disagree_with_central_sizes(tmp_path: Path, marker: Path) -> None:
    """The central directory says the member is empty; its local header (what a streaming
    reader follows) says it holds the payload."""
    member = RawMember("model.pkl", evil_pickle(marker),
                       central={"csize": 0, "usize": 0, "crc": 0})
    path = _write(tmp_path, raw_zip([member]))
    report = scan_one(path)
    assert _disagree(report), high(report)
    assert _evil_at(report)


def test_method_differs_between_headers(tmp_path: Path, marker: Path) -> None:
    payload = evil_pickle(marker)
    member = RawMember("model.pkl", payload, method=8, central={"method": 0})
    path = _write(tmp_path, raw_zip([member]))
    report = scan_one(path)
    assert _disagree(report), high(report)
    assert _evil_at(report)


def test_python_and_pytorch_read_different_central_directories(tmp_path: Path,
                                                              marker: Path) -> None:
    """Python's zipfile reads the directory just before the end record and shifts its
    offsets by the bytes in front; PyTorch's reader (miniz) reads the directory at the offset
    the end record states. Here each finds its own directory, and only PyTorch's names the
    payload."""
    name = "archive/data.pkl"
    evil = RawMember(name, evil_pickle(marker) + b"\x00" * 64)  # longer than the benign one
    local_evil = evil.local_bytes()
    dir_a = evil.central_bytes(offset=0)
    benign = RawMember(name, b"\x80\x02}q\x00.")
    local_benign = benign.local_bytes()
    dir_b_offset = len(local_evil) + len(dir_a) + len(local_benign)
    concat = dir_b_offset - len(local_evil)  # what zipfile adds to dir B's offsets
    dir_b = benign.central_bytes(offset=len(local_evil) + len(dir_a) - concat)
    assert len(dir_a) == len(dir_b)
    data = local_evil + dir_a + local_benign + dir_b + eocd(1, len(dir_b), len(local_evil))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:  # the test's premise: Python sees benign
        assert zf.read(name) == b"\x80\x02}q\x00."
    path = _write(tmp_path, data, "model.pt")
    report = scan_one(path)
    assert _disagree(report), high(report)
    assert _evil_at(report)
    assert not marker.exists()


def test_encryption_flag_on_plain_data(tmp_path: Path, marker: Path) -> None:
    """The flag makes zipfile (and scanners built on it) give up; the bytes are plain."""
    path = _write(tmp_path, raw_zip([RawMember("model.pkl", evil_pickle(marker), flags=1)]))
    report = scan_one(path)
    assert _disagree(report), high(report)
    assert _evil_at(report)


def test_encryption_flag_only_in_the_local_header(tmp_path: Path, marker: Path) -> None:
    member = RawMember("model.pkl", evil_pickle(marker), local={"flags": 1})
    path = _write(tmp_path, raw_zip([member]))
    report = scan_one(path)
    assert _disagree(report), high(report)
    assert _evil_at(report)


def test_really_encrypted_member_stays_inconclusive(tmp_path: Path) -> None:
    noise = bytes((i * 97 + 13) % 256 for i in range(300))
    member = RawMember("secret.bin", noise, flags=1, stored=b"\x9f" * 12 + noise,
                       central={"crc": 0x12345678}, local={"crc": 0x12345678})
    path = _write(tmp_path, raw_zip([member]))
    report = scan_one(path)
    assert verdict(report, path) is Verdict.INCONCLUSIVE


# -- data outside the members ---------------------------------------------------------------


def test_payload_between_members(tmp_path: Path, marker: Path) -> None:
    members = [RawMember("a.txt", b"first\n"), RawMember("b.txt", b"second\n")]
    path = _write(tmp_path, raw_zip(members, gaps={1: evil_pickle(marker)}))
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None  # zipfile sees a sound archive
    report = scan_one(path)
    assert "MW258" in rules(report)
    assert _evil_at(report)
    assert verdict(report, path) is Verdict.DANGEROUS


def test_payload_before_the_first_member(tmp_path: Path, marker: Path) -> None:
    """A pickle, then a zip whose offsets count from the file's start (``zip -A``): torch.load
    sees a pickle (no zip magic at byte 0), zipfile sees the zip; both are judged."""
    other = marker.with_name("OTHER_MARKER")
    data = raw_zip([RawMember("inner.pkl", evil_pickle(other))], prefix=evil_pickle(marker))
    path = _write(tmp_path, data, "model.bin")
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["inner.pkl"]
    report = scan_one(path)
    evil = _evil_at(report)
    assert ("inner.pkl",) in evil, high(report)
    assert any(m and m[0] != "inner.pkl" for m in evil), evil  # the prefix, as a blob
    assert "MW258" in rules(report)
    assert not marker.exists() and not other.exists()


def test_prefixed_zip_with_relative_offsets(tmp_path: Path, marker: Path) -> None:
    """Offsets relative to the zip's own start: zipfile shifts them, miniz does not (it reads
    the prefix where it expects the directory): the readers disagree."""
    data = raw_zip([RawMember("inner.pkl", evil_pickle(marker))], prefix=b"#!/bin/sh\n" * 8,
                   relative=True)
    path = _write(tmp_path, data, "model.bin")
    report = scan_one(path)
    assert _disagree(report), high(report)
    assert _evil_at(report)


# -- flags, descriptors and duplicates that are not disagreements ----------------------------


class _Unseekable(io.RawIOBase):
    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def]
        self.buf += b
        return len(b)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_data_descriptors_are_followed_without_a_disagreement(tmp_path: Path, marker: Path,
                                                              method: int) -> None:
    out = _Unseekable()
    with zipfile.ZipFile(out, "w", method) as zf:  # unseekable: sizes go in descriptors
        for name, data in [("a.txt", b"hello\n" * 50), ("m.pkl", evil_pickle(marker)),
                           ("z.txt", b"bye\n")]:
            with zf.open(name, "w") as f:
                f.write(data)
    path = _write(tmp_path, bytes(out.buf))
    report = scan_one(path)
    assert not _disagree(report) and "MW258" not in rules(report), high(report)
    assert ("m.pkl",) in _evil_at(report)


def test_ordinary_zips_raise_no_reader_findings(tmp_path: Path) -> None:
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                   zipfile.ZIP_LZMA):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", method) as zf:
            zf.writestr("dir/", b"")
            zf.writestr("dir/a.txt", b"hello " * 1000)
            zf.writestr("b.json", b'{"a": 1}')
            zf.comment = b"a comment"
        path = _write(tmp_path, buf.getvalue(), f"ok{method}.zip")
        report = scan_one(path)
        assert not report.findings, [f.message for f in report.findings]
        assert verdict(report, path) is Verdict.CLEAN


def test_duplicate_names_with_different_content_are_high(tmp_path: Path, marker: Path) -> None:
    path = _write(tmp_path, raw_zip([RawMember("data.pkl", b"\x80\x02}q\x00."),
                                     RawMember("data.pkl", evil_pickle(marker))]))
    report = scan_one(path)
    dup = [f for f in report.findings if f.rule_id == "MW256"]
    assert dup and dup[0].severity is Severity.HIGH


def test_names_equal_but_for_case_are_duplicates(tmp_path: Path, marker: Path) -> None:
    """PyTorch's reader looks names up without regard to case: either copy may load."""
    path = _write(tmp_path, raw_zip([RawMember("archive/data.pkl", b"\x80\x02}q\x00."),
                                     RawMember("archive/DATA.pkl", evil_pickle(marker))]))
    report = scan_one(path)
    assert "MW256" in rules(report)
    assert _evil_at(report)


# -- damage (issue 13.4) --------------------------------------------------------------------


def test_crc_mismatch_is_never_a_pass(tmp_path: Path) -> None:
    """Python's zipfile refuses the member, PyTorch's reader does not check CRCs: the
    mismatch is a high finding, the bytes are judged."""
    member = RawMember("notes.txt", b"just some text\n", central={"crc": 0xDEADBEEF},
                       local={"crc": 0xDEADBEEF})
    path = _write(tmp_path, raw_zip([member]))
    report = scan_one(path)
    assert report.exit_code(Severity.HIGH) != 0
    assert any(f.rule_id == "MW250" and f.severity >= Severity.HIGH for f in report.findings)


def test_truncated_member_reports_the_payload_before_the_cut(tmp_path: Path,
                                                             marker: Path) -> None:
    payload = evil_pickle(marker)
    data = raw_zip([RawMember("m.pkl", payload + b"\x00" * 2000)])
    cut = 30 + len("m.pkl") + len(payload) + 100  # inside the member, after the payload
    path = _write(tmp_path, data[:cut])
    report = scan_one(path)
    assert _evil_at(report)
    assert report.inconclusive
    assert report.exit_code(Severity.HIGH) != 0


# -- nested bombs (issue 13.8) --------------------------------------------------------------


def _nested(leaf: bytes, width: int, levels: int) -> bytes:
    """42.zip's shape: ``width`` copies of the (deflated) leaf, then ``levels - 1`` layers
    of ``width`` copies of the layer below."""
    stored = RawMember("leaf", leaf, method=8).stored  # compressed once
    data = raw_zip([RawMember(f"leaf{i}.bin", leaf, method=8, stored=stored)
                    for i in range(width)])
    for _ in range(levels - 1):
        data = raw_zip([RawMember(f"z{i}.zip", data, method=8) for i in range(width)])
    return data


def test_nested_zip_bomb_is_a_finding(tmp_path: Path) -> None:
    """Each layer small, each leaf under the per-member bomb size: only one budget across
    the layers catches it (16^4 leaves of 16 MiB from a few kilobytes)."""
    path = _write(tmp_path, _nested(bytes(16 << 20), 16, 4), "42.zip")
    assert path.stat().st_size < 1 << 20
    report = scan_one(path)
    assert "MW251" in rules(report), [s.reason for s in report.skipped][:5]
    assert verdict(report, path) is Verdict.DANGEROUS


def test_nested_member_budget_is_shared_and_earlier_members_are_judged(
        tmp_path: Path, marker: Path) -> None:
    inner = raw_zip([RawMember("evil.pkl", evil_pickle(marker))]
                    + [RawMember(f"f{i}.txt", b"x") for i in range(15)])
    data = raw_zip([RawMember(f"a{i}.zip", inner, method=8) for i in range(16)])
    for _ in range(2):
        data = raw_zip([RawMember(f"b{i}.zip", data, method=8) for i in range(16)])
    path = _write(tmp_path, data, "many.zip")
    settings = Settings(limits=Limits(max_members=2000))
    report = mlward.scan([path], settings=settings)
    bombs = [f for f in report.findings if f.rule_id == "MW251"]
    assert bombs, [s.reason for s in report.skipped][:5]
    assert _evil_at(report)  # judged before the budget ran out
    assert not marker.exists()


# -- readers agree on ordinary archives, whatever wrote them -----------------------------------


def test_stored_member_crc_checked_by_every_view(tmp_path: Path) -> None:
    data = raw_zip([RawMember("a.bin", bytes(range(256)))])
    assert zlib.crc32(bytes(range(256))) == struct.unpack("<I", data[14:18])[0]
    report = scan_one(_write(tmp_path, data))
    assert not report.findings
