"""PyTorch (zip and legacy), numpy (.npy, .npz) and joblib (every compression) files:
benign files saved by the real libraries, and payloads hidden in each."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import struct
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from containers_util import evil_pickle, high, rules, scan_one, verdict

import mlward
from mlward._internal.scanners.torch import LEGACY_MAGIC
from mlward.findings import Verdict
from mlward.settings import Settings

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
joblib = pytest.importorskip("joblib")



INLINE = Settings(executor="inline")  # for tests that change this process's modules

def _formats(report) -> set[str]:
    return {e.format for e in report.examined}


def _torch_zip(data_pkl: bytes, storage: bytes = b"\0" * 16, prefix: str = "archive") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{prefix}/data.pkl", data_pkl)
        zf.writestr(f"{prefix}/byteorder", "little")
        zf.writestr(f"{prefix}/data/0", storage)
        zf.writestr(f"{prefix}/version", "3\n")
    return buf.getvalue()


def _p(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=2)


# -- PyTorch -------------------------------------------------------------------------------


@pytest.mark.torch
def test_real_torch_zip_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(4, 4), "b": torch.zeros(4)}, path)
    report = scan_one(path)
    assert "pytorch-zip" in _formats(report)
    assert not high(report)
    assert verdict(report, path) is Verdict.CLEAN


@pytest.mark.torch
def test_real_torch_legacy_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    torch.save({"w": torch.ones(4, 4)}, path, _use_new_zipfile_serialization=False)
    report = scan_one(path)
    assert _formats(report) == {"pytorch-legacy"}
    assert not high(report)
    assert verdict(report, path) is Verdict.CLEAN


@pytest.mark.torch
def test_torch_zip_structure_and_storage_not_read(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(3)}, path)
    data = bytearray(path.read_bytes())
    storage = data.find(b"\x00\x00\x80\x3f" * 3)  # the storage bytes of ones(3)
    data[storage:storage + 4] = b"XXXX"  # the CRC no longer matches; a read would notice
    path.write_bytes(bytes(data))
    report = scan_one(path)
    assert "MW250" not in rules(report)
    assert any(e.format == "pickle" and e.location.members[-1].endswith("data.pkl")
               for e in report.examined)
    assert any("tensor storage" in s.reason and not s.inconclusive for s in report.skipped)


@pytest.mark.torch
def test_checkpoint_saved_as_data_pt_has_its_pickle_judged(tmp_path: Path) -> None:
    """torch.save names the archive after the file: data.pt holds data/data.pkl, a name
    shaped like tensor storage (``<prefix>/data/<key>``) that must still be judged."""
    path = tmp_path / "data.pt"
    torch.save({"w": torch.ones(3)}, path)
    report = scan_one(path)
    assert any(e.format == "pickle" and e.location.members == ("data/data.pkl",)
               for e in report.examined), [e.location.members for e in report.examined]


def test_payload_in_data_pt(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "data.pt"
    path.write_bytes(_torch_zip(evil_pickle(marker), prefix="data"))
    report = scan_one(path)
    assert any(f.location.members == ("data/data.pkl",) and f.rule_id == "MW101"
               for f in report.findings), high(report)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_pickle_under_a_storage_name_is_judged(tmp_path: Path, marker: Path,
                                               protocol: int) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(_torch_zip(_p({"a": 1}), storage=evil_pickle(marker, protocol)))
    report = scan_one(path)
    assert any(f.location.members == ("archive/data/0",) and f.rule_id == "MW101"
               for f in report.findings), high(report)
    assert not marker.exists()


@pytest.mark.torch
def test_real_storages_are_not_taken_for_pickles(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    tensors = {f"t{i}": torch.randn(64, generator=gen).to(dtype)
               for i, dtype in enumerate([torch.float32, torch.float16, torch.bfloat16,
                                          torch.float64] * 8)}
    tensors.update({"ints": torch.arange(300), "bytes": torch.arange(256, dtype=torch.uint8),
                    "text": torch.tensor(list(b"(lp0\nI1\naI2\na."), dtype=torch.uint8)})
    path = tmp_path / "model.pt"
    torch.save(tensors, path)
    report = scan_one(path)
    assert not report.findings, [f.message for f in report.findings]
    assert verdict(report, path) is Verdict.CLEAN


def test_big_storage_scans_fast(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "big.pt"
    path.write_bytes(_torch_zip(evil_pickle(marker), storage=bytes(64 << 20)))
    started = time.monotonic()
    report = scan_one(path)
    assert time.monotonic() - started < 1.0
    assert verdict(report, path) is Verdict.DANGEROUS


def test_payload_in_torch_data_pkl(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(_torch_zip(evil_pickle(marker)))
    report = scan_one(path)
    assert verdict(report, path) is Verdict.DANGEROUS
    assert any(f.location.members == ("archive/data.pkl",) for f in report.findings)
    assert not marker.exists()


def test_protocol_0_data_pkl_is_judged(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(_torch_zip(evil_pickle(marker, protocol=0)))
    assert verdict(scan_one(path), path) is Verdict.DANGEROUS
    assert not marker.exists()


def test_payload_in_other_torch_member(tmp_path: Path, marker: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", _p({"a": 1}))
        zf.writestr("archive/extra/hook", evil_pickle(marker))
    path = tmp_path / "model.pt"
    path.write_bytes(buf.getvalue())
    assert verdict(scan_one(path), path) is Verdict.DANGEROUS


def test_payload_in_legacy_torch_pickle(tmp_path: Path, marker: Path) -> None:
    magic = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC + b"."
    stream = (magic + _p(1001) + _p({"protocol_version": 1001, "little_endian": True})
              + evil_pickle(marker) + _p(["0"]) + b"\x03\x00\x00\x00\x00\x00\x00\x00"
              + bytes(12))
    path = tmp_path / "legacy.pth"
    path.write_bytes(stream)
    report = scan_one(path)
    assert _formats(report) == {"pytorch-legacy"}
    assert verdict(report, path) is Verdict.DANGEROUS
    assert not marker.exists()


# -- numpy ---------------------------------------------------------------------------------


def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()


def test_real_numpy_files(tmp_path: Path) -> None:
    np.save(tmp_path / "plain.npy", np.arange(10.0))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, [2, 3]], dtype=object))
    np.savez(tmp_path / "arrays.npz", x=np.arange(3), y=np.ones((2, 2)))
    np.savez_compressed(tmp_path / "packed.npz", x=np.arange(1000))
    report = scan_one(tmp_path)
    assert not high(report)
    assert set(report.verdicts().values()) == {Verdict.CLEAN}


def test_numpy_structure(tmp_path: Path) -> None:
    np.save(tmp_path / "plain.npy", np.arange(10.0))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    np.savez_compressed(tmp_path / "packed.npz", x=np.arange(1000))
    formats = _formats(scan_one(tmp_path))
    assert {"numpy-npy", "numpy-npy (object array: pickle)", "numpy-npz"} <= formats


def test_payload_in_npy_object_array(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "emb.npy"
    path.write_bytes(_npy_header("'|O'", (1,)) + evil_pickle(marker, protocol=3))
    report = scan_one(path)
    assert verdict(report, path) is Verdict.DANGEROUS
    assert not marker.exists()


def test_payload_in_npz_member(tmp_path: Path, marker: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.npy", _npy_header("'<f8'", (2,)) + bytes(16))
        zf.writestr("bad.npy", _npy_header("[('x', '|O')]", (1,))
                    + evil_pickle(marker, protocol=3))
    path = tmp_path / "arrays.npz"
    path.write_bytes(buf.getvalue())
    report = scan_one(path)
    assert "numpy-npz" in _formats(report)
    assert verdict(report, path) is Verdict.DANGEROUS
    assert not marker.exists()


def test_npy_header_claiming_gigabytes(tmp_path: Path) -> None:
    path = tmp_path / "huge.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFFFF) + b"{'descr'")
    report = scan_one(path)
    assert verdict(report, path) is Verdict.INCONCLUSIVE
    assert "MW001" not in rules(report)


# -- joblib --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [None, "zlib", "gzip", "bz2", "lzma", "xz", "lz4"])
def test_real_joblib_dumps(tmp_path: Path, method: str | None) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump({"coef": np.arange(5.0), "name": "m"}, path,
                compress=(method, 3) if method else 0)
    report = scan_one(path)
    assert not high(report)
    assert verdict(report, path) is Verdict.CLEAN


@pytest.mark.parametrize("method", ["zlib", "gzip", "bz2", "lzma", "xz", "lz4"])
def test_joblib_compressed_is_decompressed(tmp_path: Path, method: str) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump({"coef": np.arange(5.0)}, path, compress=(method, 3))
    report = scan_one(path)
    assert method in _formats(report)
    assert any(e.location.members for e in report.examined)


@pytest.mark.parametrize("compress", [zlib.compress, gzip.compress, bz2.compress,
                                      lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
                                      lzma.compress],
                         ids=["zlib", "gzip", "bz2", "lzma", "xz"])
def test_payload_in_compressed_joblib(tmp_path: Path, marker: Path, compress) -> None:
    path = tmp_path / "clf.joblib"
    path.write_bytes(compress(evil_pickle(marker, protocol=4)))
    assert verdict(scan_one(path), path) is Verdict.DANGEROUS
    assert not marker.exists()


# -- the tar-based format --------------------------------------------------------------------


def _g(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def _torch_tar(storages: bytes) -> bytes:
    args = b"\x80\x02(X\x02\x00\x00\x00t0X\x01\x00\x00\x000" + _g("torch", "FloatTensor") + b"t."
    tensors = (_p(1) + args + struct.pack("<ii", 1, 0) + struct.pack("<qqq", 3, 1, 0))
    members = {
        "sys_info": _p({"protocol_version": 1001, "little_endian": True}),
        "pickle": b"\x80\x02}X\x01\x00\x00\x00wX\x02\x00\x00\x00t0Qs.",
        "tensors": tensors,
        "storages": storages,
    }
    buf = io.BytesIO()
    import tarfile

    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _storage_record(key: str, numel: int) -> bytes:
    k = key.encode()
    return (b"\x80\x02(X" + struct.pack("<I", len(k)) + k + b"X\x03\x00\x00\x00cpu"
            + _g("torch", "FloatStorage") + b"t." + struct.pack("<q", numel) + bytes(4 * numel))


def test_torch_tar_format_is_followed_record_by_record(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    path.write_bytes(_torch_tar(_p(2) + _storage_record("0", 3) + _storage_record("1", 5)
                                + _p([])))
    report = scan_one(path)
    assert "pytorch-tar" in _formats(report)
    assert not report.inconclusive, report.inconclusive
    assert not [f for f in report.findings if f.rule_id.startswith("MW2")]


def test_payload_between_torch_tar_storages(tmp_path: Path, marker: Path) -> None:
    """The payload sits after the first storage's raw bytes: only a reader that follows the
    records as torch does reaches it."""
    path = tmp_path / "old.pt"
    storages = (_p(2) + _storage_record("0", 3) + evil_pickle(marker)
                + struct.pack("<q", 1) + bytes(4) + _p([]))
    path.write_bytes(_torch_tar(storages))
    report = scan_one(path)
    assert verdict(report, path) is Verdict.DANGEROUS
    assert any(f.location.members == ("storages",) and f.evidence and "system" in f.evidence
               for f in report.findings)
    assert not marker.exists()


def test_torch_tar_storage_overrunning_the_member(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    storages = _p(1) + _storage_record("0", 3)[:-12] + struct.pack("<q", 1 << 60)
    path.write_bytes(_torch_tar(storages))
    report = scan_one(path)
    assert "MW001" not in rules(report)


class _Unseekable(io.RawIOBase):
    """An output stream zipfile cannot seek back in: it then writes data descriptors after
    each member and zero sizes in the local headers, as torch's writer does."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.data += b
        return len(b)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_truncated_checkpoint_is_recovered_from_local_headers(tmp_path: Path, marker: Path,
                                                              method: int) -> None:
    """A cut download has no zip directory; the members before the cut are still judged."""
    out = _Unseekable()
    with zipfile.ZipFile(out, "w", method) as zf:
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/data.pkl", evil_pickle(marker))
        zf.writestr("archive/data/0", bytes(range(256)) * 64)
    assert out.data[6] & 0x08  # data descriptors, as in real checkpoints
    path = tmp_path / "cut.pt"
    path.write_bytes(bytes(out.data[: len(out.data) * 2 // 3]))
    report = scan_one(path)
    assert "MW250" in rules(report)
    assert any(f.location.members == ("archive/data.pkl",) and f.evidence
               and "os.system" in f.evidence for f in report.findings), high(report)
    assert verdict(report, path) is Verdict.DANGEROUS
    assert not marker.exists()


def test_npy_header_nested_absurdly_deep(tmp_path: Path) -> None:
    path = tmp_path / "deep.npy"
    header = b"{'descr': " + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header)
    report = scan_one(path)
    assert verdict(report, path) is Verdict.INCONCLUSIVE
    assert "MW001" not in rules(report)


def test_payload_in_lz4_joblib(tmp_path: Path, marker: Path) -> None:
    lz4_frame = pytest.importorskip("lz4.frame")
    path = tmp_path / "clf.joblib"
    path.write_bytes(lz4_frame.compress(evil_pickle(marker, protocol=4)))
    assert verdict(scan_one(path), path) is Verdict.DANGEROUS
    assert not marker.exists()


def test_lz4_without_the_extra_is_inconclusive_with_hint(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    lz4_frame = pytest.importorskip("lz4.frame")
    path = tmp_path / "clf.joblib"
    path.write_bytes(lz4_frame.compress(_p({"a": 1})))
    monkeypatch.setitem(sys.modules, "lz4", None)
    report = mlward.scan([path], settings=INLINE)
    assert verdict(report, path) is Verdict.INCONCLUSIVE
    assert any("mlward[archives]" in s.reason for s in report.inconclusive)


def test_torch_metadata_records_are_known_and_a_payload_under_their_name_is_not(
        tmp_path, marker):
    """``version``/``byteorder`` records are recognised without the text scanner; a pickle
    hidden under such a name is still scanned by content."""
    import io
    import zipfile

    import mlward

    good = tmp_path / "good.pt"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/byteorder", b"little")
        z.writestr("archive/version", b"3\n")
        z.writestr("archive/.data/serialization_id", b"1234567890123456789")
    report = mlward.scan([good])
    formats = [e.format for e in report.examined]
    assert formats.count("pytorch-metadata") == 3
    assert "text" not in formats
    assert report.exit_code(mlward.Severity.INFO) == 0

    bad = tmp_path / "bad.pt"
    payload = b"cposix\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/version", payload)
    bad.write_bytes(buf.getvalue())
    report = mlward.scan([bad])
    assert [(f.rule_id, f.evidence, f.location.members) for f in report.findings
            if f.severity >= mlward.Severity.HIGH] == [
        ("MW101", "posix.system", ("archive/version",))]
    assert not marker.exists()
