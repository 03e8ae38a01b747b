"""Hostile input ends as a finding or an inconclusive skip, in bounded time and memory."""

from __future__ import annotations

import io
import pickle
import random
import struct
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pickle_payloads import by_rule, call, const, evidence, rules, scan_bytes

import mlward
from mlward._internal.engine import Engine
from mlward._internal.scanners.interface import Limits
from mlward._internal.scanners.pickle import scan_pickle_stream
from mlward.findings import Location
from mlward.settings import Settings

HUGE = 2**60


class _Unseekable(io.RawIOBase):
    """A pipe-like stream: no size, no seeking."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self._inner.read(len(b))
        b[:len(data)] = data
        return len(data)


def _stream(data: bytes, *, seekable: bool = True, limits: Limits | None = None):
    ctx = Engine(Settings(limits=limits or Limits()))
    stream = io.BytesIO(data) if seekable else io.BufferedReader(_Unseekable(data))
    result = scan_pickle_stream(stream, Location("s"), ctx)  # type: ignore[arg-type]
    return ctx, result


def _no_crash(report: mlward.Report) -> None:
    assert "MW001" not in rules(report), [f.message for f in report.findings]


def test_empty_file_is_skipped(tmp_path: Path):
    report = scan_bytes(tmp_path, b"")
    assert report.findings == ()
    assert [s.reason for s in report.skipped] == ["empty file"]


def test_empty_stream_is_malformed():
    ctx, result = _stream(b"")
    assert not result.complete and result.pickles == 0
    assert [f.rule_id for f in ctx.findings] == ["MW105"]


@pytest.mark.parametrize("seed", range(40))
def test_random_bytes(tmp_path: Path, seed: int):
    rng = random.Random(seed)
    data = bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 7, 300, 5000])))
    if seed % 2:
        data = b"\x80\x04" + data  # make the pickle scanner take it
    started = time.monotonic()
    report = scan_bytes(tmp_path, data)
    assert time.monotonic() - started < 10
    _no_crash(report)


@pytest.mark.parametrize("seed", range(30))
def test_mutated_real_pickles(tmp_path: Path, seed: int):
    import collections

    rng = random.Random(seed)
    base = bytearray(pickle.dumps(
        {"w": [1.5, 2, "x"], "o": collections.OrderedDict(a=(1, 2)), "s": {1}}, protocol=seed % 6))
    for _ in range(rng.randint(1, 4)):
        base[rng.randrange(2, len(base))] = rng.getrandbits(8)
    ctx, result = _stream(bytes(base))
    assert result.complete or any(s.inconclusive for s in ctx.skipped)


@pytest.mark.parametrize("depth", [100_000, 150_000])
def test_deep_nesting_marks(tmp_path: Path, depth: int):
    report = scan_bytes(tmp_path, b"\x80\x02" + b"(" * depth + b")" + b"t" * depth + b".")
    _no_crash(report)
    if depth > Limits().max_stack_depth:
        assert report.inconclusive
        assert "nested MARK" in report.inconclusive[0].reason


def test_deep_nesting_of_containers(tmp_path: Path):
    # 150,000 lists, each appended into the one below: containers inside containers.
    depth = 150_000
    report = scan_bytes(tmp_path, b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b".")
    _no_crash(report)
    assert report.inconclusive and "nesting deeper" in report.inconclusive[0].reason


def test_nesting_within_the_limit_is_followed(tmp_path: Path):
    depth = 60_000
    report = scan_bytes(tmp_path, b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b".")
    assert report.findings == () and report.inconclusive == ()


@pytest.mark.parametrize(("opens", "closes"), [
    (b"(", b"l"),  # LIST
    (b"(", b"t"),  # TUPLE
    (b"](", b"e"),  # APPENDS
    (b"\x8f(", b"\x90"),  # ADDITEMS
    (b"(", b"1N"),  # POP_MARK (then a value for the POP below)
])
def test_a_long_flat_frame_then_a_payload(tmp_path: Path, opens: bytes, closes: bytes):
    # 300,000 items after one MARK are not nesting: the payload after them is judged.
    data = (b"\x80\x04" + opens + b"K\x07" * 300_000 + closes + b"0"
            + call("os", "system", "id")[2:])
    report = scan_bytes(tmp_path, data)
    assert evidence(report, "MW101") == {"os.system"}
    assert report.inconclusive == ()


def test_a_long_flat_dict_keeps_its_pairs_counted(tmp_path: Path):
    pairs = b"K\x01K\x02" * 150_000
    ok = b"\x80\x04(" + pairs + b"d0" + call("os", "system", "id")[2:]
    report = scan_bytes(tmp_path, ok)
    assert evidence(report, "MW101") == {"os.system"} and report.inconclusive == ()
    odd = b"\x80\x04(" + pairs + b"K\x01d."  # CPython refuses an odd count
    assert "odd number of items" in by_rule(scan_bytes(tmp_path, odd), "MW105")[0].message


def test_a_long_flat_frame_is_counted_not_kept():
    # A million 2-character strings after one MARK (cut before the LIST, so the frame is
    # still open when the stream ends): the frame keeps a few thousand symbols, counts the rest.
    from mlward._internal.scanners.pickle.machine import FOLD_AT, Machine, Malformed, Run
    from mlward._internal.scanners.pickle.reader import Reader

    data = b"\x80\x04(" + b"\x8c\x02ab" * 1_000_000
    machine = Machine(Reader(io.BytesIO(data)), Limits())
    with pytest.raises(Malformed):
        machine.run()
    frame = machine.stack
    assert len(frame) <= FOLD_AT + 256
    head = frame[0]
    assert type(head) is Run and head.count + len(frame) - 1 == 1_000_000


def test_memo_values_beyond_the_kept_number_are_forgotten(monkeypatch: pytest.MonkeyPatch):
    # Past MEMO_KEEP values the memo keeps keys only; a name read back from one of those is
    # unknown, and importing it is a limit, not a guess.
    from mlward._internal.scanners.pickle import machine

    monkeypatch.setattr(machine, "MEMO_KEEP", 300)
    filler = b"".join(const(f"s{i}") + b"\x94" + b"0" for i in range(600))
    data = b"\x80\x04" + filler + const("os") + b"\x94" + b"0" + b"h\x00" + b"j" + \
        (600).to_bytes(4, "little") + b"\x93."
    ctx, result = _stream(data)
    assert not result.complete
    assert any("memo value not kept" in s.reason for s in ctx.skipped if s.inconclusive)


def test_deeply_nested_real_pickle_within_limits(tmp_path: Path):
    value: list[object] = []
    for _ in range(200):
        value = [value]
    report = scan_bytes(tmp_path, pickle.dumps(value, protocol=4))
    assert report.findings == () and report.inconclusive == ()


@pytest.mark.parametrize(("opcode", "width"), [
    (b"\x8d", "<Q"),  # BINUNICODE8
    (b"\x8e", "<Q"),  # BINBYTES8
    (b"\x96", "<Q"),  # BYTEARRAY8
    (b"\x95", "<Q"),  # FRAME
    (b"B", "<I"),  # BINBYTES
    (b"X", "<I"),  # BINUNICODE
    (b"\x8b", "<i"),  # LONG4
])
@pytest.mark.parametrize("seekable", [True, False])
def test_length_fields_claiming_petabytes(opcode: bytes, width: str, seekable: bool):
    size = HUGE if width == "<Q" else 2**31 - 1
    data = call("os", "system", "id")[:-1] + opcode + struct.pack(width, size) + b"abc" * 1000
    tracemalloc.start()
    started = time.monotonic()
    try:
        ctx, result = _stream(data, seekable=seekable)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 10
    assert peak < 16 << 20
    assert not result.complete
    frame = {"MW107"} if opcode == b"\x95" and seekable else set()  # known from the size
    assert {f.rule_id for f in ctx.findings} == {"MW101", "MW105"} | frame  # payload kept
    assert any(s.inconclusive for s in ctx.skipped)


def test_negative_lengths_are_malformed():
    # LONG4's length is signed in the C unpickler (BINSTRING's is not: see test_text_args).
    ctx, result = _stream(b"\x80\x02\x8b\xff\xff\xff\xff.")
    assert not result.complete
    assert "negative" in ctx.findings[0].message


def test_long_text_line_without_newline_is_bounded():
    tracemalloc.start()
    try:
        _, result = _stream(b"V" + b"a" * (8 << 20), seekable=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not result.complete
    assert peak < 40 << 20  # the test's own 8 MiB input, plus bounded chunks


def test_overlong_global_name_is_a_dynamic_import(tmp_path: Path):
    report = scan_bytes(tmp_path, b"c" + b"o" * 5000 + b"\nsystem\n.")
    assert "MW103" in rules(report)


def test_every_truncation_of_a_payload(tmp_path: Path):
    data = call("os", "system", "touch /tmp/x", proto=2)
    for cut in range(1, len(data)):
        ctx, result = _stream(data[:cut])
        assert not result.complete
        found = {f.evidence for f in ctx.findings if f.rule_id == "MW101"}
        assert found == ({"os.system"} if cut > data.index(b"system\n") + 6 else set())


def test_stack_underflow_is_malformed():
    ctx, result = _stream(b"\x80\x02R.")
    (f,) = ctx.findings
    assert f.rule_id == "MW105"
    assert "underflow" in f.message and f.location.offset == 2
    assert not result.complete


def test_missing_memo_key_after_a_payload(tmp_path: Path):
    # The picklescan "KeyError exploit": a payload, then a GET of a key never stored.
    data = (call("os", "system", "id")[:-1] + b"0" + const("os") + b"\x94" + b"h\x03h\x00\x93.")
    report = scan_bytes(tmp_path, data)
    assert evidence(report, "MW101") == {"os.system"}
    assert "memo key 3 not found" in by_rule(report, "MW105")[0].message


def test_unsupported_protocol_is_malformed():
    ctx, result = _stream(b"\x80\x02" + b"]" + b"\x80\x09.")
    assert not result.complete and "protocol 9" in ctx.findings[0].message


def test_opcode_limit_makes_it_inconclusive(tmp_path: Path):
    path = tmp_path / "big.pkl"
    path.write_bytes(pickle.dumps(list(range(5000)), protocol=2))
    report = mlward.scan([path], settings=Settings(limits=Limits(max_pickle_ops=1000)))
    assert report.inconclusive and "opcodes" in report.inconclusive[0].reason
    assert str(report.verdicts()["big.pkl"]) == "inconclusive"


def test_joblib_array_claiming_more_than_the_file_holds(tmp_path: Path):
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    joblib.dump(np.arange(4, dtype="u1"), buf)
    data = buf.getvalue().replace(b"K\x04\x85", b"J" + struct.pack("<i", 2**30) + b"\x85", 1)
    assert data != buf.getvalue()
    report = scan_bytes(tmp_path, data, "model.joblib")
    assert "MW105" in rules(report) and report.inconclusive


def test_not_utf8_global_is_not_a_traceback(tmp_path: Path):
    report = scan_bytes(tmp_path, b"cmod\n\xf8\n")
    _no_crash(report)


@pytest.mark.parametrize("text", [
    b"(this README starts with a parenthesis)\nand goes on.\n",
    b"Version 1.2\n\nNotes follow.\n",
    b"Kernel: linux\nIdeas: none\n",
    b"]]] not a list\n",
    b"}\n",
    b"S'quoted' but then prose\n",
    b"cd /tmp\nls -la\nmake install\n",  # GLOBAL-shaped lines, but not names
    b"]]]] four brackets, then prose\n",
])
def test_text_is_not_taken_for_a_pickle(tmp_path: Path, text: bytes):
    report = scan_bytes(tmp_path, text * 3, "README")
    assert not any(f.rule_id.startswith("MW1") for f in report.findings)
    assert report.inconclusive == ()
    assert "pickle" not in {e.format for e in report.examined}


def test_proto0_pickle_is_still_sniffed(tmp_path: Path):
    report = scan_bytes(tmp_path, pickle.dumps([1, "a"], protocol=0), "data.bin")
    assert "pickle" in [e.format for e in report.examined]


def test_binary_data_starting_like_proto_is_not_a_pickle(tmp_path: Path):
    # Raw tensor bytes can start with 0x80 0x02 by chance: not a pickle unless it runs.
    report = scan_bytes(tmp_path, b"\x80\x02\xfe\xfe\x00\x01" * 100, "weights.bin")
    assert report.findings == () and report.inconclusive == ()


def test_broken_pickle_after_an_import_is_still_a_pickle(tmp_path: Path):
    data = b"\x80\x02cos\nsystem\n\xfe\xfe"
    report = scan_bytes(tmp_path, data, "weights.bin")
    assert evidence(report, "MW101") == {"os.system"}


OPCODE_BYTES = bytes(range(0x28, 0x7E)) + bytes(range(0x80, 0x99))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(list(OPCODE_BYTES)).map(lambda b: bytes([b])),
                          st.binary(max_size=9)), max_size=60))
def test_any_opcode_soup_ends_cleanly(parts: list[bytes]):
    data = b"\x80\x04" + b"".join(parts)
    ctx, result = _stream(data)
    if result.complete:
        assert result.pickles >= 1
    else:
        assert any(s.inconclusive for s in ctx.skipped)
    assert all(f.rule_id.startswith("MW1") for f in ctx.findings)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_protocol_header_and_four_clean_opcodes_make_a_pickle(protocol: int) -> None:
    """The short sniff for PROTO-led streams still takes a truncated pickle as a pickle (the
    unpickler runs what comes before the cut) and still refuses binary that only starts like
    one."""
    from mlward._internal.scanners.pickle import has_protocol_header, looks_like_pickle

    data = pickle.dumps([{"w": [0.5] * 64, "name": "layer"}] * 8, protocol=protocol)
    assert has_protocol_header(data)
    assert looks_like_pickle(io.BytesIO(data), data)
    for cut in (2, 5, 12, 40):  # truncated anywhere, even inside a FRAME's length
        assert looks_like_pickle(io.BytesIO(data[:cut]), data[:cut]), cut
    for junk in (b"\x30", b"\xff\xff", b"\x65\x65", b"\x2e\x00"):  # POP, unknown, APPENDS, STOP
        fake = bytes([0x80, protocol]) + junk + bytes(range(256))
        assert has_protocol_header(fake)
        assert not looks_like_pickle(io.BytesIO(fake), fake), junk
    assert not has_protocol_header(b"\x80\x06") and not has_protocol_header(b"\x80")
