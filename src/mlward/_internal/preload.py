"""What worker processes start with: imported once by the fork server, so that every worker
forked from it has the scanners (and the pickle machine, which most scans need) loaded."""

from mlward._internal.pipeline import Engine
from mlward._internal.scanners import load_scanners
from mlward._internal.scanners.pickle import machine

load_scanners()

__all__ = ["Engine", "machine"]
