"""The scan's fork server, forked from the CLI process in its first milliseconds (Linux).

Worker processes cannot be forked from the CLI process itself (it may have threads by then,
and a bare ``fork`` of a threaded process can deadlock the child), and starting each one as a
new interpreter costs more than a small file's scan. So the console script forks a server
first, before it has imported the CLI or started a thread (the moment a bare ``fork`` is
safe), with only what both processes need imported. The server imports the scanners
(:data:`PRELOAD`) while the CLI parses its arguments and walks its inputs, then forks a
worker whenever the CLI asks. It never starts a thread, so forking it is always safe.

multiprocessing's ``forkserver`` does the same, but its server is a new interpreter that then
imports multiprocessing (about 20 ms), and it starts a resource tracker (another interpreter)
as well; on a one-file scan those were most of the cost of running it in a worker. The
protocol here is small:

- The CLI and the server share a ``SOCK_SEQPACKET`` socket pair (:class:`Server`).
- To start a worker, the CLI sends three descriptors: the worker's end of a new socket pair
  (its channel), a 16-byte ``memfd`` (its progress) and the write end of a status pipe.
  :func:`start` asks for the first worker at once, so that the server forks it as soon as
  its imports are done, while the CLI is still walking its inputs.
- The server forks; the child runs the worker loop
  (:func:`mlward.executors.process.serve_forked`). The server writes the child's pid on the
  status pipe, and, when it has reaped the child, its exit code (a signal as its negative,
  like ``multiprocessing``'s), then closes the pipe.
- The server exits when the CLI's end closes, however the CLI ended (killed too), and takes
  the workers still running with it.

Elsewhere (not Linux, or a thread already running) :func:`start` does nothing and the
process executor uses multiprocessing's own ``forkserver`` or ``spawn``.

:func:`fork_task` is the one other fork: a short-lived helper that does CPU-bound work (half
of a long listing of small files to hash) on another core and writes its result to a pipe.
Only in mlward's own console-script process (:func:`allow_helpers`; a library caller's process
is never forked) and only while that process has no other thread.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import selectors
    import socket

PRELOAD = ["__main__", "mlward._internal.preload"]
"""What worker processes start with, imported once by a fork server (this one, or
multiprocessing's: the process executor gives it the same list); here, not in ``process``,
because the console script reads it before it imports anything heavy."""

_STATUS = struct.Struct("i")
"""A pid, then an exit code, on a worker's status pipe."""

PROGRESS_BYTES = 16
"""A worker's progress: two doubles, the unit it is on and when that unit started."""


class Asked:
    """A worker asked of the server: this process's ends of its descriptors. The server
    writes the worker's pid on the status pipe once it has forked it."""

    __slots__ = ("channel", "progress", "status")

    def __init__(self, channel: socket.socket, progress: int, status: int) -> None:
        self.channel = channel
        """This process's end of the worker's channel."""
        self.progress = progress
        """The ``memfd`` of :data:`PROGRESS_BYTES` the worker writes its progress in."""
        self.status = status
        """The read end of the worker's status pipe (:func:`read_exit_code`)."""

    def close(self) -> None:
        self.channel.close()
        for fd in (self.progress, self.status):
            with contextlib.suppress(OSError):
                os.close(fd)


class Server:
    """The CLI's end of the running fork server."""

    def __init__(self, control: socket.socket, pid: int) -> None:
        self.control = control
        self.pid = pid
        self.spare: Asked | None = None
        """A worker asked for in advance (:func:`start`), not yet taken."""

    def ask(self) -> Asked:
        """Ask for a worker: the server forks it once its imports are done. Raises OSError
        if the server is gone or a descriptor cannot be made."""
        import socket

        ours, theirs = socket.socketpair()
        progress = status_r = status_w = -1
        try:
            progress = os.memfd_create("mlward-progress")
            os.ftruncate(progress, PROGRESS_BYTES)
            status_r, status_w = os.pipe()
            socket.send_fds(self.control, [b"fork"], [theirs.fileno(), progress, status_w])
        except BaseException:
            Asked(ours, progress, status_r).close()
            raise
        finally:
            theirs.close()
            if status_w >= 0:
                os.close(status_w)
        return Asked(ours, progress, status_r)

    def fork_worker(self) -> tuple[Asked, int]:
        """A worker (the spare, if one was asked for in advance) and its pid; waits for the
        server to finish its imports. Raises OSError if the server is gone."""
        asked, self.spare = self.spare, None
        if asked is None:
            asked = self.ask()
        pid = _read_int(asked.status)
        if pid is None:
            asked.close()
            raise OSError("the fork server has gone")
        return asked, pid

    def stop(self) -> None:
        """Close the CLI's end: the server exits once it reads that (after its imports, if
        it is still at them; this process does not wait), stopping any worker left (the
        spare too, if no executor took it)."""
        if self.spare is not None:
            self.spare.close()
            self.spare = None
        self.control.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, os.WNOHANG)  # reaped now if it is already gone


def read_exit_code(status: int) -> int:
    """A worker's exit code from its status pipe, once it is readable (255 when the server
    went away before it could say: what ``multiprocessing`` reports then)."""
    code = _read_int(status)
    return 255 if code is None else code


def _read_int(fd: int) -> int | None:
    data = b""
    while len(data) < _STATUS.size:
        try:
            chunk = os.read(fd, _STATUS.size - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return int(_STATUS.unpack(data)[0])


_server: Server | None = None


def server() -> Server | None:
    """The fork server this process started, if any."""
    return _server


def forget() -> None:
    """Stop the server (the command is done, or the server failed: workers then start the
    standard way)."""
    global _server
    if _server is not None:
        _server.stop()
        _server = None


def _may_fork() -> bool:
    """Whether a bare ``fork`` of this process is safe: Linux, and no thread but this one
    (another could hold a lock the child would wait on forever)."""
    threading = sys.modules.get("threading")
    return sys.platform == "linux" and (threading is None or threading.active_count() == 1)


def start() -> bool:
    """Fork the server, which imports :data:`PRELOAD`; False where it does not fit."""
    global _server
    if _server is not None or not _may_fork():
        return False
    import socket

    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError:
        return False
    try:
        pid = os.fork()
    except OSError:  # no process left: the standard start
        ours.close()
        theirs.close()
        return False
    if pid == 0:  # the server: it never returns to the CLI's code
        try:
            ours.close()
            # Nothing a worker prints (a chatty library) may mix with a report on standard
            # output, a pipe reading the CLI's output ends when the CLI does, and standard
            # input is the CLI's alone (as multiprocessing leaves it to the parent).
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)
                os.close(devnull)
            _serve(theirs)
        finally:
            os._exit(0)
    theirs.close()
    _server = Server(ours, pid)
    # Most commands that start a server scan: their first worker is forked when the server
    # is ready, not when the CLI gets to its first unit.
    with contextlib.suppress(OSError):
        _server.spare = _server.ask()
    return True


def _serve(control: socket.socket) -> None:
    """The server's loop: a worker forked for each request, its exit code written when it
    is reaped; returns when the CLI's end closes."""
    import importlib
    import selectors
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the CLI's to handle
    for name in PRELOAD:
        if name != "__main__":  # this process's __main__ is already the CLI's
            # A module that fails to import fails in the workers' units, where it is seen.
            with contextlib.suppress(Exception):
                importlib.import_module(name)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wake-up fd fires
    children: dict[int, int] = {}  # pid -> the write end of its status pipe
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    try:
        _loop(control, selector, wake_r, wake_w, children)
    finally:  # the CLI has gone: so do its workers, whatever they are doing
        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _loop(control: socket.socket, selector: selectors.BaseSelector, wake_r: int, wake_w: int,
          children: dict[int, int]) -> None:
    import signal
    import socket

    while True:
        for key, _ in selector.select():
            if key.fileobj is not control:
                with contextlib.suppress(OSError):
                    while os.read(wake_r, 512):
                        pass
                _reap(children)
                continue
            try:
                message, fds, _, _ = socket.recv_fds(control, 16, 3)
            except OSError:
                return
            if not message:
                return  # the CLI has gone
            if len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                continue
            channel, progress, status = fds
            try:
                pid = os.fork()
            except OSError:  # no process left: the CLI reads the end of the pipe
                pid = -1
            if pid == 0:  # a worker: it never returns to this loop
                code = 1
                try:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    selector.close()
                    control.close()
                    for fd in (wake_r, wake_w, status, *children.values()):
                        os.close(fd)
                    from mlward.executors.process import serve_forked

                    serve_forked(channel, progress)
                    code = 0
                finally:
                    with contextlib.suppress(Exception):
                        sys.stdout.flush()
                        sys.stderr.flush()
                    os._exit(code)
            os.close(channel)
            os.close(progress)
            if pid < 0:
                os.close(status)
                continue
            children[pid] = status
            _write_int(status, pid)


def _reap(children: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        fd = children.pop(pid, None)
        if fd is not None:
            _write_int(fd, os.waitstatus_to_exitcode(status))
            os.close(fd)


def _write_int(fd: int, value: int) -> None:
    with contextlib.suppress(OSError):  # the CLI stopped listening: nothing to tell
        os.write(fd, _STATUS.pack(value))


_helpers_allowed = False


def allow_helpers() -> None:
    """Let :func:`fork_task` fork: called by the console script, whose process is mlward's own."""
    global _helpers_allowed
    _helpers_allowed = True


class ForkedTask:
    """A helper process running one function; :meth:`result` waits for what it wrote."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd

    def result(self) -> bytes | None:
        """The bytes the function returned, once the helper has exited; None if it failed
        (the caller then does the work itself)."""
        chunks = []
        try:
            while chunk := os.read(self.fd, 1 << 20):
                chunks.append(chunk)
        finally:
            self._close()
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        return b"".join(chunks) if os.waitstatus_to_exitcode(status) == 0 else None

    def cancel(self) -> None:
        """Stop the helper, if it is still there (an error or Ctrl-C in this process), and
        reap it."""
        if self.pid:
            import signal

            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = 0
        self._close()

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def fork_task(work: Callable[[], bytes]) -> ForkedTask | None:
    """Run ``work`` in a forked helper; None where that is not safe or possible (not mlward's
    own process, not Linux, a thread running, no process or descriptor left)."""
    if not _helpers_allowed or not _may_fork():
        return None
    import signal

    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:  # the helper: it never returns to the caller's code
        code = 1
        try:
            os.close(read_fd)
            if _server is not None:  # the server's end is the parent's alone
                _server.control.close()
                if _server.spare is not None:
                    _server.spare.close()
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: the parent says so
            view = memoryview(work())
            while view:
                view = view[os.write(write_fd, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return ForkedTask(pid, read_fd)
