"""Work units on a Dask ``distributed`` cluster (``pip install 'mlward[dask]'``).

``cluster = "tcp://HOST:8786"`` connects to a scheduler the user runs (``dask scheduler`` and
``dask worker`` processes, Kubernetes, a batch system); ``cluster = "local:N"`` starts a
``LocalCluster`` of N worker processes on 127.0.0.1 for one run. mlward brings no scheduler
of its own.

- Before any work is sent, every worker is asked which mlward and Python it runs; a worker
  that differs from the client stops the run (results from another version's scanners would
  be mixed into one report). Each task checks again on arrival (a worker that joins later).
- Units travel in batches (one Dask task each: the scheduler's per-task cost is paid once per
  batch, not once per file), submitted in a bounded window and collected with
  ``as_completed``: the client holds only the window's futures, and results stream into the
  report as they arrive, however many files there are.
- Faults: a worker that dies (killed, out of memory, a native crash) has its tasks re-run
  elsewhere by the scheduler. When a task keeps dying with its workers (``KilledWorker``),
  its units run again one at a time with nothing else in flight, so only the unit at fault
  ends with an error. A unit that
  runs past ``settings.timeout`` is found by polling the workers; its task is cancelled, its
  worker restarted (through its nanny), it ends with an error and the rest of its batch runs
  again. Every unit yields exactly one outcome. A scheduler that goes away raises
  :class:`~mlward.errors.ExecutorLost` after the outcomes already received.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mlward._internal import logs
from mlward._version import __version__
from mlward.errors import ExecutorLost, MissingExtra, UsageError
from mlward.executors import Executor, Outcome, U, describe_error

if TYPE_CHECKING:
    from mlward.settings import Settings

log = logs.get("mlward.executors.dask")

MAX_BATCH = 256
"""Units in one task at most. A task costs the scheduler and the client a few milliseconds
of round trips (4-5 ms on the benchmark machine): at 64 units a task that was 30% on top of
scanning 10,000 small files with one worker, at 256 it is about 3% (bench/README.md)."""
TASKS_PER_THREAD = 8
"""Batches are sized so that each worker thread gets at least this many (load balance)."""
WINDOW_PER_THREAD = 4
"""Tasks in flight per worker thread: enough to keep workers busy between round trips."""
CONNECT_TIMEOUT = 30.0
WORKER_WAIT = 60.0
POLL_SECONDS = 5.0

_RUNNING: dict[Any, tuple[int, float]] = {}
"""On a worker: task key -> (position in its batch of the unit running, when it started)."""


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingExtra("distributed", "dask") from None
    return distributed


def versions() -> dict[str, str]:
    """What a worker must match: mlward's version and Python's (pickles cross between
    them)."""
    return {"mlward": __version__, "python": "{}.{}".format(*sys.version_info[:2])}


def _worker_versions() -> dict[str, str] | None:
    """:func:`versions` as a worker has them, None without mlward. Sent by value (see
    below) and naming nothing of this module, so that a worker without mlward can answer."""
    import importlib
    import sys as system

    try:
        version = importlib.import_module("mlward._version").__version__
    except ImportError:
        return None
    return {"mlward": str(version), "python": "{}.{}".format(*system.version_info[:2])}


_worker_versions.__module__ = "__main__"  # cloudpickle sends __main__'s functions by value


def run_batch(fn: Callable[[U], Any], units: Sequence[U],
              version: str) -> list[tuple[Any, str | None]]:
    """A task: ``fn`` over a batch of units, ``(result, error)`` for each."""
    if version != __version__:
        raise RuntimeError(f"this worker runs mlward {__version__}, the client {version}")
    key = _distributed().get_worker().get_current_task()
    out: list[tuple[Any, str | None]] = []
    try:
        for n, unit in enumerate(units):
            _RUNNING[key] = (n, time.monotonic())
            try:
                out.append((fn(unit), None))
            except MemoryError:
                out.append((None, "ran out of memory"))
            except Exception as exc:
                out.append((None, describe_error(exc)))
    finally:
        _RUNNING.pop(key, None)
    return out


def running_units() -> dict[Any, tuple[int, float]]:
    """On a worker: task key -> (unit position, seconds it has run)."""
    now = time.monotonic()
    return {key: (n, now - started) for key, (n, started) in list(_RUNNING.items())}


def plan(count: int, threads: int) -> list[range]:
    """Contiguous batches of unit positions: small enough that every thread gets
    :data:`TASKS_PER_THREAD` of them, at most :data:`MAX_BATCH` units each."""
    size = max(1, min(MAX_BATCH, math.ceil(count / (max(threads, 1) * TASKS_PER_THREAD))))
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


class DaskExecutor(Executor):
    """Units on a Dask cluster; see the module documentation."""

    name = "dask"

    def __init__(self, settings: Settings) -> None:
        _distributed()  # a missing extra is reported before anything else happens
        self.address = settings.cluster or ""
        if not self.address:
            raise UsageError("the dask executor needs a cluster (--cluster tcp://HOST:8786 "
                             "or local:N)")
        self.timeout = settings.timeout
        self.max_memory = settings.max_memory
        self._client: Any = None
        self._cluster: Any = None
        self._lock = threading.Lock()
        self._keys: dict[Any, Any] = {}  # task key -> its future, for the watchdog
        self._overran: dict[Any, tuple[int, float]] = {}

    # -- the cluster ----------------------------------------------------------------------

    def connect(self) -> Any:
        """The client, connected and checked (once)."""
        if self._client is not None:
            return self._client
        d = _distributed()
        if self.address.startswith("local:"):
            n = self.address[len("local:"):]
            if not n.isdigit() or int(n) < 1:
                raise UsageError(f"cluster {self.address!r}: local:N needs N of at least 1")
            self._cluster = d.LocalCluster(
                n_workers=int(n), threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0", memory_limit=self.max_memory or "auto",
                silence_logs=logging.ERROR)
            self._client = d.Client(self._cluster)
        else:
            try:
                self._client = d.Client(self.address, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"cannot reach the Dask scheduler at {self.address}: "
                                 f"{exc}") from None
        try:
            self._client.wait_for_workers(1, timeout=WORKER_WAIT)
        except (OSError, TimeoutError):
            self.close()
            raise UsageError(f"the Dask scheduler at {self.address} has no workers "
                             f"(waited {WORKER_WAIT:g} s)") from None
        self.check_versions()
        return self._client

    def check_versions(self) -> None:
        """Refuse workers that do not run this mlward on this Python (before any work)."""
        here = versions()
        answers = self._client.run(_worker_versions, on_error="return")
        bad = []
        for address, theirs in sorted(answers.items()):
            if theirs is None:
                bad.append(f"{address}: mlward is not installed")
            elif isinstance(theirs, BaseException):
                bad.append(f"{address}: {describe_error(theirs)}")
            elif theirs != here:
                bad.append(f"{address}: mlward {theirs['mlward']} on Python {theirs['python']}")
        if bad:
            self.close()
            raise UsageError(
                f"Dask workers that do not run mlward {here['mlward']} on Python "
                f"{here['python']} (install it on every worker: pip install "
                f"'mlward[dask]=={__version__}'); nothing was sent: " + "; ".join(bad))

    def close(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is not None:
            try:
                client.close(timeout=10)
            except Exception as exc:  # a scheduler already gone
                log.debug("closing the Dask client: %s", exc)
        if cluster is not None:
            cluster.close(timeout=30)

    # -- the work -------------------------------------------------------------------------

    def map(self, fn: Callable[[U], Any], units: Sequence[U]) -> Iterator[Outcome]:
        if not units:
            return
        d = _distributed()
        client = self.connect()
        threads = sum(client.nthreads().values()) or 1
        queue: deque[list[int]] = deque(list(r) for r in plan(len(units), threads))
        # Units of tasks that kept killing workers: each runs again alone, so that only the
        # one at fault fails (a task queued beside a crashing one dies with it).
        suspects: deque[int] = deque()
        window = max(2, threads * WINDOW_PER_THREAD)
        pending: dict[Any, list[int]] = {}
        alone: set[Any] = set()
        done = d.as_completed()
        stop = threading.Event()
        watchdog = threading.Thread(target=self._watch, args=(stop,), daemon=True,
                                    name="mlward-dask-watchdog")
        watchdog.start()

        def submit(batch: list[int]) -> Any:
            future = client.submit(run_batch, fn, [units[i] for i in batch], __version__,
                                   pure=False)
            with self._lock:
                self._keys[future.key] = future
            pending[future] = batch
            done.add(future)
            return future

        try:
            while queue or pending or suspects:
                while queue and len(pending) < window:
                    submit(queue.popleft())
                if not queue and not pending:
                    alone.add(submit([suspects.popleft()]).key)
                future = next(done)
                batch = pending.pop(future)
                with self._lock:
                    self._keys.pop(future.key, None)
                yield from self._settle(future, batch, queue, suspects, future.key in alone)
        finally:
            stop.set()
            if pending and self._client is not None and self._client.status == "running":
                self._client.cancel(list(pending))
            watchdog.join()

    def _settle(self, future: Any, batch: list[int], queue: deque[list[int]],
                suspects: deque[int], alone: bool) -> Iterator[Outcome]:
        """The outcomes of a finished task, or its units back in a queue."""
        if future.status != "cancelled":
            try:
                # A result lost with its worker since it was announced is computed again
                # first (the future went back to pending): result() waits for it.
                results = future.result()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                if future.status != "cancelled":
                    yield from self._failed(exc, batch, suspects, alone)
                    return
            else:
                for unit, (result, error) in zip(batch, results, strict=True):
                    yield Outcome(unit, result, error)
                return
        with self._lock:
            overran = self._overran.pop(future.key, None)
        if overran is None:
            raise ExecutorLost(f"the Dask scheduler at {self.address} went away "
                               f"(client {self._client.status if self._client else '-'})")
        n, elapsed = overran
        yield Outcome(batch[n], error=f"timed out after {elapsed:.0f} s (its worker was "
                      "restarted)")
        rest = batch[:n] + batch[n + 1:]
        if rest:
            queue.appendleft(rest)

    @staticmethod
    def _failed(exc: BaseException, batch: list[int], suspects: deque[int],
                alone: bool) -> Iterator[Outcome]:
        killed = type(exc).__name__ == "KilledWorker"
        if killed and not alone:
            log.info("%d unit(s) were on workers that kept dying: each runs again alone",
                     len(batch))
            suspects.extend(batch)
            return
        message = ("its worker died each time it ran (a crash or the memory limit)" if killed
                   else describe_error(exc))
        for unit in batch:
            yield Outcome(unit, error=message)

    def _watch(self, stop: threading.Event) -> None:
        """Every few seconds, ask the workers how long their current units have run; stop
        those past the time budget (cancel the task, restart its worker)."""
        every = min(POLL_SECONDS, self.timeout / 4)
        while not stop.wait(every):
            client = self._client
            if client is None or client.status != "running":
                continue
            try:
                answers = client.run(running_units, on_error="return")
            except Exception as exc:  # the cluster is going away: map() will say so
                log.debug("polling the Dask workers: %s", exc)
                continue
            for address, tasks in answers.items():
                if not isinstance(tasks, dict):
                    continue
                for key, (n, elapsed) in tasks.items():
                    if elapsed <= self.timeout:
                        continue
                    with self._lock:
                        future = self._keys.get(key)
                        if future is None or key in self._overran:
                            continue
                        self._overran[key] = (n, elapsed)
                    log.warning("a unit ran %.0f s on %s: restarting that worker", elapsed,
                                address)
                    future.cancel()
                    try:
                        client.restart_workers([address], raise_for_error=False)
                    except Exception as exc:
                        log.warning("could not restart %s (no nanny?): %s", address, exc)
