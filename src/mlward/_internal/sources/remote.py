"""Bytes that live elsewhere: objects in S3, Google Cloud Storage or Azure Blob Storage, and
files an HTTP server hands out (an MLflow server's artifacts), read with ranged requests.

A remote :class:`~mlward._internal.sources.Source` opens a :class:`RangedFile`: a seekable
file whose reads are ranged GETs for the bytes asked (a read of a few bytes asks for
:data:`MIN_REQUEST`: header parsing reads a signature or a descriptor, then the header after
it). Scanners then fetch only what they
touch: the sniffers' first 4 KiB, a zip's end records and central directory, each member's
local header, the members they judge; of a PyTorch checkpoint's tensor storage members, only
the bytes beside their header (their first bytes are checked not to be a pickle), never the
rest. (A read-ahead block cache, as in fsspec's own file objects, would fetch megabytes of
tensors.) Spans already fetched are kept, bounded, for the next open of the same source
(every zip sniffer re-reads the central directory), and no byte is requested twice. Every
request and byte is counted: the scan reports them beside the object's size.

Object storage goes through fsspec (``s3fs``, ``gcsfs``, ``adlfs``) rather than boto3 for
S3 alone: one interface (``find`` to list, ``cat_file(path, start, end)`` for a ranged GET)
for the three stores, each maintained by its community, with the usual credential chains.
"""

from __future__ import annotations

import _thread  # the lock threading.Lock is, without importing threading
import io
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, BinaryIO, NamedTuple, cast

from mlward.errors import MissingExtra, ScanError

OBJECT_SCHEMES = {"s3": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"),
                  "az": ("adlfs", "azure"), "abfs": ("adlfs", "azure"),
                  "abfss": ("adlfs", "azure")}
"""URI scheme -> (the fsspec implementation it needs, the mlward extra that installs it)."""
HTTP_SCHEMES = ("http", "https")
HTTP_TIMEOUT = 60.0
CACHE_SPANS = 32
CACHE_SPAN_BYTES = 1 << 20
READALL_CHUNK = 8 << 20
TINY_READ = 64
MIN_REQUEST = 512

Fetch = Callable[[int, int], bytes]
"""``fetch(start, end)``: bytes ``start..end`` (end exclusive) of one object."""


def scheme_of(target: str) -> str:
    return target.split("://", 1)[0].lower() if "://" in target else ""


def is_remote(target: str) -> bool:
    """True for a URI that this module reads (object storage or HTTP)."""
    return scheme_of(target) in OBJECT_SCHEMES or scheme_of(target) in HTTP_SCHEMES


class StoredObject(NamedTuple):
    url: str
    """``scheme://bucket/key``: the object's absolute location URI."""
    key: str
    """The key relative to the prefix listed (the object's name when the prefix is one)."""
    size: int


def list_objects(url: str) -> list[StoredObject]:
    """Every object under ``url``, sorted by key: one flat listing (S3 answers a thousand
    keys a request). Raises :class:`~mlward.errors.ScanError`
    when the prefix cannot be listed, and :class:`~mlward.errors.MissingExtra` when the
    store's fsspec package is not installed."""
    scheme = scheme_of(url)
    fs = filesystem(scheme)
    base = url.split("://", 1)[1].strip("/")
    if not base:
        raise ScanError(f"{url}: name a bucket (and optionally a prefix)")
    try:
        found = fs.find(base, detail=True)
    except MissingExtra:
        raise
    except Exception as exc:  # the SDKs' own errors: credentials, no such bucket, network
        raise ScanError(f"cannot list {url}: {type(exc).__name__}: {exc}") from None
    out = []
    for path in sorted(found):
        info = found[path]
        if info.get("type") == "directory":
            continue
        rel = path[len(base):].lstrip("/") if path.startswith(base) else path
        out.append(StoredObject(f"{scheme}://{path}", rel or path.rsplit("/", 1)[-1],
                                int(info.get("size") or 0)))
    return out


def filesystem(scheme: str) -> Any:
    """The fsspec filesystem for an object-storage scheme (one per process: fsspec caches
    instances); :class:`~mlward.errors.MissingExtra` when its package is not installed."""
    module, extra = OBJECT_SCHEMES[scheme]
    try:
        import fsspec

        __import__(module)
    except ImportError:
        raise MissingExtra(module, extra) from None
    return fsspec.filesystem(scheme)


class ReadCounter:
    """Requests made and bytes received for one object (shared by every open of it)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self._lock = _thread.allocate_lock()

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes += nbytes


class _Spans:
    """Byte spans already fetched from one object, the most recent kept (bounded)."""

    def __init__(self) -> None:
        self._spans: OrderedDict[int, bytes] = OrderedDict()

    def at(self, pos: int, end: int) -> bytes:
        """The bytes from ``pos`` (up to ``end``) that a span holds, else the empty string."""
        for begin, data in self._spans.items():
            if begin <= pos < begin + len(data):
                self._spans.move_to_end(begin)
                return data[pos - begin:end - begin]
        return b""

    def next_start(self, pos: int, end: int) -> int:
        """Where the first span after ``pos`` begins (``end`` when none does before it)."""
        return min((b for b in self._spans if pos < b < end), default=end)

    def put(self, start: int, data: bytes) -> None:
        if len(data) > CACHE_SPAN_BYTES:
            return
        self._spans[start] = data
        self._spans.move_to_end(start)
        while len(self._spans) > CACHE_SPANS:
            self._spans.popitem(last=False)


class RangedFile(io.RawIOBase):
    """A read-only, seekable view of a remote object: each read is one ranged request for
    exactly the bytes asked (see the module documentation)."""

    def __init__(self, fetch: Fetch, size: int, counter: ReadCounter, spans: _Spans,
                 name: str) -> None:
        super().__init__()
        self._fetch = fetch
        self._size = size
        self._counter = counter
        self._spans = spans
        self._pos = 0
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(22, "negative seek position")
        self._pos = base + offset
        return self._pos

    def _get(self, n: int) -> bytes:
        """The next ``n`` bytes: what was already fetched from the spans, each gap between
        them with one request for its bytes (a tiny read: see :data:`MIN_REQUEST`)."""
        end = min(self._pos + n, self._size)
        parts = []
        pos = self._pos
        while pos < end:
            data = self._spans.at(pos, end)
            if not data:
                # A tiny read (a signature, a data descriptor) is usually followed by the
                # header after it: ask for MIN_REQUEST bytes (up to a span already here),
                # which costs no more than the tiny request itself.
                want = pos + MIN_REQUEST if n < TINY_READ else end
                stop = self._spans.next_start(pos, min(self._size, max(end, want)))
                data = self._fetch(pos, stop)
                self._counter.add(len(data))
                if len(data) != stop - pos:
                    raise OSError(f"{self.name}: {len(data)} bytes where {stop - pos} were "
                                  "asked; the object changed while it was read")
                self._spans.put(pos, data)
                data = data[:end - pos]
            parts.append(data)
            pos += len(data)
        self._pos = max(self._pos, end)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._get(len(view))
        view[:len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        return self._get(size)

    def readall(self) -> bytes:
        parts = []
        while chunk := self._get(READALL_CHUNK):
            parts.append(chunk)
        return b"".join(parts)


class RemoteObject:
    """One remote object to read: where it is, its size, and the requests made so far."""

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.size = size
        self.counter = ReadCounter()
        self._spans = _Spans()
        self._fetch = fetcher(url)

    def open(self) -> BinaryIO:
        """A :class:`RangedFile` (unbuffered on purpose: a buffer reads ahead)."""
        return cast(BinaryIO, RangedFile(self._fetch, self.size, self.counter, self._spans,
                                         self.url))


def fetcher(url: str) -> Fetch:
    """A ranged reader for ``url`` (object storage through fsspec, or HTTP)."""
    scheme = scheme_of(url)
    if scheme in HTTP_SCHEMES:
        return lambda start, end: http_range(url, start, end)
    fs = filesystem(scheme)

    def fetch(start: int, end: int) -> bytes:
        try:
            data: bytes = fs.cat_file(url, start=start, end=end)
        except OSError:
            raise
        except Exception as exc:  # the SDKs' own errors (credentials, throttling, ...)
            raise OSError(f"{type(exc).__name__}: {exc}") from exc
        return data

    return fetch


def http_range(url: str, start: int, end: int) -> bytes:
    """Bytes ``start..end`` of ``url`` with one ``Range`` request. A server that ignores the
    range (``200``) is read only as far as ``end`` and the connection closed."""
    import urllib.error  # with http.client, ssl and email: a third of a local scan's imports
    import urllib.request

    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-{end - 1}"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            if response.status == 206:
                return bytes(response.read(end - start))
            return bytes(response.read(end))[start:]
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code} {exc.reason} for {url}") from None
    except urllib.error.URLError as exc:
        raise OSError(f"cannot reach {url}: {exc.reason}") from None
