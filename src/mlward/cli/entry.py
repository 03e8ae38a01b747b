"""The ``mlward`` console script.

A scan's worker processes fork from a server that imports the scanners once. Starting that
server is the first thing done (after the modules both processes need, :data:`SHARED`),
before the CLI itself is imported, so that the two start-ups (the server's and this
process's) run side by side instead of one after the other: on a one-file scan that is most
of the cost of running it in an isolated worker. On Linux the server is forked from this
process (:mod:`mlward.executors.prefork`), which also spares it an interpreter's start. This
process may also fork a helper for CPU-bound work (hashing a long listing of small files)
while it has no other thread; a library caller's never is.
"""

import os
import sys
from typing import NoReturn

WORKER_COMMANDS = frozenset({"scan", "baseline", "demo", "bom", "gate", "audit"})
"""Commands that scan in worker processes."""

SHARED = ["mmap", "pathlib", "pickle", "signal", "mlward.findings", "mlward.settings",
          "mlward.rules", "mlward._internal.walk", "mlward._internal.units",
          "mlward.executors.process"]
"""What both this process and the fork server import for a scan: imported before the fork,
once for both. Imported after it, each process would import them again, and each would
copy-on-write the other's pages as it did: measured, a one-file scan is 3 to 4 % faster."""


def entrypoint() -> None:
    argv = sys.argv[1:]
    words = [a for a in argv if not a.startswith("-")]
    from mlward.executors import prefork

    prefork.allow_helpers()  # this process is mlward's own: it may fork a helper
    scans = bool(words) and words[0] in WORKER_COMMANDS \
        and not {"inline", "-h", "--help"} & set(argv)
    if scans:
        import importlib

        for module in SHARED:
            importlib.import_module(module)
        if not prefork.start():
            from mlward.executors.process import warm_up

            warm_up()
    from mlward.cli.main import main

    code = main(argv)
    prefork.forget()  # the server exits as soon as it can, not once this process is gone
    _exit(code)


def _exit(code: int) -> NoReturn:
    """Exit with ``code`` without tearing the interpreter down.

    Python's finalization frees every module and object one by one (about 4 ms of a
    one-file scan), which the operating system does anyway. What of it matters is done here
    first, as at a normal exit: the ``atexit`` functions run (logging's flush, temporary
    folders) and standard output and error are flushed. Python does not promise finalizers
    for objects still alive at exit, and every file mlward writes is closed before its
    command returns. A thread still running, or output that cannot be flushed, takes the
    normal exit (which waits for the thread, or reports the output error)."""
    threading = sys.modules.get("threading")
    if threading is not None and any(not t.daemon and t is not threading.main_thread()
                                     for t in threading.enumerate()):
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code)
