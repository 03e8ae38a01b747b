"""Pickles and code hidden as base64 or hex text: in JSON and YAML configs, safetensors
metadata, ONNX metadata.

A loader that reads such a value and unpickles it (``pickle.loads(base64.b64decode(...))``)
runs whatever the pickle holds, and a scanner that reads the value as text sees only
letters. Every run of base64 (standard or URL-safe, line-wrapped or not, JSON escapes
allowed) or hex digits long enough to hold a payload is decoded, and the bytes are judged
when they are a pickle, a compressed stream or archive (dispatched to the scan engine, which
judges their content), or a marshalled Python code object (its names listed, as for a Keras
Lambda).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Iterator

from mlward._internal.scanners.interface import ScanContext
from mlward._internal.sources import Source
from mlward.errors import FormatError
from mlward.findings import Location, Severity
from mlward.rules import ENCODED_PAYLOAD

MIN_CHARS = 24
"""Shortest run decoded: 18 bytes of base64, 12 of hex; less than the smallest pickle that
imports anything."""
MAX_RUNS = 10_000
"""Runs that start like a payload, judged per text; past this the text is inconclusive."""
MAX_DECODED = 64 << 20

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-\\"
_MASK = bytes(0x41 if b in _ALPHABET else 0x20 for b in range(256))
"""Base64 characters (both alphabets, and the backslash of JSON's escapes) to ``A``, the rest
to a space: runs are then found with ``bytes.find`` at C speed, whatever the text's size."""
_PIECE = b"A" * 16
_WRAP = re.compile(rb"\r?\n[ \t]*")
_NOISE = re.compile(rb"\\[nr]|\\|\s")
_HEX = re.compile(rb"[0-9a-fA-F]+")
# First bytes a payload can start with: PROTO (protocols 2-5), the usual first opcodes of
# protocols 0 and 1 (GLOBAL, MARK, empty containers, strings), marshalled code (with and
# without the reference flag), and the compressed formats the engine unpacks.
_STARTS = (b"\x80", b"c", b"(", b"]", b"}", b")", b"X", b"\x8c", b"V", b"S", b"\xe3",
           b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"PK\x03\x04", b"\x04\x22\x4d\x18")


def _runs(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of base64 or hex text of 16 characters or more, followed
    across the line breaks of wrapped output."""
    mask = data.translate(_MASK)
    pos = 0
    while (start := mask.find(_PIECE, pos)) >= 0:
        end = mask.find(b" ", start)
        end = len(mask) if end < 0 else end
        while (wrap := _WRAP.match(data, end)) and mask[wrap.end():wrap.end() + 1] == b"A":
            following = mask.find(b" ", wrap.end())
            end = len(mask) if following < 0 else following
        yield start, end
        pos = end


def decoded_runs(data: bytes) -> Iterator[tuple[int, str, bytes]]:
    """(offset in ``data``, encoding, bytes) for each run of encoded text whose bytes could
    be a payload (they start like one). Decoding is lenient, as ``b64decode`` is by default:
    a payload cut by a stray character still yields its head."""
    for start, end in _runs(data):
        head = _NOISE.sub(b"", data[start:start + 64])
        if not (_plausible(head, hexed=True) or _plausible(head, hexed=False)):
            continue
        raw = _NOISE.sub(b"", data[start:end])
        if len(raw) < MIN_CHARS:
            continue
        if _HEX.fullmatch(raw) and len(raw) % 2 == 0:
            decoded, encoding = bytes.fromhex(raw.decode()), "hex"
        else:
            decoded, encoding = _b64(raw[: MAX_DECODED * 4 // 3], _altchars(raw)), "base64"
        if decoded.startswith(_STARTS):
            yield start, encoding, decoded


def _altchars(raw: bytes) -> bytes | None:
    return b"-_" if (b"-" in raw or b"_" in raw) else None


def _plausible(head: bytes, *, hexed: bool) -> bool:
    """Whether the first characters of a run decode to bytes a payload starts with."""
    if hexed:
        digits = _HEX.match(head)
        first = digits.group()[:16] if digits else b""
        return len(first) >= 2 and bytes.fromhex(first[: len(first) // 2 * 2].decode()
                                                 ).startswith(_STARTS)
    return _b64(head[:8], _altchars(head)).startswith(_STARTS)


def _b64(text: bytes, altchars: bytes | None) -> bytes:
    """Lenient base64: a stray last character dropped, missing padding added."""
    text = text[: len(text) - len(text) % 4] if len(text) % 4 == 1 else text
    try:
        return base64.b64decode(text + b"=" * (-len(text) % 4), altchars=altchars)
    except (binascii.Error, ValueError):
        return b""


def report_encoded(text: str, location: Location, ctx: ScanContext, where: str,
                   key: str = "") -> None:
    """Judge every encoded payload in ``text`` (found in ``where``, e.g. "metadata value
    'x'", under ``key`` when it has one): a finding for the hiding, and the decoded bytes
    judged by content, as a member named after the key or line."""
    from mlward._internal.scanners.pickle import looks_like_pickle
    from mlward._internal.sources.archives import sniff_stream

    raw = text.encode("utf-8", "replace")
    for count, (offset, encoding, data) in enumerate(decoded_runs(raw)):
        if count == MAX_RUNS:
            ctx.skip(location, f"{where}: more than {MAX_RUNS} encoded strings that could be "
                     "payloads; the rest not decoded", inconclusive=True)
            return
        prefix = f"{key}: " if key else ""
        if "\n" in text:
            line = raw.count(b"\n", 0, offset) + 1
            at, name = location.at(line=line), f"[{prefix}{encoding} at line {line}]"
        else:
            at, name = location, f"[{prefix}{encoding}]"
        if data[:1] in (b"\xe3", b"c") and _report_code(data, at, ctx, where, encoding):
            continue
        pickle = looks_like_pickle(io.BytesIO(data), data[:4096], whole=True)
        if not (pickle or sniff_stream(data) or data.startswith(b"PK\x03\x04")):
            continue
        what = "a pickle" if pickle else "compressed data"
        ctx.add(ENCODED_PAYLOAD.finding(
            at, f"{where} holds {what} encoded as {encoding} ({len(data)} bytes); judged below",
            evidence=name))
        ctx.scan_child(Source.from_bytes(location.child(name), data, name=name))


def _report_code(data: bytes, at: Location, ctx: ScanContext, where: str,
                 encoding: str) -> bool:
    """Report a marshalled code object; False when the bytes are not one."""
    from mlward._internal.scanners.keras.bytecode import code_names
    from mlward._internal.scanners.keras.config import DANGEROUS_CODE_NAMES

    try:
        names = code_names(data)
    except (FormatError, ValueError):
        return False
    used = list(dict.fromkeys(names.names))
    dangerous = DANGEROUS_CODE_NAMES.intersection(used + names.strings)
    ctx.add(ENCODED_PAYLOAD.finding(
        at, f"{where} holds Python bytecode encoded as {encoding}, using: "
        f"{', '.join(used[:20]) or 'no global names'}", evidence=".".join(used[:8]),
        severity=Severity.CRITICAL if dangerous else Severity.HIGH,
        details={"names": used[:200], "strings": [s[:200] for s in names.strings[:50]]}))
    return True
