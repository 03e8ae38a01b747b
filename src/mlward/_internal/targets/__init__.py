"""Inputs that are not local paths: object-storage prefixes (``s3://``, ``gs://``, ``az://``),
MLflow registered models (``mlflow://HOST/models/NAME[/VERSION]``) and the local Hugging Face
cache (``hf-cache:[REPO[@REVISION]]``).

A target expands, in the process that plans the run and before any work is sent, into the
files to scan (:class:`~mlward._internal.walk.Item`: remote ones carry the URL that a worker
reads with ranged requests, and their size from the listing) and what the listing itself
showed: a :class:`~mlward.findings.Fact` per model version with its registry coordinates,
skips for what cannot be reached.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mlward._internal.sources.remote import OBJECT_SCHEMES, scheme_of

if TYPE_CHECKING:
    from mlward._internal.walk import Item, Walk
    from mlward.findings import ReportBuilder
    from mlward.settings import Settings

MLFLOW_SCHEMES = ("mlflow", "mlflow+http", "mlflow+https")
HF_CACHE = "hf-cache:"


def is_target(text: str) -> bool:
    """True when ``text`` names a target of this package rather than a local path."""
    return (scheme_of(text) in OBJECT_SCHEMES or scheme_of(text) in MLFLOW_SCHEMES
            or text.startswith(HF_CACHE))


def expand(target: str, settings: Settings, walk: Walk,
           builder: ReportBuilder) -> Iterator[Item]:
    """The files to scan for ``target``; facts and skips go to ``builder`` (exclusions to
    ``walk``, which counts them like a local walk's). Raises
    :class:`~mlward.errors.ScanError` when the target cannot be listed at all."""
    if target.startswith(HF_CACHE):
        from mlward._internal.targets.hfcache import expand_cache

        yield from expand_cache(target, settings, builder)
    elif scheme_of(target) in MLFLOW_SCHEMES:
        from mlward._internal.targets.mlflow import expand_models

        yield from expand_models(target, walk, builder)
    else:
        from mlward._internal.targets.objects import expand_prefix

        yield from expand_prefix(target, walk, builder)


def location_of(target: str) -> str:
    """The location URI that everything found under ``target`` is at or below (the ledger
    records a run against it): ``s3://bucket/prefix``, ``mlflow://HOST/models/NAME``,
    ``hf-cache:ORG/NAME`` (its revisions are ``@COMMIT`` below it), ``hf-cache:``."""
    if target.startswith(HF_CACHE):
        from mlward._internal.targets.hfcache import parse as parse_cache

        kind, repo, _ = parse_cache(target)
        return HF_CACHE + ("" if repo is None else repo if kind == "models"
                           else f"{kind}/{repo}")
    if scheme_of(target) in MLFLOW_SCHEMES:
        from mlward._internal.targets.mlflow import parse as parse_model

        t = parse_model(target)
        return t.location + (f"/{t.version}" if t.version else "")
    return target.rstrip("/")
