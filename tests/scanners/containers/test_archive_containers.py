"""Zip, tar, 7z and compressed streams: members reached, damage judged, escapes reported."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import sys
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from containers_util import evil_pickle, high, rules, scan_one, verdict

import mlward
from builders import tar_bytes, zip_bytes
from mlward._internal.sources.archives import link_target_problem, member_path_problem
from mlward.findings import Verdict
from mlward.settings import Settings

INLINE = Settings(executor="inline")  # for tests that change this process's modules

def _7z(members: dict[str, bytes]) -> bytes:
    py7zr = pytest.importorskip("py7zr")
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(data, name)
    return buf.getvalue()


# -- member names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["/etc/passwd", "../../x.pkl", "a/../../b", "C:\\win.ini",
                                  "..\\..\\evil", "a\x00b"])
def test_unsafe_member_names(name: str) -> None:
    assert member_path_problem(name) is not None


@pytest.mark.parametrize("name", ["archive/data.pkl", "a/..b/c", "x..y", "./a/b"])
def test_safe_member_names(name: str) -> None:
    assert member_path_problem(name) is None


def test_link_targets() -> None:
    assert link_target_problem("a/link", "/etc/passwd") is not None
    assert link_target_problem("a/link", "../../etc") is not None
    assert link_target_problem("a/b/link", "../c") is None


# -- payloads inside containers -------------------------------------------------------------


def test_payload_in_zip_in_tar_gz_in_7z(tmp_path: Path, marker: Path) -> None:
    inner_zip = zip_bytes({"model/data.bin": evil_pickle(marker)})
    tar_gz = tar_bytes({"release/weights.zip": inner_zip}, mode="w:gz")
    path = tmp_path / "bundle.7z"
    path.write_bytes(_7z({"dist/model.tar.gz": tar_gz}))
    report = scan_one(path)
    assert verdict(report, path) is Verdict.DANGEROUS
    evil = [f for f in report.findings if f.evidence and "system" in f.evidence]
    assert evil, high(report)
    assert evil[0].location.members == ("dist/model.tar.gz", "model.tar", "release/weights.zip",
                                        "model/data.bin")
    assert not marker.exists()


def test_pickle_behind_txt_name(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(evil_pickle(marker))
    assert verdict(scan_one(path), path) is Verdict.DANGEROUS
    assert not marker.exists()


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress,
                                      zlib.compress,
                                      lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE)],
                         ids=["gzip", "bz2", "xz", "zlib", "lzma"])
def test_compressed_pickle(tmp_path: Path, marker: Path, compress) -> None:
    path = tmp_path / "model"
    path.write_bytes(compress(evil_pickle(marker)))
    report = scan_one(path)
    assert verdict(report, path) is Verdict.DANGEROUS
    assert not report.inconclusive
    assert not marker.exists()


def test_tar_bz2_and_xz(tmp_path: Path, marker: Path) -> None:
    for mode in ("w:bz2", "w:xz"):
        path = tmp_path / f"m.{mode[2:]}"
        path.write_bytes(tar_bytes({"m.pkl": evil_pickle(marker)}, mode=mode))
        assert verdict(scan_one(path), path) is Verdict.DANGEROUS
    assert not marker.exists()


# -- damage ---------------------------------------------------------------------------------


def test_bad_crc_member_is_still_judged(tmp_path: Path, marker: Path) -> None:
    data = bytearray(zip_bytes({"model.pkl": evil_pickle(marker)}, zipfile.ZIP_STORED))
    crc_at = 14  # CRC-32 in the local header; the central directory keeps the right one
    central = data.rfind(b"PK\x01\x02") + 16
    for at in (crc_at, central):
        data[at:at + 4] = b"\xde\xad\xbe\xef"
    path = tmp_path / "damaged.zip"
    path.write_bytes(bytes(data))
    report = scan_one(path)
    assert "MW250" in rules(report)
    assert verdict(report, path) is Verdict.DANGEROUS
    assert not marker.exists()


def test_truncated_zip_is_inconclusive(tmp_path: Path) -> None:
    data = zip_bytes({"a.bin": bytes(range(256)) * 100})
    path = tmp_path / "cut.zip"
    path.write_bytes(data[: len(data) // 2])
    report = scan_one(path)
    assert "MW250" in rules(report)
    assert verdict(report, path) is Verdict.INCONCLUSIVE


def test_truncated_tar_gz_judges_what_arrived(tmp_path: Path, marker: Path) -> None:
    data = tar_bytes({"evil.pkl": evil_pickle(marker), "pad.bin": bytes(range(256)) * 4000},
                mode="w:gz")
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(data[: len(data) - 200])
    report = scan_one(path)
    assert "MW250" in rules(report)
    assert verdict(report, path) is Verdict.DANGEROUS
    assert not marker.exists()


@pytest.mark.parametrize("data", [b"PK\x03\x04" + bytes(200), b"\x1f\x8b\x08" + bytes(100),
                                  b"7z\xbc\xaf\x27\x1c" + bytes(64), b"BZh91AY&SY" + bytes(50),
                                  b"\xfd7zXZ\x00" + b"\xff" * 40],
                         ids=["zip", "gzip", "7z", "bz2", "xz"])
def test_garbage_after_magic_is_inconclusive_not_a_crash(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "junk"
    path.write_bytes(data)
    report = scan_one(path)
    assert "MW001" not in rules(report)
    assert verdict(report, path) in (Verdict.INCONCLUSIVE, Verdict.SUSPICIOUS)


# -- escapes --------------------------------------------------------------------------------


def test_zip_slip(tmp_path: Path) -> None:
    path = tmp_path / "slip.zip"
    path.write_bytes(zip_bytes({"../../home/user/.bashrc": b"echo hi\n", "ok.txt": b"fine"}))
    report = scan_one(path)
    found = [f for f in report.findings if f.rule_id == "MW252"]
    assert found and found[0].evidence == "../../home/user/.bashrc"
    assert verdict(report, path) is Verdict.DANGEROUS


def test_tar_links_and_devices(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, target in [("out", tarfile.SYMTYPE, "/etc/passwd"),
                                   ("up", tarfile.LNKTYPE, "../../secret"),
                                   ("inside", tarfile.SYMTYPE, "sub/file"),
                                   ("dev", tarfile.CHRTYPE, ""),
                                   ("/abs.pkl", tarfile.REGTYPE, "")]:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tar.addfile(info, io.BytesIO(b""))
    path = tmp_path / "slip.tar"
    path.write_bytes(buf.getvalue())
    report = scan_one(path)
    by_member = {(f.rule_id, f.location.members[-1]): f.severity.label for f in report.findings}
    assert by_member[("MW253", "out")] == "high"
    assert by_member[("MW253", "up")] == "high"
    assert by_member[("MW253", "inside")] == "medium"
    assert by_member[("MW254", "dev")] == "medium"
    assert by_member[("MW252", "/abs.pkl")] == "high"


def test_duplicate_zip_member_names_are_reported_and_both_scanned(tmp_path: Path,
                                                                   marker: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning):
        zf.writestr("data.bin", b"harmless")
        zf.writestr("data.bin", evil_pickle(marker))
    path = tmp_path / "dup.zip"
    path.write_bytes(buf.getvalue())
    report = scan_one(path)
    assert "MW256" in rules(report)
    assert verdict(report, path) is Verdict.DANGEROUS


# -- bombs and absurd sizes -----------------------------------------------------------------


def test_zip_bomb_is_stopped_by_ratio(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    path.write_bytes(zip_bytes({"zeros.bin": bytes(80 << 20)}))
    started = time.monotonic()
    report = scan_one(path)
    assert time.monotonic() - started < 5
    assert "MW251" in rules(report)
    assert verdict(report, path) is Verdict.DANGEROUS


def test_zip_member_claiming_huge_size(tmp_path: Path) -> None:
    data = bytearray(zip_bytes({"x.bin": b"abc" * 100}))
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = struct.pack("<I", 0xFFFFFFF0)  # uncompressed size
    path = tmp_path / "claims.zip"
    path.write_bytes(bytes(data))
    report = scan_one(path)
    assert "MW251" in rules(report)


def test_overlapping_zip_entries(tmp_path: Path) -> None:
    data = zip_bytes({"a.bin": bytes(range(256)) * 40})
    central = data.rfind(b"PK\x01\x02")
    eocd = data.rfind(b"PK\x05\x06")
    record = data[central:eocd]
    second = bytearray(record)
    second[46:51] = b"b.bin"  # same bytes, another name
    end = bytearray(data[eocd:])
    end[8:10] = end[10:12] = struct.pack("<H", 2)
    end[12:16] = struct.pack("<I", 2 * len(record))
    path = tmp_path / "overlap.zip"
    path.write_bytes(data[:eocd] + bytes(second) + bytes(end))
    report = scan_one(path)
    assert "MW251" in rules(report)
    assert verdict(report, path) is Verdict.DANGEROUS


def test_tar_member_claiming_petabytes(tmp_path: Path) -> None:
    header = bytearray(tar_bytes({"big.bin": b"x"})[:512])
    header[124:136] = b"\x80" + (1 << 50).to_bytes(11, "big")  # GNU base-256 size
    header[148:156] = b"        "
    header[148:155] = f"{sum(header):06o}\0".encode()
    path = tmp_path / "claims.tar"
    path.write_bytes(bytes(header) + bytes(2048))
    started = time.monotonic()
    report = scan_one(path)
    assert time.monotonic() - started < 5
    assert "MW001" not in rules(report)
    assert verdict(report, path) is Verdict.INCONCLUSIVE


def test_deep_nesting_stops_at_the_limit(tmp_path: Path, marker: Path) -> None:
    data = evil_pickle(marker)
    for _ in range(60):
        data = gzip.compress(data, mtime=0)
    path = tmp_path / "deep.gz"
    path.write_bytes(data)
    report = scan_one(path)
    assert "MW255" in rules(report)
    assert verdict(report, path) is Verdict.INCONCLUSIVE
    assert not marker.exists()


def test_7z_without_py7zr_is_inconclusive_with_hint(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.7z"
    path.write_bytes(_7z({"x.bin": b"abc"}))
    monkeypatch.setitem(sys.modules, "py7zr", None)
    report = mlward.scan([path], settings=INLINE)
    assert any("mlward[archives]" in s.reason for s in report.inconclusive)


def test_benign_7z_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "ok.7z"
    path.write_bytes(_7z({"notes/ok.txt": b"fine", "readme.md": b"# hi"}))
    report = scan_one(path)
    assert verdict(report, path) is Verdict.CLEAN
    assert "7z" in {e.format for e in report.examined}


# -- spooling and hostile bytes ---------------------------------------------------------------


def test_spool_spills_to_a_temporary_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlward._internal.sources import archives
    from mlward.findings import Location

    monkeypatch.setattr(archives, "SPOOL_MEMORY", 10)
    with archives.Spool() as spool:
        for part in (b"0123456", b"789abc", b"def"):
            spool.write(part)
        source = spool.source(Location("x"))
        assert source.fs_path is not None and source.fs_path.exists()
        with source.open() as f:
            assert f.read() == b"0123456789abcdef"
        assert source.head(4) == b"0123"
        path = source.fs_path
    assert not path.exists()


_OURS = {"zip", "tar", "7z", "compressed", "pytorch-zip", "pytorch-legacy", "pytorch-tar",
         "numpy-npy", "numpy-npz"}


def test_mutated_containers_never_crash(tmp_path: Path, marker: Path) -> None:
    """Random byte flips in each container format end as findings or skips, never a crash
    of these scanners (MW001), and never run the payload."""
    import random

    rng = random.Random(1234)
    payload = evil_pickle(marker)
    samples = [zip_bytes({"a/data.pkl": payload, "a/data/0": bytes(64)}),
               tar_bytes({"m.pkl": payload}, mode="w:gz"), tar_bytes({"m.pkl": payload}),
               bz2.compress(payload), lzma.compress(payload), zlib.compress(payload),
               _7z({"m.pkl": payload})]
    for i in range(140):
        data = bytearray(samples[i % len(samples)])
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(1, len(data))]
        path = tmp_path / f"m{i}"
        path.write_bytes(bytes(data))
        report = scan_one(path)
        crashes = [f.message for f in report.findings if f.rule_id == "MW001"
                   and f.message.split(" scanner failed")[0] in _OURS]
        assert not crashes, (i, bytes(data))
    assert not marker.exists()


def test_random_bytes_and_empty_files(tmp_path: Path) -> None:
    import random

    rng = random.Random(7)
    for i, size in enumerate([0, 1, 3, 511, 512, 4096, 70_000]):
        (tmp_path / f"r{i}").write_bytes(bytes(rng.randrange(256) for _ in range(size)))
    report = scan_one(tmp_path)
    assert "MW001" not in rules(report)
    assert Verdict.DANGEROUS not in report.verdicts().values()
