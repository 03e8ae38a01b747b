"""What worker processes start with: imported once by the fork server, so that every worker
forked from it has the scanners (and the pickle machine, which most scans need) loaded, the
function its units run, and the worker loop it runs."""

from mlward._internal import units
from mlward._internal.engine import Engine
from mlward._internal.scanners import load_scanners
from mlward._internal.scanners.pickle import machine
from mlward.executors import process

load_scanners()

__all__ = ["Engine", "machine", "process", "units"]
