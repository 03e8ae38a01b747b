"""mlward: security for the machine-learning supply chain.

The public API::

    import mlward
    report = mlward.scan(["models/"])
    for finding in report.findings:
        print(finding.severity, finding.rule_id, finding.location, finding.message)

What is public: the names below, and the modules :mod:`mlward.findings` (the data model),
:mod:`mlward.settings`, :mod:`mlward.errors`, :mod:`mlward.rules`, :mod:`mlward.executors`,
:mod:`mlward.formats` (writers), :mod:`mlward.plugins` (third-party scanners) and
:func:`mlward.cli.main.main`. Everything under ``mlward._internal`` may change without notice.
"""

from typing import TYPE_CHECKING

from mlward._internal.lazy import lazy_attributes
from mlward._version import __version__

if TYPE_CHECKING:
    from mlward._internal.ledger import open_ledger, record_event
    from mlward._internal.pipeline import scan
    from mlward.errors import MlwardError
    from mlward.executors import Executor, InlineExecutor, Outcome, ThreadExecutor
    from mlward.findings import (
        Examined,
        Fact,
        Finding,
        Location,
        Report,
        ReportBuilder,
        Severity,
        Skipped,
        Suppression,
        TargetKind,
        Verdict,
    )
    from mlward.formats import register_writer, render, write_output, writer_names
    from mlward.settings import Limits, Settings, Waiver, load_settings

# Every `mlward` command imports this package first: the names load on first use (PEP 562),
# so that `mlward --version` or a one-file scan pays only for what it touches.
__getattr__ = lazy_attributes("mlward", {
    "open_ledger": "_internal.ledger", "record_event": "_internal.ledger",
    "scan": "_internal.pipeline", "MlwardError": "errors",
    **dict.fromkeys(("Executor", "InlineExecutor", "Outcome", "ThreadExecutor"), "executors"),
    **dict.fromkeys(("Examined", "Fact", "Finding", "Location", "Report", "ReportBuilder",
                     "Severity", "Skipped", "Suppression", "TargetKind", "Verdict"), "findings"),
    **dict.fromkeys(("register_writer", "render", "write_output", "writer_names"), "formats"),
    **dict.fromkeys(("Limits", "Settings", "Waiver", "load_settings"), "settings"),
})

__all__ = [
    "Examined",
    "Executor",
    "Fact",
    "Finding",
    "InlineExecutor",
    "Limits",
    "Location",
    "MlwardError",
    "Outcome",
    "Report",
    "ReportBuilder",
    "Settings",
    "Severity",
    "Skipped",
    "Suppression",
    "TargetKind",
    "ThreadExecutor",
    "Verdict",
    "Waiver",
    "__version__",
    "load_settings",
    "open_ledger",
    "record_event",
    "register_writer",
    "render",
    "scan",
    "write_output",
    "writer_names",
]
