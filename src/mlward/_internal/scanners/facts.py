"""Model facts: what a model file states about itself, recorded as a ``model`` fact.

Scanners parse headers anyway to judge a file; the format, framework, tensor count, parameter
count, dtypes and shapes they meet on the way are what a bill of materials, a policy or a
dashboard needs about the model, so they are kept as one structured fact instead of being
re-parsed later. Only what the file states is recorded: nothing is computed from tensor bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from mlward._internal.scanners.interface import ScanContext
from mlward.findings import Location

MAX_SHAPES = 64
"""Tensors whose shapes are listed by name (a large model has thousands: the count, dtypes
and parameter total cover them all)."""

Tensor = tuple[str, str, Sequence[int]]
"""(name, dtype, shape) as the file states them."""


def tensor_summary(tensors: Iterable[Tensor]) -> dict[str, Any]:
    """Tensor count, parameter count (elements of every tensor), dtypes and the first
    :data:`MAX_SHAPES` shapes by name."""
    count = parameters = 0
    dtypes: set[str] = set()
    shapes: dict[str, list[int]] = {}
    for name, dtype, shape in tensors:
        count += 1
        parameters += math.prod(shape)
        dtypes.add(dtype)
        if len(shapes) < MAX_SHAPES:
            shapes[name] = list(shape)
    return {"tensors": count, "parameters": parameters, "dtypes": sorted(dtypes),
            "shapes": shapes}


def model_fact(ctx: ScanContext, location: Location, format: str, *,
               framework: str | None = None, tensors: Iterable[Tensor] | None = None,
               **extra: Any) -> None:
    """Record a ``model`` fact; ``extra`` values that are None are left out."""
    data: dict[str, Any] = {"format": format}
    if framework:
        data["framework"] = framework
    if tensors is not None:
        data.update(tensor_summary(tensors))
    data.update({k: v for k, v in extra.items() if v is not None and v != ""})
    ctx.fact(location, "model", **data)
