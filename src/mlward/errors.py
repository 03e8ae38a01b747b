"""One error root for everything mlward raises on purpose.

The CLI catches :class:`MlwardError` only, prints :meth:`MlwardError.diagnostics` and exits 2;
anything else is a bug and shows its traceback with ``--verbose``.
"""

from __future__ import annotations


class MlwardError(Exception):
    """Base of every deliberate mlward error."""

    def diagnostics(self) -> str:
        """A message for a person: what went wrong and, where known, what to do."""
        return str(self)


class UsageError(MlwardError):
    """The command line or API call asks for something that cannot be done."""


class ScanError(MlwardError):
    """A scan could not start (not a problem inside one file: those become Skipped)."""


class FormatError(MlwardError):
    """Bytes that do not follow the format they claim. Scanners turn this into a finding."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class LimitExceeded(MlwardError):
    """A safety bound (size, depth, count, ratio) was reached while reading hostile input."""


class MissingExtra(MlwardError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str | None) -> None:
        hint = f"pip install 'mlward[{extra}]'" if extra else f"pip install {module}"
        super().__init__(f"{module} is not installed ({hint})")
        self.module = module
        self.extra = extra


class ExecutorLost(MlwardError):
    """The workers of a run went away (a Dask scheduler that vanished mid-run): the work
    units without a result were not examined. Raised by ``Executor.map`` after the outcomes
    it did receive."""
