"""Entries: canonical bytes (RFC 8785), validation, and hostile stored bytes."""

from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from mlward._internal.ledger.entry import Entry, Event, canonical_json
from mlward._internal.ledger.errors import LedgerError

_scalars = (st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text())
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_canonical_json_is_rfc8785(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_canonical_json_orders_keys_by_utf16_code_units() -> None:
    value = {"\U0001f600": 1, "\ufb01": 2, "a": 3}  # astral vs. high-BMP: UTF-16 order differs
    assert canonical_json(value) == rfc8785.dumps(value)
    out = canonical_json(value)
    assert out.index("\U0001f600".encode()) < out.index("\ufb01".encode())  # D83D < FB01


_text = st.text(min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(action=_text, resource=_text, actor=_text, host=_text, details=st.dictionaries(
    st.text(), _json, max_size=4), digests=st.dictionaries(
    st.text(st.characters(max_codepoint=127), max_size=8), st.text(max_size=70), max_size=3),
    index=st.integers(0, 2**53 - 1))
def test_entry_bytes_are_rfc8785_of_its_fields(action: str, resource: str, actor: str,
                                               host: str, details: dict[str, object],
                                               digests: dict[str, str], index: int) -> None:
    """The entry's directly written canonical form is RFC 8785 of the entry as an object."""
    event = Event(action, resource, "pass", digests=digests, details=details, actor=actor,
                  host=host, time="2026-11-28T22:00:00.000000Z")
    entry = Entry(index, "ab" * 32, event)
    try:
        expected = rfc8785.dumps(entry.to_json())
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):  # lone surrogates
        with pytest.raises(LedgerError):
            entry.canonical()
        return
    assert entry.canonical() == expected


@pytest.mark.parametrize("bad", [float("nan"), 2**60, "\ud800", {1: "x"}, object()])
def test_values_without_a_canonical_form_are_refused(bad: object) -> None:
    with pytest.raises(LedgerError):
        canonical_json({"x": bad})


def test_same_entry_same_bytes_whatever_the_key_order() -> None:
    a = Event("scan", "m.pt", "pass", details={"b": 1, "a": [1, {"y": 2, "x": 1}]},
              actor="al", host="h", time="2026-01-01T00:00:00.000000Z")
    b = Event("scan", "m.pt", "pass", details={"a": [1, {"x": 1, "y": 2}], "b": 1},
              actor="al", host="h", time="2026-01-01T00:00:00.000000Z")
    ea, eb = Entry(0, "0" * 64, a), Entry(0, "0" * 64, b)
    assert ea.canonical() == eb.canonical()
    assert b" " not in ea.canonical()
    assert Entry.from_bytes(ea.canonical()) == ea


@pytest.mark.parametrize("data", [
    b"", b"[]", b"{}", b"not json", b"[" * 100_000, b'{"v":1}',
    json.dumps({"v": 1, "index": -1, "prev": "0" * 64, "time": "t", "actor": "a",
                "host": "h", "action": "x", "resource": "r", "outcome": "o",
                "digests": {}, "details": {}}).encode(),
    json.dumps({"v": 1, "index": 0, "prev": "0" * 64, "time": "t", "actor": "a",
                "host": "h", "action": "x", "resource": "r", "outcome": "o",
                "digests": {"sha256": 5}, "details": {}}).encode(),
    b"{" + b" " * (2 << 20) + b"}",
])
def test_hostile_entry_bytes_are_a_ledger_error(data: bytes) -> None:
    with pytest.raises(LedgerError):
        Entry.from_bytes(data)
