"""Model repositories: folders laid out like a Hugging Face repo, and SavedModel folders.

What only makes sense for the folder as a whole:

- ``auto_map`` in ``config.json`` / ``tokenizer_config.json`` (and ``processor_config.json``,
  ``preprocessor_config.json``): the Python modules ``trust_remote_code=True`` would import,
  resolved to the files present (or to another repository: ``repo--module.Class``);
- symbolic links that point outside the folder (a loader follows them);
- a summary: the folder is recorded as examined, with the weight formats it holds, and
  the report's verdicts give it the worst verdict of everything under it.

Weight files, configs and chat templates are scanned by the engine one by one, by their own
content, after this runs (templates by :mod:`mlward._internal.scanners.configs`, so a file's
verdict does not depend on the folder around it).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlward._internal.scanners.interface import DirectoryScanner, ScanContext
from mlward.findings import Location
from mlward.rules import REPO_LINK_OUTSIDE, REPO_REMOTE_CODE

CONFIG_FILES = ("config.json", "tokenizer_config.json", "processor_config.json",
                "preprocessor_config.json", "feature_extractor_config.json")
MAX_JSON_BYTES = 16 << 20
MAX_ENTRIES = 10_000
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".keras", ".onnx",
                   ".gguf", ".pb", ".msgpack", ".npz", ".pkl", ".joblib")


def _read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing, too large or not JSON."""
    import json

    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_JSON_BYTES:
            return None
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None


def _entries(directory: Path) -> list[Path]:
    """The folder's entries (bounded), or none when it cannot be listed."""
    try:
        return list(itertools.islice(directory.iterdir(), MAX_ENTRIES))
    except OSError:
        return []


def _auto_map_targets(auto_map: Any) -> Iterator[str]:
    """The ``module.Class`` (or ``repo--module.Class``) references in an auto_map."""
    if not isinstance(auto_map, dict):
        return
    for value in auto_map.values():
        refs = value if isinstance(value, list) else [value]
        yield from (r for r in refs if isinstance(r, str) and r)


class ModelRepositoryScanner(DirectoryScanner):
    name = "model-repository"

    def matches(self, directory: Path) -> bool:
        return any((directory / name).is_file() for name in
                   (*CONFIG_FILES, "chat_template.json", "chat_template.jinja",
                    "saved_model.pb"))

    def scan(self, directory: Path, location: Location, ctx: ScanContext) -> None:
        ctx.examined(location, self._format(directory))
        self._remote_code(directory, location, ctx)
        self._links(directory, location, ctx)

    @staticmethod
    def _format(directory: Path) -> str:
        if (directory / "saved_model.pb").is_file():
            return "tf-savedmodel-folder"
        names = [e.name for e in _entries(directory)]
        kinds = sorted({n.rsplit(".", 1)[-1] for n in names if n.endswith(WEIGHT_SUFFIXES)})
        return "model-repository" + (f" ({', '.join(kinds)})" if kinds else "")

    @staticmethod
    def _remote_code(directory: Path, location: Location, ctx: ScanContext) -> None:
        for name in CONFIG_FILES:
            config = _read_json(directory / name)
            if not isinstance(config, dict) or "auto_map" not in config:
                continue
            refs = sorted(set(_auto_map_targets(config["auto_map"])))
            local: set[str] = set()
            remote: set[str] = set()
            for ref in refs:
                repo, _, module_ref = ref.rpartition("--")
                module = module_ref.rsplit(".", 1)[0]
                if repo:
                    remote.add(f"{repo}: {module.replace('.', '/')}.py")
                else:
                    local.add(module.replace(".", "/") + ".py")
            present = sorted(f for f in local if (directory / f).is_file())
            missing = sorted(local - set(present))
            parts = []
            if present:
                parts.append(f"runs {', '.join(present)}")
            if missing:
                parts.append(f"names missing files {', '.join(missing)}")
            if remote:
                parts.append(f"fetches code from other repositories: {', '.join(sorted(remote))}")
            ctx.add(REPO_REMOTE_CODE.finding(
                location.inside(name),
                f"auto_map asks for trust_remote_code: {'; '.join(parts) or 'no modules'}",
                evidence=", ".join(refs[:20]),
                details={"files": present, "missing": missing, "remote": sorted(remote),
                         "auto_map": refs[:100]}))

    @staticmethod
    def _links(directory: Path, location: Location, ctx: ScanContext) -> None:
        root = directory.resolve()
        allowed = [root]
        if root.parent.name == "snapshots":  # a Hugging Face cache: files link to ../../blobs
            allowed.append(root.parent.parent / "blobs")
        for entry in _entries(directory):
            if not entry.is_symlink():
                continue
            target = Path(os.path.realpath(entry))
            if not any(target.is_relative_to(a) for a in allowed):
                ctx.add(REPO_LINK_OUTSIDE.finding(
                    location.inside(entry.name), f"symbolic link points outside the repository, to "
                    f"{target}", evidence=str(entry.readlink())))
