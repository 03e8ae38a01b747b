"""What a scanner is, what it is given, and how it reports.

A :class:`Scanner` recognises a format by content (:meth:`Scanner.sniff`) and examines one
:class:`~mlward._internal.sources.Source` (:meth:`Scanner.scan`), reporting through the
:class:`ScanContext`: findings, skips, the formats it examined, and the nested sources it found
(archive members), which the context dispatches in turn, within the :class:`Limits`.

Scanners register themselves by subclassing (``__init_subclass__``); third-party scanners are
loaded from the ``mlward.scanners`` entry-point group.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from mlward.findings import Finding, Location, Skipped

if TYPE_CHECKING:
    from mlward._internal.sources import Source


class Limits(NamedTuple):
    """Safety bounds for hostile input. Reaching one makes the item inconclusive."""

    max_depth: int = 8
    """Containers inside containers (a zip in a tar in a gzip is depth 3)."""
    max_members: int = 100_000
    """Members listed from one archive."""
    max_member_bytes: int = 4 << 30
    """Decompressed bytes read from one member or compressed stream."""
    max_total_bytes: int = 16 << 30
    """Decompressed bytes read under one top-level input, all members together."""
    max_ratio: float = 250.0
    """Decompressed/compressed ratio above which a member is treated as a bomb."""
    max_pickle_ops: int = 20_000_000
    """Opcodes executed symbolically in one pickle stream."""
    max_stack_depth: int = 100_000
    """Nesting tolerated in a pickle stream: MARK frames inside MARK frames, and items taken
    one at a time from under this many others (containers inside containers). A long flat
    list or tuple is not nesting."""


class ScanContext(abc.ABC):
    """What a scanner reports to. Implemented by the scan engine."""

    limits: Limits

    @abc.abstractmethod
    def add(self, finding: Finding) -> None:
        """Report a finding."""

    @abc.abstractmethod
    def skip(self, location: Location, reason: str, *, inconclusive: bool) -> None:
        """Report something not examined; ``inconclusive`` when it might have mattered."""

    @abc.abstractmethod
    def examined(self, location: Location, format: str) -> None:
        """Record that ``location`` was examined as ``format``."""

    @abc.abstractmethod
    def scan_child(self, source: Source) -> None:
        """Sniff and scan a nested source (an archive member, a decompressed stream)."""

    @abc.abstractmethod
    def charge(self, location: Location, nbytes: int) -> bool:
        """Count ``nbytes`` decompressed under the current input; False once over budget.

        When it returns False the caller stops reading and the context has already recorded
        the location as inconclusive.
        """

    @property
    @abc.abstractmethod
    def depth(self) -> int:
        """How deep inside containers the current source is (0 for a file on disk)."""


class Scanner(abc.ABC):
    """A format family. Subclasses register themselves in :data:`SCANNERS`."""

    name: ClassVar[str]
    """Short format name used in reports (``pickle``, ``pytorch-zip``, ...)."""
    priority: ClassVar[int] = 100
    """Lower runs first. Specific formats (a torch zip) come before generic ones (any zip)."""
    supplementary: ClassVar[bool] = False
    """When true, the scanner also runs on sources another scanner claimed (a secrets pass
    over a requirements file), after it, unless that scanner ``covers`` it. It still claims
    sources no other scanner recognises, in its priority order."""
    covers: ClassVar[frozenset[str]] = frozenset()
    """Names of supplementary scanners whose work this scanner already does."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "__abstractmethods__", None) and "name" in cls.__dict__:
            SCANNERS.append(cls())

    @abc.abstractmethod
    def sniff(self, source: Source) -> bool:
        """True when the source's content is this format. Must read only what it needs."""

    @abc.abstractmethod
    def scan(self, source: Source, ctx: ScanContext) -> None:
        """Examine the source and report through ``ctx``. Never executes content."""


class DirectoryScanner(abc.ABC):
    """A check over a whole folder (a model repository, a SavedModel directory).

    Runs before the folder's files are scanned one by one; the files are still scanned.
    """

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "__abstractmethods__", None) and "name" in cls.__dict__:
            DIRECTORY_SCANNERS.append(cls())

    @abc.abstractmethod
    def matches(self, directory: Path) -> bool:
        """True when this folder is one this scanner understands."""

    @abc.abstractmethod
    def scan(self, directory: Path, location: Location, ctx: ScanContext) -> None:
        """Examine the folder and report through ``ctx``."""


SCANNERS: list[Scanner] = []
DIRECTORY_SCANNERS: list[DirectoryScanner] = []

__all__ = [
    "DIRECTORY_SCANNERS",
    "SCANNERS",
    "DirectoryScanner",
    "Limits",
    "ScanContext",
    "Scanner",
    "Skipped",
]
