"""``mlward`` entry point: ``main(argv) -> int`` builds the parser from the command modules.

The CLI is the only place that prints, exits, reads the environment or sets up logging: it
resolves the :class:`~mlward.settings.Settings` once (files, environment, flags) and hands
them to the command as ``args.settings``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlward._version import __version__
from mlward.errors import MlwardError

if TYPE_CHECKING:
    from mlward.findings import Severity

# Each module has ``register(subparsers)``, which adds its commands and sets ``func``
# (a callable taking the parsed arguments and returning the exit code). The table names the
# module of every top-level command, so that running one command imports only its module
# (start-up time is a real cost when mlward runs once per file in hooks and CI).
COMMANDS = {
    "scan": "mlward.cli.scan",
    "baseline": "mlward.cli.scan",
    "config": "mlward.cli.config",
    "demo": "mlward.cli.demo",
    "rules": "mlward.cli.rules",
    "manifest": "mlward.cli.provenance",
    "lineage": "mlward.cli.provenance",
    "keygen": "mlward.cli.provenance",
    "sign": "mlward.cli.provenance",
    "verify": "mlward.cli.provenance",
    "init": "mlward.cli.init",
    "ledger": "mlward.cli.ledger",
    "deps": "mlward.cli.deps",
    "vulndb": "mlward.cli.deps",
    "probe": "mlward.cli.deps",
    "notebook": "mlward.cli.notebook",
    "data": "mlward.cli.data",
    "bom": "mlward.cli.bom",
    "gate": "mlward.cli.gate",
    "audit": "mlward.cli.audit",
    "watch": "mlward.cli.audit",
    "cloud": "mlward.cli.cloud",
    "serve": "mlward.cli.serve",
    "push": "mlward.cli.serve",
    "query": "mlward.cli.serve",
}
COMMAND_MODULES = list(dict.fromkeys(COMMANDS.values()))

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def severity_arg(text: str) -> Severity:
    """``--fail-on`` value, in any case."""
    from mlward.findings import Severity

    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    """``--jobs`` and similar counts: a whole number of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {n})")
    return n


def add_cluster_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="run on a Dask cluster (pip install 'mlward[dask]'): "
                   "tcp://HOST:8786 for a running scheduler, or local:N for N local worker "
                   "processes (implies --executor dask)")


# Options every command accepts, before or after the command word.
_GLOBALS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("-v", "--verbose"), {"action": "count", "help": "more detail (-vv: debug logging); on "
                           "an internal error, show the traceback"}),
    (("-q", "--quiet"), {"action": "store_true",
                         "help": "only errors and the report (no progress, no summary)"}),
    (("-f", "--format"), {"metavar": "FORMAT",
                          "help": "output format (each command lists its own)"}),
    (("--no-color",), {"action": "store_true", "dest": "no_color",
                       "help": "no colours (also: the NO_COLOR environment variable)"}),
]


def _add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    for flags, kwargs in _GLOBALS:
        existing = [parser._option_string_actions[f] for f in flags
                    if f in parser._option_string_actions]
        if existing:  # the command has its own (e.g. --format with choices): keep it
            action = existing[0]
            parser.set_defaults(**{f"_default_{action.dest}": action.default})
            action.default = argparse.SUPPRESS
            continue
        options = dict(kwargs) if top else {**kwargs, "default": argparse.SUPPRESS}
        parser.add_argument(*flags, **options)


def _terminal_columns() -> int:
    """What ``shutil.get_terminal_size`` says (``COLUMNS``, else standard output's terminal,
    else 80), without importing ``shutil``: argparse makes a help formatter for every option
    it adds, and each asks."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help formatter, as wide as the terminal, as argparse's own is."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """The parser of ``mlward`` and of each command (subparsers take their parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                out.append(sub)
                out.extend(_subparsers(sub))
    return out


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or, given a known ``command``, one that knows only that command."""
    parser = _Parser(
        prog="mlward",
        description="Security for the machine-learning supply chain: scan model files, "
        "notebooks and dependencies; record provenance; keep a tamper-evident audit ledger.",
        epilog="Exit codes: 0 clean, 1 findings at or above --fail-on, "
        "2 usage error or something that could not be examined. Settings: defaults < "
        ".mlward/mlward.toml < [tool.mlward] in pyproject.toml < MLWARD_* environment < "
        "flags (`mlward config show`).",
    )
    parser.add_argument("--version", action="version", version=f"mlward {__version__}")
    _add_globals(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else COMMAND_MODULES
    for name in modules:
        importlib.import_module(name).register(sub)
    for child in _subparsers(parser):
        _add_globals(child, top=False)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command word: the first argument that is not an option (or an option's value)."""
    takes_value = {"-f", "--format"}
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in takes_value:
            skip = True
        elif not a.startswith("-"):
            return a
    return None


# Flags that map onto settings of the same name (when the command has them).
_SETTING_FLAGS = ("root", "fail_on", "jobs", "executor", "cluster", "timeout", "exclude",
                  "follow_symlinks", "ignore_unreadable", "vuln_db", "online", "baseline",
                  "db", "trust")


def settings_from_args(args: argparse.Namespace) -> Any:
    """Resolve the settings: files, then the environment, then these flags."""
    from mlward.settings import load_settings

    flags: dict[str, Any] = {k: getattr(args, k, None) for k in _SETTING_FLAGS}
    for key in ("vuln_db", "exclude"):
        if flags[key] is not None:
            flags[key] = [str(p) for p in flags[key]]
    for key in ("trust", "baseline", "root"):
        if flags[key] is not None:
            flags[key] = str(flags[key]) or None
    if getattr(args, "no_ignore", False):
        flags["ignore_files"] = False
    if getattr(args, "show_all", False):
        flags["all_findings"] = True
    if getattr(args, "format", None) is not None and getattr(args, "report_command", False):
        flags["format"] = args.format
    flags["verbose"] = getattr(args, "verbose", None) or None
    flags["quiet"] = getattr(args, "quiet", False) or None
    if getattr(args, "no_color", False):
        flags["color"] = False
    for key in ("follow_symlinks", "ignore_unreadable", "online"):
        flags[key] = flags[key] or None  # store_true: only "on" is a choice the user made
    return load_settings(env=os.environ, flags=flags)


def _setup_logging(verbose: int, quiet: bool) -> None:
    """Errors only with ``-q``, warnings by default, ``-v`` info, ``-vv`` debug, on standard
    error. Unless ``-v`` asks for more, ``logging`` is imported with the first record
    shown (:mod:`mlward._internal.logs`): most runs show none."""
    from mlward._internal import logs

    level = logs.ERROR if quiet else (logs.WARNING if not verbose else
                                      logs.INFO if verbose == 1 else logs.DEBUG)
    # Set up now when the user asked for more, or when logging is loaded anyway (an earlier
    # command in this process, or a library): then a stale level must not stay in force.
    logs.console(level, lambda: _console_logging(level),
                 now=bool(verbose) or "logging" in sys.modules)


def _console_logging(level: int) -> None:
    import logging

    class Stderr(logging.StreamHandler):  # type: ignore[type-arg]
        """Writes to whatever ``sys.stderr`` is now (tests and wrappers replace it)."""

        @property
        def stream(self) -> Any:
            return sys.stderr

        @stream.setter
        def stream(self, value: Any) -> None:
            pass

    logger = logging.getLogger("mlward")
    logger.setLevel(level)
    if not logger.handlers:
        handler = Stderr()
        handler.setFormatter(logging.Formatter("mlward: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:  # what the full parser would print, without importing every
        print(f"mlward {__version__}")  # command's module to build it
        return EXIT_OK
    parser = build_parser(_command(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 on --help
        return int(exc.code) if isinstance(exc.code, int) else EXIT_ERROR
    for key in [k for k in vars(args) if k.startswith("_default_")]:
        if not hasattr(args, key[len("_default_"):]):
            setattr(args, key[len("_default_"):], getattr(args, key))
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    verbose = int(getattr(args, "verbose", 0) or 0)
    try:
        args.settings = settings_from_args(args)
        if getattr(args, "report_command", False):
            args.format = args.settings.format
        _setup_logging(args.settings.verbose, args.settings.quiet)
        return int(args.func(args))
    except KeyboardInterrupt:
        print("mlward: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``mlward scan ... | head``): say so once, and keep Python
        # from complaining again when it flushes standard output at exit.
        with _suppress_oserror():
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        print("mlward: error: the output was closed before the report was written "
              "(broken pipe)", file=sys.stderr)
        return EXIT_ERROR
    except (MlwardError, OSError) as exc:
        # An OSError here is a file or folder the command was pointed at that cannot be
        # read or written (a folder given as an output file, a full disk): one line, not a
        # traceback. The commands say so in their own words where they can; this is the
        # net under them.
        if verbose:
            import traceback

            traceback.print_exc()
        print(f"mlward: error: {_describe(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _describe(exc: MlwardError | OSError) -> str:
    if isinstance(exc, MlwardError):
        return exc.diagnostics()
    where = f"{exc.filename}: " if exc.filename is not None else ""
    return f"{where}{exc.strerror or exc}"


def _suppress_oserror() -> Any:
    import contextlib

    return contextlib.suppress(OSError, ValueError)


def entrypoint() -> None:
    """``python -m mlward`` (the console script is :func:`mlward.cli.entry.entrypoint`)."""
    sys.exit(main())
