"""What worker processes start with: imported once by the fork server, so that every worker
forked from it has the scanners (and the pickle machine, which most scans need) loaded, and
the worker loop it runs (with the shared memory it reports its progress through)."""

from mlward._internal.engine import Engine
from mlward._internal.scanners import load_scanners
from mlward._internal.scanners.pickle import machine
from mlward.executors import process

load_scanners()

__all__ = ["Engine", "machine", "process"]
