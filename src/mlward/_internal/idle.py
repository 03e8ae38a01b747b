"""Work a process may do while its executor waits for workers.

The CLI needs some modules only once the results are in (the report writer, SHA-256 for the
fingerprints, triage). Imported first, they would delay the units; imported last, they would
follow them. :func:`when_idle` queues such work, and an executor calls :func:`run_idle` when
it has handed out what it can and would otherwise block: the work then costs nothing but the
wait. In this thread, not a background one: a thread started earlier would take turns with
this process's own start-up for the interpreter lock. Nothing depends on the work being
done: it only makes later steps cheaper.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable

_tasks: deque[Callable[[], object]] = deque()


def when_idle(task: Callable[[], object]) -> None:
    """Run ``task`` once, the next time an executor in this process waits."""
    _tasks.append(task)


def run_idle() -> None:
    """Run the queued tasks (an exception in one is ignored: the work it would have done
    is done again, and reported, where it is needed)."""
    while _tasks:
        task = _tasks.popleft()
        with contextlib.suppress(Exception):
            task()
