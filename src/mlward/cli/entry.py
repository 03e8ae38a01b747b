"""The ``mlward`` console script.

A scan's worker processes fork from a server that imports the scanners once. Starting that
server is the first thing done, before the CLI itself is imported, so that the two start-ups
(the server's and this process's) run side by side instead of one after the other: on a
one-file scan that is most of the cost of running it in an isolated worker. On Linux the
server is forked from this process (:mod:`mlward.executors.prefork`), which also spares it
an interpreter's start. This process may also fork a helper for CPU-bound work (hashing a
long listing of small files) while it has no other thread; a library caller's never is.
"""

import sys

WORKER_COMMANDS = frozenset({"scan", "baseline", "demo", "bom", "gate", "audit"})
"""Commands that scan in worker processes."""


def entrypoint() -> None:
    argv = sys.argv[1:]
    words = [a for a in argv if not a.startswith("-")]
    from mlward.executors import prefork

    prefork.allow_helpers()  # this process is mlward's own: it may fork a helper
    scans = bool(words) and words[0] in WORKER_COMMANDS \
        and not {"inline", "-h", "--help"} & set(argv)
    if scans and not prefork.start():
        from mlward.executors.process import warm_up

        warm_up()
    from mlward.cli.main import main

    code = main(argv)
    prefork.forget()  # the server exits as soon as it can, not once this process is gone
    # What is still alive is freed at exit anyway: the collector's last pass over all of it
    # (about a tenth of a one-file scan's time) would find nothing to run. Python does not
    # promise finalizers for objects alive at exit; every file mlward writes is closed.
    import gc

    gc.freeze()
    sys.exit(code)
