"""``looks_like_text``, asked by most sniffers of every file, decodes once: it must say
exactly what its definition says (no NUL, and valid UTF-8 once at most three bytes are cut
from the end, where a multi-byte character may have been cut)."""

from __future__ import annotations

import random

from mlward._internal.scanners.secrets.text import looks_like_text


def _by_definition(head: bytes) -> bool:
    if b"\0" in head:
        return False
    for cut in range(4):
        try:
            head[:len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def _heads() -> list[bytes]:
    rng = random.Random(7)
    text = "naïve café — 数据 🤖 ok\n".encode() * 3
    heads = [b"", b"a", b"\xff", b"\xe2\x82", b"\xf0\x9f\xa4", text]
    heads += [text[:n] for n in range(len(text) + 1)]  # cut anywhere, mid-character too
    for _ in range(3000):
        n = rng.randrange(0, 40)
        kind = rng.randrange(3)
        if kind == 0:  # random bytes
            heads.append(rng.randbytes(n))
        else:  # text with one bad byte somewhere, near the end more often
            body = bytearray(text[:n + 8])
            at = len(body) - 1 - rng.randrange(min(6, len(body))) if kind == 1 \
                else rng.randrange(len(body))
            body[at] = rng.choice([0x80, 0xbf, 0xc0, 0xe2, 0xed, 0xf0, 0xf8, 0xff])
            heads.append(bytes(body))
    return heads


def test_one_decode_says_what_the_definition_says() -> None:
    heads = _heads()
    assert any(looks_like_text(h) for h in heads) and not all(looks_like_text(h) for h in heads)
    assert [h for h in heads if looks_like_text(h) != _by_definition(h)] == []
