"""``sniff_tar``, asked of every file of 512 bytes or more, rules out a non-tar by its header
checksum without importing tarfile: whatever it rules out, tarfile must reject too, and every
real tar header (any format, names and sizes that make bytes above 127) must still pass."""

from __future__ import annotations

import io
import random
import tarfile

from mlward._internal.sources.archives import _tar_checksum_may_match, sniff_tar


def _tarfile_accepts(head: bytes) -> bool:
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


def _real_headers() -> list[bytes]:
    heads = []
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        for name in ("a.txt", "données/é.bin", "x" * 90, "ü" * 40):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.uname = 3, 0o644, "ñ"
                tar.addfile(info, io.BytesIO(b"abc"))
            heads.append(buf.getvalue()[:1024])
    # Some old tar writers summed the header as signed bytes; tarfile accepts either sum.
    for head in list(heads):
        block = bytearray(head[:512])
        if any(b > 127 for b in block):
            block[148:156] = b" " * 8
            signed = sum(b - 256 if b > 127 else b for b in block)
            block[148:156] = b"%06o\0 " % signed
            heads.append(bytes(block) + head[512:])
    return heads


def _heads() -> list[bytes]:
    rng = random.Random(11)
    real = _real_headers()
    heads = [bytes(512), b" " * 512, b"\xff" * 512, *real]
    for _ in range(3000):
        kind = rng.randrange(3)
        if kind == 0:
            heads.append(rng.randbytes(512))
        else:  # a real header with one byte changed: its checksum no longer adds up, or does
            body = bytearray(rng.choice(real)[:512])
            at = rng.randrange(148, 156) if kind == 1 else rng.randrange(512)
            body[at] = rng.randrange(256)
            heads.append(bytes(body))
    return heads


def test_real_tar_headers_pass() -> None:
    for head in _real_headers():
        assert _tar_checksum_may_match(head) and sniff_tar(head)


def test_what_the_checksum_rules_out_tarfile_rejects() -> None:
    heads = _heads()
    ruled_out = [h for h in heads if not _tar_checksum_may_match(h)]
    assert len(ruled_out) > 1000  # the check decides most files on its own
    assert [h for h in ruled_out if _tarfile_accepts(h)] == []
    # and sniff_tar still says what tarfile says
    assert [h for h in heads if sniff_tar(h) != _tarfile_accepts(h)] == []
