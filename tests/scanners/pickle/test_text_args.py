"""Protocol 0's text arguments are read exactly as CPython's C unpickler reads them.

``pickle.loads`` and ``pickle.load`` use ``_pickle.c``: INT goes through ``strtol`` then
``PyLong_FromString``, LONG and GET/PUT through ``PyLong_FromString``, FLOAT through
``PyOS_string_to_double``, each on the line as a C string (it ends at the first NUL); STRING is
quoted and escape-decoded, UNICODE raw-unicode-escape decoded. Each variant below is put
before a payload; the oracle (CPython itself, with nothing imported) confirms that CPython
reads past it and resolves ``os.system``, and the scan must find it too. A reader that
stopped at the variant would call the file unrecognised, or at best inconclusive.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from oracle import resolved
from pickle_payloads import evidence, scan_bytes

from mlward._internal.engine import Engine
from mlward.cli.main import main
from mlward.settings import Settings

PAYLOAD = b"cos\nsystem\n(S'id'\ntR."

# (name, opcodes that leave one value on the stack): the value is popped, the payload follows.
VALUES = [
    # INT: strtol(s, &end, 0) must stop at the newline or a NUL, else PyLong_FromString(s, 0).
    ("INT NUL after the digits", b"I1\x00junk\n"),
    ("INT empty C string", b"I\x00\n"),
    ("INT leading space", b"I 1\n"),
    ("INT leading tab and sign", b"I\t-5\n"),
    ("INT plus sign", b"I+1\n"),
    ("INT trailing space", b"I1 \n"),
    ("INT underscores", b"I1_000\n"),
    ("INT hex", b"I0x1f\n"),
    ("INT octal", b"I017\n"),
    ("INT binary", b"I0b101\n"),
    ("INT 00 is False", b"I00\n"),
    ("INT 01 is True", b"I01\n"),
    ("INT beyond 64 bits", b"I99999999999999999999\n"),
    ("INT beyond 64 bits then NUL", b"I99999999999999999999\x00x\n"),
    # LONG: one trailing L dropped, then PyLong_FromString(s, 0).
    ("LONG without L", b"L5\n"),
    ("LONG with L", b"L5L\n"),
    ("LONG leading space", b"L 5L\n"),
    ("LONG hex", b"L0x10L\n"),
    ("LONG NUL then junk", b"L5\x00junkL\n"),
    ("LONG underscores", b"L1_0\n"),
    # FLOAT: PyOS_string_to_double, which must stop at the newline or a NUL.
    ("FLOAT NUL then junk", b"F1.5\x00zz\n"),
    ("FLOAT inf", b"Finf\n"),
    ("FLOAT -Infinity", b"F-Infinity\n"),
    ("FLOAT nan", b"Fnan\n"),
    ("FLOAT no integer part", b"F.5\n"),
    ("FLOAT no fraction", b"F5.\n"),
    # STRING: quoted alike at both ends, escape-decoded; UNICODE: raw-unicode-escape.
    ("STRING with a NUL", b"S'a\x00b'\n"),
    ("STRING with an inner quote", b"S'a'b'\n"),
    ("STRING double quotes", b'S"x"\n'),
    ("STRING escapes", b"S'\\x41\\n'\n"),
    ("STRING unknown escape", b"S'\\q'\n"),
    ("UNICODE with a NUL", b"Va\x00b\n"),
    ("UNICODE escape", b"V\\u0041\n"),
    # Memo indices: PyLong_FromString(s, 10).
    ("PUT/GET spaces", b"Np 0\n0g 0\n"),
    ("PUT/GET NUL then junk", b"Np0\x00x\n0g0\x00y\n"),
    ("PUT/GET signs", b"Np+0\n0g-0\n"),
    ("PUT/GET leading zeros", b"Np007\n0g7\n"),
    ("PUT/GET underscores", b"Np1_0\n0g10\n"),
]


@pytest.mark.parametrize(("name", "value"), VALUES, ids=[v[0] for v in VALUES])
def test_cpython_reads_past_it_and_so_does_the_scan(tmp_path: Path, name: str, value: bytes):
    data = value + b"0" + PAYLOAD
    assert ("os", "system") in resolved(data), f"the sample itself: CPython stops at {name}"
    report = scan_bytes(tmp_path, data, "labels.txt")
    assert "os.system" in evidence(report, "MW101")
    assert report.inconclusive == ()
    assert main(["scan", "-q", str(tmp_path / "labels.txt")]) == 1


# Names given as text arguments, then imported by STACK_GLOBAL: the decoded value is the name.
NAMES = [
    ("STRING escapes", b"S'o\\x73'\n", b"S'sys\\x74em'\n"),
    ("STRING double quotes", b'S"os"\n', b'S"system"\n'),
    ("UNICODE escapes", b"V\\u006fs\n", b"Vsys\\u0074em\n"),
    ("from the memo through text indices", b"Vos\np 1\n0g1\x00\n", b"Vsystem\np0_2\n0g 02\n"),
]


@pytest.mark.parametrize(("name", "module", "attr"), NAMES, ids=[n[0] for n in NAMES])
def test_decoded_text_names_feed_stack_global(tmp_path: Path, name: str, module: bytes,
                                              attr: bytes):
    data = module + attr + b"\x93" + b"(S'id'\ntR."
    assert ("os", "system") in resolved(data)
    assert evidence(scan_bytes(tmp_path, data), "MW101") == {"os.system"}


@pytest.mark.parametrize("value", [
    b"I\n", b"I0x\n", b"I08\n", b"I-\n", b"L010L\n", b"L5LL\n", b"F 1.5\n", b"F1.5 \n",
    b"F1_0\n", b"F0x1p3\n", b"F1e999\n", b"S'a\"\n", b"S'\n", b"Np0x1\n", b"Np-1\n",
])
def test_what_cpython_refuses_stops_the_analysis_there(value: bytes):
    # CPython raises at this argument: the payload after it never runs, and the machine
    # reports the damage at the same place instead of reading on.
    import io

    from mlward._internal.scanners.pickle import scan_pickle_stream
    from mlward.findings import Location

    data = value + b"0" + PAYLOAD
    assert resolved(data) == set()
    ctx = Engine(Settings())
    result = scan_pickle_stream(io.BytesIO(data), Location("s"), ctx)
    assert not result.complete
    assert [f.rule_id for f in ctx.findings] == ["MW105"]
    assert ctx.findings[0].location.offset < len(value)


def test_binstring_length_is_unsigned():
    # _pickle.c reads BINSTRING's 4-byte length unsigned (pickle.py signed): \xff\xff\xff\xff
    # claims 4 GiB, which the stream does not hold; it is truncation, not a negative length.
    import io

    from mlward._internal.scanners.pickle import scan_pickle_stream
    from mlward.findings import Location

    ctx = Engine(Settings())
    data = b"T" + struct.pack("<i", -5) + b"abc."
    scan_pickle_stream(io.BytesIO(data), Location("s"), ctx)
    (f,) = ctx.findings
    assert "4294967291 bytes" in f.message and "truncated" in f.message
