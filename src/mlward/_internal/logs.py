"""mlward's loggers, which import :mod:`logging` when a record is made, not before.

The library logs through the standard :mod:`logging` module, under the ``mlward`` logger: a
library user's configuration applies as usual. But importing ``logging`` costs about 6 ms, a
twentieth of a one-file scan, and a console-script run at its default level seldom logs
anything. So the console script does not set up its handler at start; it declares the level
below which nothing is shown (:func:`console`), and a record below it is dropped here
without importing ``logging``. The first record at or above it sets the handler up, then goes
through ``logging`` like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
"""The levels of :mod:`logging`, with the same values."""

_threshold: int | None = None
"""Below this level the console script shows nothing (None: ask ``logging``)."""
_setup: Callable[[], None] | None = None
"""Sets the console script's handler up; run once, before its first record."""


def console(threshold: int, setup: Callable[[], None], *, now: bool) -> None:
    """The console script's logging: nothing below ``threshold`` is shown, and ``setup``
    configures ``logging`` for it, ``now`` or before the first record at or above
    ``threshold``."""
    global _threshold, _setup
    _threshold, _setup = threshold, (None if now else setup)
    if now:
        setup()


class Logger:
    """A named logger with the methods mlward uses; :func:`logging.getLogger` on first use."""

    def __init__(self, name: str) -> None:
        self.name = name

    def debug(self, msg: str, *args: object, **kwargs: Any) -> None:
        self.log(DEBUG, msg, *args, **kwargs)

    def info(self, msg: str, *args: object, **kwargs: Any) -> None:
        self.log(INFO, msg, *args, **kwargs)

    def warning(self, msg: str, *args: object, **kwargs: Any) -> None:
        self.log(WARNING, msg, *args, **kwargs)

    def error(self, msg: str, *args: object, **kwargs: Any) -> None:
        self.log(ERROR, msg, *args, **kwargs)

    def log(self, level: int, msg: str, *args: object, **kwargs: Any) -> None:
        global _setup
        if _threshold is not None and level < _threshold:
            return
        if _setup is not None:
            setup, _setup = _setup, None
            setup()
        import logging

        kwargs.setdefault("stacklevel", 3)  # the caller of debug(), info() ..., not this module
        logging.getLogger(self.name).log(level, msg, *args, **kwargs)


def get(name: str) -> Logger:
    return Logger(name)
