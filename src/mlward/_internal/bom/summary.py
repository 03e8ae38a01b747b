"""The text ``mlward bom`` shows beside the document: what was found, per kind, each model's
completeness with what is missing and how to fill it, and why the BOM is incomplete."""

from __future__ import annotations

from collections import Counter

from mlward._internal.bom.completeness import completeness
from mlward._internal.bom.inventory import Inventory

LABELS = {"model": "models", "dataset": "datasets", "library": "libraries",
          "service": "services", "model-source": "hub models", "ai-service": "AI services"}


def summary(inventory: Inventory, *, verbose: bool = False) -> str:
    lines = []
    counts = Counter(c.kind for c in inventory.components)
    lines.append("found: " + (", ".join(f"{counts[k]} {label}" for k, label in LABELS.items()
                                        if counts[k]) or "nothing"))
    vulns = sum(len(c.vulnerabilities) for c in inventory.components)
    if vulns:
        lines.append(f"known vulnerabilities: {vulns}")
    if inventory.workflows:
        lines.append(f"training runs (lineage): {len(inventory.workflows)}")
    if inventory.ledger is not None:
        lines.append(f"bound to ledger checkpoint: {inventory.ledger.origin} size "
                     f"{inventory.ledger.size}")
    for c in inventory.of_kind("model"):
        score = completeness(c, inventory)
        lines.append(f"model {c.location}: completeness {score.score}/100"
                     + (f", verdict {c.verdict}" if c.verdict else ""))
        missing = score.missing if verbose else score.missing[:5]
        for name, hint in missing:
            lines.append(f"  missing {name}: {hint}")
        if len(score.missing) > len(missing):
            lines.append(f"  ... and {len(score.missing) - len(missing)} more (-v lists them)")
    unpinned = [c for c in inventory.of_kind("model-source") if not c.properties.get("pinned")]
    for c in unpinned:
        lines.append(f"hub model {c.name} is not pinned to a revision (MW751)")
    reasons = [*inventory.incomplete,
               *(f"{c.ref}: {r}" for c in inventory.components for r in c.incomplete)]
    if reasons:
        lines.append("incomplete:")
        lines += [f"  {r}" for r in reasons]
    return "\n".join(lines) + "\n"
