"""The scan's fork server, forked from the CLI process in its first milliseconds.

multiprocessing's ``forkserver`` starts its server as a new interpreter that then imports the
scanners; a one-file scan waits for both, and they cost more than the scan. Forked from the
CLI process before it has imported anything or started a thread (the moment a bare ``fork``
is safe), the server skips the interpreter's start and imports the scanners while the CLI
parses its arguments and walks its inputs. From there on it is multiprocessing's own server
(:func:`multiprocessing.forkserver.main`, its protocol and its code): the workers are forked
from it exactly as from the server ``forkserver`` would have started, and :func:`adopt` hands
it to multiprocessing in place of starting one.

Only where that hand-over is known to fit: Linux (the socket is named in the abstract
namespace, nothing on disk) and CPython 3.10 to 3.13, whose server takes no authentication
key. Elsewhere :func:`start` does nothing and multiprocessing starts its server as usual.

:func:`fork_task` is the one other fork: a short-lived helper that does CPU-bound work (half
of a long listing of small files to hash) on another core and writes its result to a pipe.
Only in mlward's own console-script process (:func:`allow_helpers`; a library caller's process
is never forked) and only while that process has no other thread.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

PRELOAD = ["__main__", "mlward._internal.preload"]
"""Imported once by the fork server, so each worker starts with the scanners loaded (the
process executor gives multiprocessing the same list). Here, not in ``process``: the console
script reads it before it imports anything heavy."""

_MAIN_ARGS = ("listener_fd", "alive_r", "preload", "main_path", "sys_path")
"""The parameters of ``multiprocessing.forkserver.main`` on the versions this fits."""

_server: tuple[str, int, int] | None = None
"""The started server: (socket address, write end of its "alive" pipe, pid)."""


def _may_fork() -> bool:
    """Whether a bare ``fork`` of this process is safe: Linux, and no thread but this one
    (another could hold a lock the child would wait on forever)."""
    threading = sys.modules.get("threading")
    return sys.platform == "linux" and (threading is None or threading.active_count() == 1)


def start() -> bool:
    """Fork the server, which imports :data:`PRELOAD`; False where it does not fit."""
    global _server
    if (_server is not None or not (3, 10) <= sys.version_info[:2] <= (3, 13)
            or not _may_fork()):
        return False
    import socket

    address = f"\0mlward-forkserver-{os.getpid()}-{os.urandom(6).hex()}"
    # Every client (this process, then each worker) holds the pipe's write end; the server
    # stops when the last one is gone.
    fds: list[int] = []
    try:
        listener = socket.socket(socket.AF_UNIX)
    except OSError:
        return False
    try:
        listener.bind(address)
        listener.listen()
        fds += os.pipe()
        pid = os.fork()
    except OSError:  # no socket, no descriptor or no process left: multiprocessing's start
        listener.close()
        for fd in fds:
            os.close(fd)
        return False
    alive_r, alive_w = fds
    if pid == 0:  # the server: it never returns to the CLI's code
        try:
            os.close(alive_w)
            from multiprocessing import forkserver

            # This process's __main__ is already the server's.
            forkserver.main(listener.fileno(), alive_r,
                            [m for m in PRELOAD if m != "__main__"])
        finally:
            os._exit(0)
    listener.close()
    os.close(alive_r)
    _server = (address, alive_w, pid)
    return True


def adopt() -> None:
    """Give the started server to multiprocessing's ``forkserver`` context, if it has none;
    a server that cannot be handed over (a multiprocessing unlike the one this was written
    for) is stopped, and multiprocessing starts its own."""
    global _server
    if _server is None:
        return
    from multiprocessing import forkserver

    address, alive_w, pid = _server
    _server = None
    state: object = forkserver._forkserver
    code = forkserver.main.__code__
    if (code.co_varnames[:code.co_argcount] == _MAIN_ARGS
            and getattr(state, "_forkserver_pid", 0) is None
            and getattr(state, "_forkserver_address", 0) is None
            and not hasattr(state, "_forkserver_authkey")):
        state._forkserver_address = address  # type: ignore[attr-defined]
        state._forkserver_alive_fd = alive_w  # type: ignore[attr-defined]
        state._forkserver_pid = pid  # type: ignore[attr-defined]
        return
    os.close(alive_w)  # the server reads the end of its pipe and exits
    os.waitpid(pid, 0)


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
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: the parent says so
            view = memoryview(work())
            while view:
                view = view[os.write(write_fd, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return ForkedTask(pid, read_fd)
