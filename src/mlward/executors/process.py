"""Crash-isolated worker processes, on every platform.

Workers fork from a server that has already imported the scanners: the console script's own
(:mod:`mlward.executors.prefork`, Linux) when it started one, else multiprocessing's
``forkserver``; ``spawn`` where there is no fork server (Windows). Never a bare ``fork`` of
this process, which is unsafe once threads exist.

Each worker takes a batch of units and runs them one after another. Before each unit it writes
the unit's number and start time into a few bytes of memory it shares with the parent, and it
sends the results back together about every :data:`REPLY_EVERY` seconds (a message per unit
cost both processes more than a small file's scan). The parent therefore always knows which
unit a worker is on, which gives exact isolation: when a worker dies (a native library
crashing on a hostile file, a memory cap) or that unit overruns its time budget, the unit ends
with an error, the rest of its batch (with the units it finished but had not yet sent back,
which run again) goes back to the queue and a new worker takes its place. Ctrl-C, an
exception or closing the iterator kills every worker before :meth:`ProcessExecutor.map`
returns: nothing is left behind.

Not :class:`concurrent.futures.ProcessPoolExecutor`: a worker death breaks its whole pool
and it cannot say which task was running or stop one that runs too long.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from mlward._internal.idle import run_idle
from mlward.executors import Executor, Outcome, U, describe_error, prefork
from mlward.executors.prefork import PRELOAD, PROGRESS_BYTES


def start_method() -> str:
    """``forkserver`` where available (the console script's, or multiprocessing's), else
    ``spawn``."""
    if prefork.server() is not None:
        return "forkserver"
    import multiprocessing

    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def warm_up() -> None:
    """Start multiprocessing's fork server now (where the console script could not fork its
    own), so that its start-up (a new interpreter importing the scanners) overlaps with the
    caller's own work instead of delaying the first unit."""
    if start_method() == "forkserver":
        import multiprocessing
        from multiprocessing import forkserver

        multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
        forkserver.ensure_running()


def _limit_memory(max_memory: int | None) -> None:
    if not max_memory:
        return
    try:
        import resource
    except ImportError:  # Windows: no address-space limit
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))


REPLY_EVERY = 0.02
"""Seconds a worker gathers results before it sends them (it always sends at a batch's end)."""

Reply = tuple[int, Any, "str | None"]
"""A unit's ``(index, result, error)``."""


def _worker(conn: Any, progress: Any, max_memory: int | None) -> None:
    """A worker's loop: batches in, lists of replies out; ``progress`` (shared with the
    parent): the unit now running and when it started."""
    # Ctrl-C reaches the whole process group: the parent handles it and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_memory(max_memory)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, batch = message
        replies: list[Reply] = []
        sent = time.monotonic()
        for index, unit in batch:
            # The start first: a parent reading between the two writes sees the unit before
            # (finished, so not timed) with a new start, never this unit with an old one.
            progress[1] = time.monotonic()
            progress[0] = index
            try:
                replies.append((index, fn(unit), None))
            except MemoryError:
                replies.append((index, None, "ran out of memory"))
            except BaseException as exc:
                replies.append((index, None, describe_error(exc)))
            now = time.monotonic()
            if now - sent >= REPLY_EVERY:
                _send(conn, replies)
                replies, sent = [], now
        _send(conn, replies)


def _send(conn: Any, replies: list[Reply]) -> None:
    try:
        conn.send(replies)
    except Exception:  # a result that cannot be pickled: the others still go back
        for index, result, error in replies:
            try:
                conn.send([(index, result, error)])
            except Exception as exc:
                conn.send([(index, None, f"result could not be sent back: {exc}")])


def serve_forked(channel: int, progress: int) -> None:
    """A worker forked by the console script's fork server: its loop, over the socket
    ``channel``, reporting its progress in the ``memfd`` ``progress``. The first message
    says where it is (the parent's ``sys.path`` and folder, as multiprocessing tells its
    workers) and its memory cap."""
    import mmap

    conn = _Channel(socket.socket(fileno=channel))
    shared = mmap.mmap(progress, PROGRESS_BYTES)
    os.close(progress)
    try:
        path, folder, max_memory = conn.recv()
    except (EOFError, OSError):
        return
    sys.path[:] = path
    with contextlib.suppress(OSError):
        if str(Path.cwd()) != folder:
            os.chdir(folder)
    _worker(conn, memoryview(shared).cast("d"), max_memory)


class _Channel:
    """A socket carrying pickled messages, each after its length: the part of
    multiprocessing's ``Connection`` the executor uses, without importing multiprocessing
    (which costs a one-file scan more than its scan)."""

    __slots__ = ("sock",)
    _LENGTH = struct.Struct("!Q")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, obj: Any) -> None:
        data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        self.sock.sendall(self._LENGTH.pack(len(data)))
        self.sock.sendall(data)

    def recv(self) -> Any:
        (length,) = self._LENGTH.unpack(self._read(self._LENGTH.size))
        # Like multiprocessing's Connection, which this replaces, it unpickles what it gets.
        # mlward: ignore[MW301] only mlward's own processes write to this channel
        return pickle.loads(self._read(length))

    def _read(self, n: int) -> bytearray:
        buffer = bytearray(n)
        view = memoryview(buffer)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if not k:
                raise EOFError("the other end closed the channel")
            got += k
        return buffer

    def poll(self) -> bool:
        return bool(_wait([self], 0))

    def close(self) -> None:
        self.sock.close()


class _Forked:
    """A worker the console script's fork server forked: the part of multiprocessing's
    ``Process`` the executor uses. It is the server's child, not this process's, so its
    exit code comes through its status pipe (the ``sentinel``)."""

    def __init__(self, pid: int, status: int) -> None:
        self.pid = pid
        self.sentinel = status
        self.exitcode: int | None = None

    def is_alive(self) -> bool:
        self.join(0)
        return self.exitcode is None

    def join(self, timeout: float | None = None) -> None:
        if self.exitcode is None and self.sentinel >= 0 and _wait([self.sentinel], timeout):
            self.exitcode = prefork.read_exit_code(self.sentinel)

    def kill(self) -> None:
        if self.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


def _wait(objects: list[Any], timeout: float | None) -> list[Any]:
    """The objects (descriptors, or with a ``fileno()``) that are readable or closed,
    waiting up to ``timeout`` seconds (for ever: None)."""
    if not hasattr(select, "poll"):  # Windows: pipes are not sockets there
        from multiprocessing.connection import wait

        return list(wait(objects, timeout))
    poller = select.poll()
    by_fd = {}
    for obj in objects:
        fd = obj if isinstance(obj, int) else obj.fileno()
        by_fd[fd] = obj
        poller.register(fd, select.POLLIN)
    ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    return [by_fd[fd] for fd, _ in poller.poll(ms)]


class _Worker(NamedTuple):
    process: Any  # a multiprocessing Process, or a _Forked
    conn: Any  # a multiprocessing Connection, or a _Channel
    progress: Any
    """Shared with the worker: ``[index of the unit it runs, when that unit started]``."""


class _Busy:
    """The batch a worker holds: the units without a result yet, and when it was sent."""

    __slots__ = ("left", "sent")

    def __init__(self, left: list[int], sent: float) -> None:
        self.left = left
        self.sent = sent

    def running(self, worker: _Worker) -> tuple[int | None, float]:
        """The unit the worker is on (None before its first, or after its last) and since
        when (the batch's sending, before its first unit)."""
        index, started = int(worker.progress[0]), worker.progress[1]
        if index in self.left:
            return index, max(started, self.sent)
        return None, self.sent


class ProcessExecutor(Executor):
    """``workers`` processes; ``timeout`` seconds per unit; ``max_memory`` bytes of address
    space per worker (where the platform can limit it)."""

    name = "process"

    def __init__(self, workers: int = 1, *, timeout: float | None = None,
                 max_memory: int | None = None, method: str | None = None,
                 batch: int | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.timeout = timeout
        self.max_memory = max_memory
        self.method = method or start_method()
        self.batch = batch

    def _start(self) -> _Worker:
        server = prefork.server() if self.method == "forkserver" else None
        if server is not None:
            try:
                return self._fork(server)
            except OSError:  # the server has gone: the standard start from now on
                prefork.forget()
        import multiprocessing

        ctx: Any = multiprocessing.get_context(self.method)
        if self.method == "forkserver":
            ctx.set_forkserver_preload(PRELOAD)
        parent, child = ctx.Pipe(duplex=True)
        progress = ctx.RawArray("d", [-1.0, 0.0])
        process = ctx.Process(target=_worker, args=(child, progress, self.max_memory),
                              daemon=True, name="mlward-worker")
        process.start()
        child.close()
        return _Worker(process, parent, progress)

    def _fork(self, server: prefork.Server) -> _Worker:
        """A worker forked by the console script's server."""
        import mmap

        asked, pid = server.fork_worker()
        try:
            shared = mmap.mmap(asked.progress, PROGRESS_BYTES)
        except BaseException:
            os.kill(pid, signal.SIGKILL)  # the server reaps it
            asked.close()
            raise
        os.close(asked.progress)
        progress = memoryview(shared).cast("d")
        progress[0], progress[1] = -1.0, 0.0
        conn = _Channel(asked.channel)
        process = _Forked(pid, asked.status)
        with contextlib.suppress(OSError):  # it died at once: the executor sees it gone
            conn.send((sys.path, str(Path.cwd()), self.max_memory))
        return _Worker(process, conn, progress)

    def map(self, fn: Callable[[U], Any], units: Sequence[U]) -> Iterator[Outcome]:
        if not units:
            return
        n_workers = min(self.workers, len(units))
        size = self.batch or max(1, min(64, len(units) // (n_workers * 8)))
        queue: deque[list[int]] = deque(
            list(range(i, min(i + size, len(units)))) for i in range(0, len(units), size))
        idle: list[_Worker] = []
        busy: dict[Any, tuple[_Worker, _Busy]] = {}
        try:
            while queue or busy:
                # Keep n_workers alive while there is work (replacing the dead ones); each
                # gets its batch as soon as it is there, not once all of them are.
                while queue and (idle or len(busy) < n_workers):
                    worker = idle.pop() if idle else self._start()
                    indices = queue.popleft()
                    try:
                        worker.conn.send((fn, [(i, units[i]) for i in indices]))
                    except (OSError, ValueError):  # it died while idle: replace it
                        _stop(worker)
                        queue.appendleft(indices)
                        continue
                    busy[worker.conn] = (worker, _Busy(indices, time.monotonic()))
                run_idle()  # what this process has to do anyway, while the workers work
                ready = _wait([*busy, *(w.process.sentinel for w, _ in busy.values())],
                             timeout=self._until_deadline(busy))
                now = time.monotonic()
                for conn in list(busy):
                    worker, state = busy[conn]
                    lost: str | None = None
                    try:
                        while conn in ready and conn.poll():
                            replies = conn.recv()
                            done = {index for index, _, _ in replies}
                            state.left = [i for i in state.left if i not in done]
                            for index, result, error in replies:
                                yield Outcome(index, result, error)
                    except (EOFError, OSError, ConnectionError):
                        lost = _death(worker)
                    if lost is None and not worker.process.is_alive() and state.left:
                        lost = _death(worker)
                    culprit, since = state.running(worker)
                    if (lost is None and state.left and self.timeout is not None
                            and now - since > self.timeout):
                        lost = f"stopped after the {self.timeout:g} s time budget"
                    if lost is not None:
                        del busy[conn]
                        _stop(worker)
                        # The unit it was on (the first, if it had not started one); the
                        # others it had finished go to the queue again (their results died
                        # with it).
                        if culprit is None:
                            culprit = state.left[0]
                        rest = [i for i in state.left if i != culprit]
                        if rest:
                            queue.appendleft(rest)
                        yield Outcome(culprit, error=lost)
                    elif not state.left:
                        del busy[conn]
                        idle.append(worker)
        finally:
            for worker in [*idle, *(w for w, _ in busy.values())]:
                _stop(worker, polite=not busy)

    def _until_deadline(self, busy: dict[Any, tuple[_Worker, _Busy]]) -> float | None:
        """How long to wait before a unit may be over its time budget (a unit that starts
        meanwhile has a later deadline: it is checked at the next wake-up)."""
        if self.timeout is None or not busy:
            return None
        first = min(state.running(worker)[1] for worker, state in busy.values())
        return max(0.0, first + self.timeout - time.monotonic()) + 0.01


def _death(worker: _Worker) -> str:
    worker.process.join(timeout=1.0)
    code = worker.process.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the worker process was killed by {name} while on this input"
    return f"the worker process exited (code {code}) while on this input"


def _stop(worker: _Worker, *, polite: bool = False) -> None:
    """End a worker: a ``None`` message when it is idle and ``polite``, else kill it."""
    process = worker.process
    if polite and process.is_alive():
        with contextlib.suppress(OSError, ValueError):
            worker.conn.send(None)
        if isinstance(process, _Forked):
            # An idle worker told to stop exits at once, and the fork server reaps it (or
            # kills it when this process's end closes): waiting for the server to say so
            # would delay every run's end by a worker's exit.
            with contextlib.suppress(OSError):
                worker.conn.close()
            process.close()
            return
        process.join(timeout=2.0)
    if process.is_alive():
        process.kill()
        process.join(timeout=5.0)
    with contextlib.suppress(OSError):
        worker.conn.close()
    with contextlib.suppress(ValueError):
        process.close()
