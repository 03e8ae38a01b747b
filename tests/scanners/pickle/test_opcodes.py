"""The symbolic machine follows CPython's unpickler opcode by opcode."""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path

import pytest
from pickle_payloads import (
    OPCODE_SAMPLES,
    by_rule,
    call,
    const,
    evidence,
    header,
    ref,
    rules,
    scan_bytes,
    verdict,
)

from mlward._internal.engine import Engine
from mlward._internal.scanners.pickle import scan_pickle_stream
from mlward.findings import Location, Severity
from mlward.settings import Limits, Settings


class _Reduce:
    def __init__(self, func: object, args: tuple[object, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def _stream(data: bytes, **kwargs: object) -> tuple[Engine, object]:
    ctx = Engine(Settings())
    result = scan_pickle_stream(io.BytesIO(data), Location("s.pkl"), ctx, **kwargs)  # type: ignore[arg-type]
    return ctx, result


@pytest.mark.parametrize("proto", range(6))
def test_plain_data_is_clean_at_every_protocol(tmp_path: Path, proto: int):
    data = {"a": [1, 2.5, "x", None, True], "b": (b"raw", {3, 4}), "c": 10**40}
    report = scan_bytes(tmp_path, pickle.dumps(data, protocol=proto))
    assert report.findings == ()
    assert verdict(report) == "clean"
    assert "pickle" in [e.format for e in report.examined]  # text ones get a secrets pass


@pytest.mark.parametrize("proto", range(6))
def test_reduce_call_is_resolved_at_every_protocol(tmp_path: Path, proto: int):
    import os

    report = scan_bytes(tmp_path, pickle.dumps(_Reduce(os.system, ("id",)), protocol=proto))
    (f,) = by_rule(report, "MW101")
    assert f.evidence == "posix.system"
    assert f.severity == Severity.CRITICAL
    assert f.details["called"] is True
    assert verdict(report) == "dangerous"


def test_offset_is_the_offset_of_the_importing_opcode(tmp_path: Path):
    data = call("os", "system", "id", proto=4)
    report = scan_bytes(tmp_path, data)
    (f,) = by_rule(report, "MW101")
    assert data[f.location.offset] == 0x93  # STACK_GLOBAL
    data = call("os", "system", "id", proto=2)
    (f,) = by_rule(scan_bytes(tmp_path, data), "MW101")
    assert f.location.offset == 2 and data[2:3] == b"c"


def test_stack_global_operands_from_the_memo(tmp_path: Path):
    # Names stored with MEMOIZE/BINPUT/LONG_BINPUT, fetched back with the matching GETs.
    body = (const("os") + b"\x94" + b"0" + const("system") + b"q\x07" + b"0"
            + const("decoy") + b"r\x00\x01\x00\x00" + b"0"
            + b"h\x00" + b"h\x07" + b"\x93" + const(("id",)) + b"R" + b"j\x00\x01\x00\x00" + b"0.")
    report = scan_bytes(tmp_path, header(4) + body)
    assert evidence(report) == {"os.system"}


def test_memoize_numbering_after_explicit_puts_matches_cpython(tmp_path: Path):
    # MEMOIZE stores at len(memo), as CPython does: after PUT 1 that is index 1 again (it
    # overwrites), and after PUT 0 the next MEMOIZE goes to 2. A machine counting MEMOIZEs
    # would resolve different strings here.
    body = (const("x") + b"q\x01" + b"0" + const("os") + b"\x94" + b"0"
            + const("system") + b"p0\n" + b"0" + const("decoy") + b"\x94" + b"0"
            + b"h\x01" + b"h\x00" + b"\x93" + b"h\x02" + b"0.")
    report = scan_bytes(tmp_path, header(4) + body)
    assert evidence(report) == {"os.system"}
    assert report.inconclusive == ()


def test_inst_obj_newobj_and_newobj_ex_are_calls(tmp_path: Path):
    inst = b"(" + const("id") + b"ios\nsystem\n."
    obj = b"(" + ref("os", "system", 2) + const("id") + b"o."
    newobj = header(2) + ref("os", "system", 2) + const(("id",)) + b"\x81."
    newobj_ex = header(4) + ref("os", "system") + const(("id",)) + b"}\x92."
    for data in (inst, obj, newobj, newobj_ex):
        (f,) = by_rule(scan_bytes(tmp_path, data), "MW101")
        assert f.evidence == "os.system"
        assert f.details["called"] is True


def test_reference_never_called_is_still_reported(tmp_path: Path):
    (f,) = by_rule(scan_bytes(tmp_path, header(4) + ref("os", "system") + b"."), "MW101")
    assert f.details["called"] is False
    assert "calls it" not in f.message


def test_fix_imports_maps_python2_names_below_protocol_3(tmp_path: Path):
    report = scan_bytes(tmp_path, call("__builtin__", "eval", "1", proto=2))
    assert evidence(report) == {"builtins.eval"}
    # From protocol 3 CPython no longer maps it (and __builtin__ does not import).
    report = scan_bytes(tmp_path, call("__builtin__", "eval", "1", proto=3))
    assert evidence(report, "MW102") == {"__builtin__.eval"}


def test_dotted_names_are_attribute_paths(tmp_path: Path):
    report = scan_bytes(tmp_path, call("builtins", "str.__class__.__base__", proto=4))
    (f,) = by_rule(report, "MW101")
    assert f.evidence == "builtins.str.__class__.__base__"
    report = scan_bytes(tmp_path, call("os", "path.join", "a", proto=4))
    assert evidence(report, "MW101") == {"os.path.join"}


def test_extension_codes_are_reported(tmp_path: Path):
    report = scan_bytes(tmp_path, header(2) + b"\x82\x07" + const(("x",)) + b"R.")
    assert evidence(report, "MW102") == {"copyreg extension 7"}
    assert "MW104" in rules(report)  # calling what the extension resolves to


def test_name_computed_at_load_time_is_a_dynamic_import(tmp_path: Path):
    # The module name comes out of a call (str.lower), so only running the pickle tells it.
    body = ref("builtins", "str") + const(("OS",)) + b"R" + const("system") + b"\x93" + b"."
    report = scan_bytes(tmp_path, header(4) + body)
    (f,) = by_rule(report, "MW103")
    assert f.severity == Severity.HIGH
    assert verdict(report) == "dangerous"


def test_back_to_back_pickles_are_all_analysed(tmp_path: Path):
    data = pickle.dumps([1, 2]) + pickle.dumps({"k": "v"}, protocol=0) + call("os", "system")
    ctx, result = _stream(data)
    assert result.pickles == 3 and result.complete
    assert result.end_offset == len(data)
    assert {f.evidence for f in ctx.findings} == {"os.system"}


def test_memo_carries_over_to_the_next_pickle(tmp_path: Path):
    # An unpickler reused for back-to-back pickles keeps its memo: names stored by the first
    # pickle can feed a STACK_GLOBAL in the second.
    first = header(4) + const("os") + b"\x94" + const("system") + b"\x94" + b"\x86."
    second = header(4) + b"h\x00h\x01\x93" + const(("id",)) + b"R."
    report = scan_bytes(tmp_path, first + second)
    assert evidence(report, "MW101") == {"os.system"}
    assert report.inconclusive == ()


def test_trailing_bytes_after_a_pickle_are_low(tmp_path: Path):
    data = pickle.dumps([1, 2], protocol=4) + b"\x00\xffnot a pickle\n" * 10
    report = scan_bytes(tmp_path, data)
    (f,) = by_rule(report, "MW106")
    assert f.severity == Severity.LOW
    assert f.location.offset == len(pickle.dumps([1, 2], protocol=4))
    assert report.inconclusive == ()


def test_max_pickles_stops_and_leaves_the_stream_after_the_last_stop():
    first = pickle.dumps({"a": 1}, protocol=2)
    stream = io.BytesIO(first + b"raw storage bytes follow")
    ctx = Engine(Settings())
    result = scan_pickle_stream(stream, Location("s"), ctx, max_pickles=1)
    assert (result.pickles, result.end_offset, result.complete) == (1, len(first), True)
    assert stream.tell() == len(first)
    assert ctx.findings == []


def test_offsets_are_stream_positions_when_starting_midway():
    data = b"HEADER" + call("os", "system", "id")
    stream = io.BytesIO(data)
    stream.seek(6)
    ctx = Engine(Settings())
    result = scan_pickle_stream(stream, Location("s"), ctx)
    assert result.end_offset == len(data)
    (f,) = ctx.findings
    assert data[f.location.offset] == 0x93


def test_payload_then_garbage_reports_both_and_is_inconclusive(tmp_path: Path):
    data = header(2) + ref("os", "system", 2) + const(("id",)) + b"R" + b"\xfe\xfe"
    report = scan_bytes(tmp_path, data)
    assert evidence(report, "MW101") == {"os.system"}
    (m,) = by_rule(report, "MW105")
    assert m.location.offset == len(data) - 2
    assert "unknown opcode 0xfe" in m.message
    assert report.inconclusive
    assert verdict(report) == "dangerous"  # inconclusive never hides what was found


def test_call_then_pop_still_counts(tmp_path: Path):
    # fickling once lost calls whose result was popped; the unpickler still made the call.
    data = header(2) + ref("os", "system", 2) + const(("id",)) + b"R0" + const(1) + b"."
    (f,) = by_rule(scan_bytes(tmp_path, data), "MW101")
    assert f.details["called"] is True


def test_build_on_an_imported_class_is_flagged(tmp_path: Path):
    data = header(2) + ref("collections", "OrderedDict", 2) + b"}" + b"b."
    report = scan_bytes(tmp_path, data)
    assert "MW104" in rules(report)


def test_protocol_0_text_opcodes(tmp_path: Path):
    data = (b"(dp0\nS'k'\np1\nI42\nsS'f'\nF1.5\nsVuni\\u00e9\np2\nL12L\nsg1\n"
            b"I01\nsS'h'\nI0x10\ns.")  # INT is read with base 0, as CPython reads it
    report = scan_bytes(tmp_path, data)
    assert report.findings == () and report.inconclusive == ()


def test_frames_do_not_need_buffering(tmp_path: Path):
    data = pickle.dumps(list(range(20000)), protocol=5)
    assert b"\x95" in data[:3]
    ctx, result = _stream(data)
    assert result.complete and ctx.findings == []


def test_large_strings_are_skipped_not_kept(tmp_path: Path):
    data = pickle.dumps({"blob": "x" * 3_000_000, "b": b"y" * 3_000_000}, protocol=4)
    report = scan_bytes(tmp_path, data)
    assert report.findings == ()


def test_safe_references_are_counted_not_reported():
    import collections

    ctx, result = _stream(pickle.dumps(collections.OrderedDict(a=1), protocol=2))
    assert ctx.findings == [] and result.safe_references == 1


def test_struct_helper_builds_what_pickle_reads():
    # The hand assembler itself is checked against pickletools (a parser, not a loader).
    ops = [op.name for op, _, _ in pickletools.genops(call("os", "system", "id", 1, None))]
    assert ops == ["PROTO", "BINUNICODE", "BINUNICODE", "STACK_GLOBAL", "MARK", "BINUNICODE",
                   "BININT", "NONE", "TUPLE", "REDUCE", "STOP"]


def test_protocol_0_pickle_behind_a_text_or_python_name(tmp_path: Path):
    data = b"cos\nsystem\n(S'id'\ntR."  # printable text, as protocol 0 writes it
    for name in ("notes.txt", "config.yaml", "script.py"):
        report = scan_bytes(tmp_path, data, name)
        assert evidence(report, "MW101") == {"os.system"}, name


@pytest.mark.parametrize("ops", [b"Na", b"(Ne", b"NNs", b"(NNu", b"(N\x90"])
def test_container_opcodes_on_an_imported_object_are_flagged(tmp_path: Path, ops: bytes):
    # APPEND(S), SETITEM(S), ADDITEMS on a global call its append/__setitem__/add methods.
    data = header(4) + ref("collections", "OrderedDict") + ops + b"."
    (f,) = by_rule(scan_bytes(tmp_path, data), "MW104")
    assert "collections.OrderedDict" in f.message


def test_the_table_has_one_handler_per_opcode():
    from mlward._internal.scanners.pickle.machine import DISPATCH, Machine

    codes = {op.code.encode("latin-1")[0]: op.name for op in pickletools.opcodes}
    assert set(DISPATCH) == set(codes)
    for code, name in codes.items():
        assert DISPATCH[code] is getattr(Machine, f"load_{name.lower()}"), name


@pytest.mark.parametrize("name", sorted(OPCODE_SAMPLES))
def test_every_opcode_runs_through_its_handler(name: str):
    # Each sample is a whole pickle using the opcode; pickletools (a parser) confirms it.
    from mlward._internal.scanners.pickle.machine import Machine
    from mlward._internal.scanners.pickle.reader import Reader

    data = OPCODE_SAMPLES[name]
    assert name in [op.name for op, _, _ in pickletools.genops(data)]
    machine = Machine(Reader(io.BytesIO(data)), Limits())
    machine.run()
    assert machine.pickles == 1 and machine.offset == len(data)


def test_samples_cover_every_opcode():
    assert set(OPCODE_SAMPLES) == {op.name for op in pickletools.opcodes}


@pytest.mark.parametrize("code", sorted(set(range(256)) - {
    op.code.encode("latin-1")[0] for op in pickletools.opcodes}))
def test_bytes_that_are_not_opcodes_are_refused(code: int):
    ctx, result = _stream(bytes([code]) + b"N.")
    assert not result.complete
    assert f"unknown opcode 0x{code:02x}" in ctx.findings[0].message


def test_back_to_back_pickles_each_with_a_new_memo(tmp_path: Path):
    # pickle.load(f) in a loop makes a new Unpickler per pickle: MEMOIZE numbers from 0 again.
    # Read with the first pickle's memo kept, the second resolves collections.OrderedDict;
    # read as CPython reads it here, os.system.
    from oracle import resolved

    first = header(4) + const("collections") + b"\x94" + const("OrderedDict") + b"\x94\x86."
    second = (header(4) + const("os") + b"\x94" + const("system") + b"\x94" + b"00"
              + b"h\x00h\x01\x93" + const(("id",)) + b"R.")
    data = first + second
    assert ("os", "system") in resolved(data)
    report = scan_bytes(tmp_path, data)
    assert "os.system" in evidence(report, "MW101")
    assert report.inconclusive == ()


def test_long1_length_is_unsigned(tmp_path: Path):
    # LONG1's length byte is unsigned in both unpicklers: 0xff is 255 bytes of integer, not
    # a negative count; what follows them runs.
    from oracle import resolved

    data = b"\x80\x02\x8a\xff" + b"\x01" * 255 + b"0" + call("os", "system", "id", proto=2)[2:]
    assert ("os", "system") in resolved(data)
    report = scan_bytes(tmp_path, data)
    assert evidence(report, "MW101") == {"os.system"} and report.inconclusive == ()
