"""The API for third-party scanners.

A scanner recognises a format by content and reports through the context it is given::

    from mlward.plugins import Scanner, ScanContext, Source

    class MyFormat(Scanner):
        name = "my-format"

        def sniff(self, source: Source) -> bool:
            return source.head(4) == b"MYFM"

        def scan(self, source: Source, ctx: ScanContext) -> None:
            ctx.examined(source.location, self.name)

Subclasses register themselves when their module is imported; publish the module under the
``mlward.scanners`` entry-point group so that ``mlward scan`` loads it.
"""

from __future__ import annotations

from typing import Any

from mlward._internal.scanners.interface import DirectoryScanner, Limits, ScanContext, Scanner
from mlward._internal.sources import Source
from mlward._internal.sources.archives import member_path_problem


def scan_pickle_stream(*args: Any, **kwargs: Any) -> Any:
    """Judge the pickle(s) in a binary stream with mlward's opcode machine, reporting through
    ``ctx``: ``scan_pickle_stream(stream, location, ctx, max_pickles=None, joblib=False)``
    (for scanners of formats that carry pickles)."""
    from mlward._internal.scanners.pickle import scan_pickle_stream as scan

    return scan(*args, **kwargs)


__all__ = ["DirectoryScanner", "Limits", "ScanContext", "Scanner", "Source",
           "member_path_problem", "scan_pickle_stream"]
