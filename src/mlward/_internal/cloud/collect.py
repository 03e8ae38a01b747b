"""What every provider's collection shares: the options of a run, its bookkeeping (skips,
API call counts, progress), and the bounded sampling of a bucket's objects.

Sampling reads a bucket the way a careful person would: one listing page (at most
``list_limit`` keys), then the first bytes of at most ``sample`` objects, chosen model-like
names first, then data-like names, then the rest, and always the objects under a prefix that
the project refers to. An object is never downloaded whole.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from mlward._internal.cloud.checks import Asset
from mlward._internal.cloud.content import HEAD_BYTES, identify, worth_sampling
from mlward.errors import UsageError
from mlward.findings import Location, Skipped

DEFAULT_SAMPLE = 20
DEFAULT_LIST_LIMIT = 1000
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 5
MAX_BUCKETS = 100_000


class Options(NamedTuple):
    """What to examine and how. Provider-specific fields are ignored by the others."""

    endpoint_url: str | None = None
    regions: tuple[str, ...] = ()
    buckets: tuple[str, ...] = ()
    """Only these buckets (containers); default: every bucket the credentials can list."""
    links: tuple[Path, ...] = ()
    """Project folders whose references (MLflow, DVC, lineage, BOM, code) are linked."""
    services: tuple[str, ...] = ()
    """Services to examine (default: all the provider has checks for)."""
    sample: int = DEFAULT_SAMPLE
    list_limit: int = DEFAULT_LIST_LIMIT
    head_bytes: int = HEAD_BYTES
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    workers: int | None = None
    trusted_accounts: tuple[str, ...] = ()
    max_buckets: int = MAX_BUCKETS
    # AWS
    profile: str | None = None
    account: str | None = None
    # Google Cloud
    project: str | None = None
    notebooks_endpoint: str | None = None
    # Azure
    account_url: str | None = None
    connection_string: str | None = None
    subscription: str | None = None
    management_endpoint: str | None = None


def options_from_section(table: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """The ``[cloud]`` settings table as :class:`Options` fields; errors name the file and
    key."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{origin}: [cloud] {key}"
        if key in ("sample", "list_limit", "head_bytes", "retries", "workers", "max_buckets"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{where} must be a whole number of at least 1")
            out[key] = value
        elif key == "timeout":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise UsageError(f"{where} must be a positive number of seconds")
            out[key] = float(value)
        elif key in ("trusted_accounts", "regions", "services"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"{where} must be a list of strings")
            out[key] = tuple(value)
        elif key in ("profile", "project", "subscription", "endpoint_url", "account_url",
                     "notebooks_endpoint", "management_endpoint"):
            if not isinstance(value, str) or not value:
                raise UsageError(f"{where} must be a non-empty string")
            out[key] = value
        else:
            raise UsageError(f"{where}: unknown key (known: sample, list_limit, head_bytes, "
                             "timeout, retries, workers, max_buckets, trusted_accounts, "
                             "regions, services, profile, project, subscription, endpoint_url, "
                             "account_url, notebooks_endpoint, management_endpoint)")
    return out


class Observer(Protocol):
    """Progress hooks (the CLI's progress bar); the library ignores them by default."""

    def on_start(self, total: int) -> None: ...

    def on_file(self, path: str) -> None: ...


class _Quiet:
    def on_start(self, total: int) -> None:
        pass

    def on_file(self, path: str) -> None:
        pass


class Run:
    """One collection's bookkeeping, shared by the worker threads."""

    def __init__(self, options: Options, observer: Observer | None = None) -> None:
        self.options = options
        self.observer = observer or _Quiet()
        self.skipped: list[Skipped] = []
        self.calls: Counter[str] = Counter()
        self.stats: dict[str, Any] = {}
        self._lock = threading.Lock()

    def skip(self, uri: str, reason: str, *, inconclusive: bool = True) -> None:
        with self._lock:
            self.skipped.append(Skipped(Location(uri), reason, inconclusive))

    def count(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1

    def wants(self, service: str) -> bool:
        return not self.options.services or service in self.options.services


def sample(keys: Sequence[tuple[str, int]], read_head: Callable[[str], bytes],
           options: Options, prefixes: Iterable[str] = ()) -> tuple[list[Asset], int]:
    """The model and data files among ``keys`` ((key, size) of one listing), found by
    reading the first bytes of at most ``options.sample`` of them. Returns the assets and
    how many objects were read."""
    wanted = [p.rstrip("/") for p in prefixes]
    candidates = [(k, s) for k, s in keys if s > 0 and not k.endswith("/")]

    def order(item: tuple[str, int]) -> tuple[int, int]:
        key = item[0]
        under = any(not p or key.startswith(p + "/") or key == p for p in wanted)
        return (0 if under and wanted else 1, worth_sampling(key))

    chosen = sorted(candidates, key=order)[:options.sample]
    assets = []
    for key, _ in chosen:
        content = identify(key, read_head(key))
        if content is not None:
            assets.append(Asset(key, content))
    return assets, len(chosen)
