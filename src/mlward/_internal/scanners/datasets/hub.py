"""Hugging Face dataset repositories: what ``datasets.load_dataset`` runs or fetches.

- a loading script: ``<folder>.py`` (the name ``load_dataset`` looks for) or any top-level
  Python file defining a dataset builder; ``load_dataset`` imports and runs it (behind
  ``trust_remote_code`` in recent versions, unconditionally in old ones). The script is also
  scanned as Python by the code scanner;
- ``dataset_infos.json``: the URLs the script downloads (``download_checksums``);
- the dataset card (``README.md`` YAML header): ``configs[].data_files`` that point at URLs
  or outside the repository.

Data files are scanned one by one by the engine, by content (Parquet, Arrow, pickles...).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlward._internal.lazy import lazy_pattern
from mlward._internal.scanners.interface import DirectoryScanner, ScanContext
from mlward.findings import Location, Severity
from mlward.rules import DATASET_LOADING_SCRIPT, DATASET_MALFORMED, DATASET_REMOTE_DATA

MAX_BYTES = 4 << 20
SCRIPT_BYTES = 1 << 20
"""Bytes of a Python file searched for a dataset builder class."""
CARD_BYTES = 256 << 10
MAX_URLS = 50
_BUILDER = lazy_pattern(rb"\b(GeneratorBasedBuilder|ArrowBasedBuilder|BeamBasedBuilder|"
                      rb"DatasetBuilder)\b")
_FRONT_MATTER = lazy_pattern(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", re.S)


def _read(path: Path, limit: int = MAX_BYTES) -> bytes | None:
    try:
        if path.is_symlink() or not path.is_file():
            return None
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


def card_metadata(directory: Path) -> dict[str, Any] | None:
    """The YAML header of the dataset card, when it has one that reads as a mapping."""
    raw = _read(directory / "README.md", CARD_BYTES)
    if raw is None:
        return None
    m = _FRONT_MATTER.match(raw.decode("utf-8", "replace"))
    if m is None:
        return None
    import yaml

    try:
        data = yaml.safe_load(m.group(1))
    except (yaml.YAMLError, RecursionError):
        return {"_malformed": True}
    return data if isinstance(data, dict) else None


def _data_files(configs: Any) -> Iterator[str]:
    """Every path in ``configs[].data_files`` (a string, a list, or split -> path(s))."""
    for config in configs if isinstance(configs, list) else []:
        files = config.get("data_files") if isinstance(config, dict) else None
        stack = [files]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                yield item
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                stack.extend(item.get(k) for k in ("path", "data_files") if k in item)


def _outside(path: str) -> bool:
    return (bool(re.match(r"^[a-z][a-z0-9+.\-]*://", path, re.I)) or path.startswith("/")
            or ".." in re.split(r"[/\\]", path))


class DatasetRepositoryScanner(DirectoryScanner):
    name = "dataset-repository"

    def matches(self, directory: Path) -> bool:
        return self._dataset_like(directory) or bool(self._scripts(directory, everywhere=False))

    def scan(self, directory: Path, location: Location, ctx: ScanContext) -> None:
        ctx.examined(location, self.name)
        for script in self._scripts(directory, everywhere=self._dataset_like(directory)):
            ctx.add(DATASET_LOADING_SCRIPT.finding(
                location.inside(script), f"load_dataset runs {script} from this repository",
                evidence=script, details={"script": script}))
        self._infos(directory, location, ctx)
        self._card(directory, location, ctx)

    @staticmethod
    def _dataset_like(directory: Path) -> bool:
        """A dataset card or ``dataset_infos.json`` says this folder is a dataset repository."""
        if (directory / "dataset_infos.json").is_file():
            return True
        card = card_metadata(directory)
        return card is not None and bool({"configs", "dataset_info", "task_categories"} & set(
            card)) and "base_model" not in card

    @staticmethod
    def _scripts(directory: Path, *, everywhere: bool) -> list[str]:
        """Python files ``load_dataset`` would run: ``<folder>.py`` defining a dataset builder,
        or (``everywhere``, in a folder known to be a dataset repository) any top-level one."""
        if everywhere:
            try:
                candidates = sorted(p for p in directory.iterdir() if p.suffix == ".py")[:100]
            except OSError:
                return []
        else:
            candidates = [directory / f"{directory.name}.py"]
        out = []
        for path in candidates:
            raw = _read(path, SCRIPT_BYTES)
            if raw is not None and _BUILDER.search(raw):
                out.append(path.name)
        return out

    @staticmethod
    def _infos(directory: Path, location: Location, ctx: ScanContext) -> None:
        import json

        raw = _read(directory / "dataset_infos.json", MAX_BYTES + 1)
        if raw is None:
            return
        loc = location.inside("dataset_infos.json")
        try:
            if len(raw) > MAX_BYTES:
                raise ValueError(f"larger than {MAX_BYTES} bytes")
            infos = json.loads(raw)
            urls = sorted({str(u) for info in infos.values() if isinstance(info, dict)
                           for u in (info.get("download_checksums") or {})})
        except (ValueError, RecursionError, AttributeError) as exc:
            ctx.add(DATASET_MALFORMED.finding(loc, f"dataset_infos.json cannot be read: {exc}",
                                              severity=Severity.LOW))
            ctx.skip(loc, "dataset_infos.json cannot be read", inconclusive=True)
            return
        _report_remote(urls, loc, ctx, "the loading script downloads")

    @staticmethod
    def _card(directory: Path, location: Location, ctx: ScanContext) -> None:
        card = card_metadata(directory)
        if card is None:
            return
        loc = location.inside("README.md")
        if card.get("_malformed"):
            ctx.add(DATASET_MALFORMED.finding(loc, "dataset card YAML header is not valid YAML",
                                              severity=Severity.LOW))
            return
        outside = sorted({p for p in _data_files(card.get("configs")) if _outside(p)})
        _report_remote(outside, loc, ctx, "the card's data_files load")


def _report_remote(targets: list[str], loc: Location, ctx: ScanContext, what: str) -> None:
    if not targets:
        return
    plain = [t for t in targets if t.lower().startswith("http://")]
    ctx.add(DATASET_REMOTE_DATA.finding(
        loc, f"{what} {len(targets)} file(s) from outside the repository"
        + (f", {len(plain)} over plain HTTP" if plain else ""),
        evidence=", ".join((plain or targets)[:5]),
        severity=Severity.HIGH if plain else None,
        details={"targets": targets[:MAX_URLS], "plain_http": plain[:MAX_URLS]}))
