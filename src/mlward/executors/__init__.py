"""Where work units run: the seam between the pipeline and processes, threads or a cluster.

An :class:`Executor` takes a function and a sequence of work units and yields an
:class:`Outcome` per unit as each completes, in any order. A unit that crashes its worker, runs
past its time budget or raises ends as an outcome with an ``error`` (the run goes on); the
pipeline never knows which executor it has. Units and the function must be picklable for the
process and cluster executors (a module-level function, ``functools.partial`` of one).

- :class:`ProcessExecutor` (the default): worker processes started with ``forkserver`` where
  the platform has it, else ``spawn`` (Linux, macOS and Windows); every unit is crash-isolated.
  On Linux the console script runs a fork server of its own (:mod:`mlward.executors.prefork`),
  which imports no ``multiprocessing``.
- :class:`ThreadExecutor`: threads, for I/O-bound units (network and object storage).
- :class:`InlineExecutor`: this process, one unit after another, no isolation (library use
  and debugging).
- ``mlward.executors.dask.DaskExecutor``: a Dask ``distributed`` cluster (``mlward[dask]``).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

if TYPE_CHECKING:
    from types import TracebackType

    from mlward.settings import Settings

U = TypeVar("U")


class Outcome(NamedTuple):
    """What became of one work unit: its ``result``, or the ``error`` that stopped it."""

    unit: int
    """The unit's position in the sequence given to :meth:`Executor.map` (not ``index``:
    that name would shadow ``tuple.index``)."""
    result: Any = None
    error: str | None = None


class Executor(abc.ABC):
    """Runs work units; see the module documentation."""

    name: str = "executor"

    @abc.abstractmethod
    def map(self, fn: Callable[[U], Any], units: Sequence[U]) -> Iterator[Outcome]:
        """``fn(unit)`` for every unit, as outcomes in completion order. Closing the iterator
        early (or Ctrl-C) stops the work still running."""

    def close(self) -> None:  # noqa: B027 (most executors hold nothing between runs)
        """Release workers and connections (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def describe_error(exc: BaseException) -> str:
    return f"raised {type(exc).__name__}: {exc}"


class InlineExecutor(Executor):
    """Units run here, in order. A unit that raises becomes an error outcome; nothing
    protects this process from a unit that crashes it."""

    name = "inline"

    def map(self, fn: Callable[[U], Any], units: Sequence[U]) -> Iterator[Outcome]:
        for index, unit in enumerate(units):
            try:
                result = fn(unit)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                yield Outcome(index, error=describe_error(exc))
            else:
                yield Outcome(index, result)


class ThreadExecutor(Executor):
    """Units run in a pool of threads (for units that wait on the network)."""

    name = "thread"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or min(32, available_cores() * 4)

    def map(self, fn: Callable[[U], Any], units: Sequence[U]) -> Iterator[Outcome]:
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        from mlward._internal.idle import run_idle

        def run(index: int) -> Outcome:
            try:
                return Outcome(index, fn(units[index]))
            except Exception as exc:
                return Outcome(index, error=describe_error(exc))

        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="mlward")
        try:
            pending: set[Future[Outcome]] = set()
            todo = iter(range(len(units)))
            # Keep a bounded number of units in flight, so that a long sequence does not
            # become a long queue of futures.
            for index in todo:
                pending.add(pool.submit(run, index))
                if len(pending) >= self.workers * 2:
                    run_idle()
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (f.result() for f in done)
            while pending:
                run_idle()
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform tells it)."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13+
        return int(os.process_cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):  # Linux
        try:
            return len(os.sched_getaffinity(0)) or 1
        except OSError:
            pass
    return os.cpu_count() or 1


def make_executor(settings: Settings, *, units: int | None = None) -> Executor:
    """The executor ``settings`` ask for, sized for ``units`` work units when known."""
    kind = settings.executor
    if kind == "inline":
        return InlineExecutor()
    if kind == "thread":
        return ThreadExecutor(settings.jobs)
    if kind == "dask":
        from mlward.executors.dask import DaskExecutor

        executor: Executor = DaskExecutor(settings)
        return executor
    from mlward.executors.process import ProcessExecutor

    workers = settings.jobs or available_cores()
    if units is not None:
        workers = max(1, min(workers, units))
    return ProcessExecutor(workers, timeout=settings.timeout, max_memory=settings.max_memory)


__all__ = ["Executor", "InlineExecutor", "Outcome", "ThreadExecutor", "available_cores",
           "make_executor"]
