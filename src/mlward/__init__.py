"""mlward: security for the machine-learning supply chain.

The public API::

    import mlward
    report = mlward.scan(["models/"])
    for finding in report.findings:
        print(finding.severity, finding.rule_id, finding.location, finding.message)
"""

from mlward._internal.pipeline import scan
from mlward._internal.scanners.interface import Limits
from mlward._version import __version__
from mlward.errors import MlwardError
from mlward.findings import Examined, Finding, Location, Report, Severity, Skipped, Verdict

__all__ = [
    "Examined",
    "Finding",
    "Limits",
    "Location",
    "MlwardError",
    "Report",
    "Severity",
    "Skipped",
    "Verdict",
    "__version__",
    "scan",
]
