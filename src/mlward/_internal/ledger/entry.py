"""Ledger entries: what happened, who did it, where and when, in one canonical serialization.

An entry's bytes are its JSON in the RFC 8785 canonical form (sorted keys, no whitespace,
UTF-8), so the same entry always hashes the same. Each entry also carries its own index and the
leaf hash of the entry before it: an entry moved, or an earlier entry changed and the tree
rebuilt around it, is detected at the exact index even when the stored tree was recomputed.
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from json.encoder import encode_basestring as _json_string  # the C escaper, ensure_ascii=False
from typing import Any

import rfc8785

from mlward._internal.ledger.errors import LedgerError
from mlward._internal.ledger.merkle import leaf_hash

VERSION = 1
GENESIS = "0" * 64  # the "previous leaf hash" of entry 0
MAX_ENTRY_BYTES = 1 << 20
_MAX_FIELD = 4096


_MAX_SAFE_INT = 2**53 - 1


def _plain(value: Any) -> bool:
    """True when ``json.dumps`` with sorted keys already gives the RFC 8785 form: no floats
    (whose shortest form differs between Python and ECMAScript), integers in the I-JSON range,
    no key outside the Basic Multilingual Plane (where UTF-16 order differs), nothing else."""
    stack, budget = [value], 100_000  # the budget also ends a walk round a cycle
    while stack:
        budget -= 1
        if budget < 0:
            return False
        v = stack.pop()
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if not -_MAX_SAFE_INT <= v <= _MAX_SAFE_INT:
                return False
        elif t is dict:
            for k in v:
                if type(k) is not str or not (k.isascii() or max(k, default="") <= "\uffff"):
                    return False
            stack.extend(v.values())
        elif t is list:
            stack.extend(v)
        else:
            return False
    return True


# One encoder for every entry: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def canonical_json(value: Any, *, plain: bool | None = None) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme) bytes of ``value``.

    The common case (no floats) is the standard library's sorted, whitespace-free output, which
    is byte-for-byte the canonical form there and several times faster; anything else goes
    through the ``rfc8785`` implementation. ``plain`` skips the check when the caller has
    made it.
    """
    try:
        if _plain(value) if plain is None else plain:
            return _ENCODER.encode(value).encode("utf-8")
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise LedgerError(f"ledger entry is not representable as canonical JSON: {exc}") \
            from None


def utc_now() -> str:
    return format_time(datetime.now(timezone.utc))


def format_time(moment: datetime) -> str:
    """``2026-11-28T19:20:14.123456Z``: fixed width, so text order is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def current_actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


@dataclass(frozen=True)
class Event:
    """Something that happened, before the ledger gives it a place."""

    action: str
    resource: str
    outcome: str
    digests: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    actor: str = field(default_factory=current_actor)
    host: str = field(default_factory=socket.gethostname)
    time: str = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        for name in ("action", "resource", "outcome", "actor", "host", "time"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or len(value) > _MAX_FIELD:
                raise LedgerError(f"ledger entry field {name!r} must be a non-empty string "
                                  f"of at most {_MAX_FIELD} characters")
        if not all(isinstance(k, str) and k.isascii() and isinstance(v, str)
                   for k, v in self.digests.items()):
            raise LedgerError("ledger entry digests must map algorithm names to strings")
        if not isinstance(self.details, Mapping):
            raise LedgerError("ledger entry details must be a JSON object")


@dataclass(frozen=True, slots=True)
class Entry:
    """An event at its place in the ledger."""

    index: int
    prev: str  # hex leaf hash of entry index - 1 (GENESIS for entry 0)
    event: Event

    def to_json(self) -> dict[str, Any]:
        e = self.event
        return {
            "v": VERSION, "index": self.index, "prev": self.prev, "time": e.time,
            "actor": e.actor, "host": e.host, "action": e.action, "resource": e.resource,
            "outcome": e.outcome, "digests": dict(e.digests), "details": dict(e.details),
        }

    def canonical(self) -> bytes:
        # Every field but ``details`` is a string, an index or ASCII-keyed string digests
        # (checked when the event was made): their canonical form is written directly, keys
        # in sorted order, and only ``details`` may need the general canonicaliser. This is
        # the ledger's hot path (an entry costs about as much here as in the database).
        e = self.event
        if _plain(e.details):
            digests = ",".join(f"{_json_string(k)}:{_json_string(v)}"
                               for k, v in sorted(e.digests.items()))
            try:
                data = (f'{{"action":{_json_string(e.action)},"actor":{_json_string(e.actor)},'
                        f'"details":{_ENCODER.encode(e.details)},"digests":{{{digests}}},'
                        f'"host":{_json_string(e.host)},"index":{self.index},'
                        f'"outcome":{_json_string(e.outcome)},"prev":{_json_string(self.prev)},'
                        f'"resource":{_json_string(e.resource)},"time":{_json_string(e.time)},'
                        f'"v":{VERSION}}}').encode()
            except (UnicodeEncodeError, RecursionError) as exc:  # a lone surrogate; nesting
                raise LedgerError("ledger entry is not representable as canonical JSON: "
                                  f"{exc}") from None
        else:
            data = canonical_json(self.to_json(), plain=False)
        if len(data) > MAX_ENTRY_BYTES:
            raise LedgerError(f"ledger entry is {len(data)} bytes (limit {MAX_ENTRY_BYTES})")
        return data

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.canonical())

    @classmethod
    def from_bytes(cls, data: bytes) -> Entry:
        """Parse stored or exported entry bytes; anything malformed is a :class:`LedgerError`."""
        if len(data) > MAX_ENTRY_BYTES:
            raise LedgerError(f"ledger entry is {len(data)} bytes (limit {MAX_ENTRY_BYTES})")
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise LedgerError(f"ledger entry is not JSON: {exc}") from None
        if not isinstance(obj, dict) or obj.get("v") != VERSION:
            raise LedgerError("ledger entry is not a version 1 entry object")
        expected = {"v", "index", "prev", "time", "actor", "host", "action", "resource",
                    "outcome", "digests", "details"}
        if set(obj) != expected:
            raise LedgerError(f"ledger entry fields differ from {sorted(expected)}")
        index, prev = obj["index"], obj["prev"]
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise LedgerError("ledger entry index must be a non-negative integer")
        if not isinstance(prev, str) or len(prev) != 64:
            raise LedgerError("ledger entry prev must be a hex SHA-256")
        if not isinstance(obj["digests"], dict) or not isinstance(obj["details"], dict):
            raise LedgerError("ledger entry digests and details must be objects")
        event = Event(action=obj["action"], resource=obj["resource"], outcome=obj["outcome"],
                      digests=obj["digests"], details=obj["details"], actor=obj["actor"],
                      host=obj["host"], time=obj["time"])
        return cls(index, prev, event)
