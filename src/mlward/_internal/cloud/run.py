"""``mlward cloud``: collect from one provider, link to the project, check, report.

The one entry point the CLI and library callers use (:func:`cloud_report`). It resolves the
project links first (so that referenced prefixes are sampled and referenced buckets looked
up), has the provider collect, runs every registered check, and builds the report: findings,
a ``bucket`` fact per bucket or container (exposure, settings, ML assets, references), each
resource as examined, and every call that could not be made as an inconclusive skip.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlward._internal.cloud.checks import BUCKET_KINDS, World, bucket_fact, evaluate
from mlward._internal.cloud.collect import Observer, Options, Run
from mlward._internal.cloud.links import Links, collect
from mlward._version import __version__
from mlward.errors import UsageError
from mlward.findings import Report, ReportBuilder, TargetKind
from mlward.settings import Settings

PROVIDERS = ("aws", "gcp", "azure")


def links_for(options: Options, settings: Settings) -> tuple[Links | None, Path | None]:
    """The project references under ``options.links`` and the root their locations are
    relative to."""
    if not options.links:
        return None, None
    from mlward._internal.pipeline import scan_root

    for p in options.links:
        if not p.exists():
            raise UsageError(f"--links: no such file or directory: {p}")
    root = scan_root(settings, list(options.links))
    return collect(list(options.links), root, exclude=settings.exclude,
                   ignore_files=settings.ignore_files), root


def cloud_report(provider: str, options: Options, *, settings: Settings | None = None,
                 observer: Observer | None = None, **provider_args: Any) -> Report:
    """Examine one provider's account read-only and report what the checks find.

    ``provider_args`` go to the provider's ``collect`` (Azure takes a ``credential`` for the
    management API). Raises :class:`~mlward.errors.UsageError` for bad options or refused
    credentials and :class:`~mlward.errors.MissingExtra` without ``mlward[cloud]``.
    """
    if provider not in PROVIDERS:
        raise UsageError(f"unknown provider {provider!r} (choose from {', '.join(PROVIDERS)})")
    settings = settings or Settings()
    started = datetime.now(timezone.utc)
    links, root = links_for(options, settings)
    run = Run(options, observer)
    module = importlib.import_module(f"mlward._internal.cloud.{provider}")
    world: World = module.collect(options, run, links, **provider_args)
    builder = ReportBuilder(TargetKind.BUCKET, started=started, version=__version__,
                            root=str(root) if root else None,
                            inputs=_inputs(provider, options))
    findings, failed = evaluate(world)
    builder.merge(findings=findings, skipped=[*run.skipped, *failed])
    for resource in world.resources:
        builder.examine(resource.location, resource.kind)
        if resource.kind in BUCKET_KINDS:
            builder.fact(bucket_fact(resource, world))
    builder.stats.update(run.stats)
    builder.stats["provider"] = provider
    builder.stats["api_calls"] = sum(run.calls.values())
    builder.stats["api_calls_by_operation"] = dict(sorted(run.calls.items()))
    builder.stats["references"] = len(world.references)
    from mlward._internal.triage import make_triage

    return builder.build(finished=datetime.now(timezone.utc),
                         triage=make_triage(settings, root))


def _inputs(provider: str, options: Options) -> Sequence[str]:
    target = {"aws": options.profile or options.account or "default credentials",
              "gcp": options.project or "default project",
              "azure": options.account_url or options.subscription or "connection string"}
    out = [f"{provider}:{target[provider]}"]
    if options.endpoint_url:
        out.append(options.endpoint_url)
    return [*out, *(str(p) for p in options.links)]
