"""The local Hugging Face cache: ``hf-cache:`` (everything), ``hf-cache:ORG/NAME`` (one model
repository, every cached revision), ``hf-cache:datasets/ORG/NAME``, and ``@REVISION`` (a
branch or tag name the cache knows, or a commit hash) after either.

The cache keeps a folder per repository (``models--ORG--NAME``) holding ``refs/<name>`` (a
commit hash each), ``snapshots/<commit>/…`` (the files of that revision, as links into
``blobs/``) and ``blobs/``. Each snapshot is one model version: a ``model-version`` fact at
``hf-cache:ORG/NAME@COMMIT`` with the refs that point at it, and its files located below it
(``hf-cache:ORG/NAME@COMMIT/model.safetensors``). The layout is four folders, read here
directly rather than through ``huggingface_hub`` (a dependency for a directory listing);
a link that leads out of its repository's folder is not followed, and is reported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from mlward._internal.walk import Item
from mlward.errors import ScanError
from mlward.findings import Fact, Location, ReportBuilder
from mlward.settings import Settings

REPO_TYPES = ("models", "datasets", "spaces")
_FOLDER = re.compile(r"(models|datasets|spaces)--(.+)")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def parse(target: str) -> tuple[str | None, str | None, str | None]:
    """``(repo type, repo id, revision)`` from ``hf-cache:[TYPE/]REPO[@REV]`` (Nones: all)."""
    spec = target[len("hf-cache:"):].strip("/")
    if not spec:
        return None, None, None
    repo, _, revision = spec.partition("@")
    kind = "models"
    first, _, rest = repo.partition("/")
    if first in REPO_TYPES and rest:
        kind, repo = first, rest
    if not repo or repo.count("/") > 1 or any(p in ("", ".", "..") for p in repo.split("/")):
        raise ScanError(f"{target}: expected hf-cache:[datasets/|spaces/]ORG/NAME[@REVISION]")
    return kind, repo, revision or None


def expand_cache(target: str, settings: Settings, builder: ReportBuilder) -> Iterator[Item]:
    """Work units for every file of every cached revision ``target`` names, and a
    ``model-version`` fact per revision."""
    cache = Path(settings.hf_cache or "")
    if not cache.is_dir():
        raise ScanError(f"no Hugging Face cache at {cache} (set HF_HUB_CACHE or HF_HOME, "
                        "or hf_cache in the settings)")
    kind, repo, revision = parse(target)
    folders = sorted(cache.iterdir()) if repo is None else [
        cache / f"{kind}--{repo.replace('/', '--')}"]
    matched = False
    for folder in folders:
        m = _FOLDER.fullmatch(folder.name)
        if m is None or not folder.is_dir() or folder.is_symlink():
            continue
        repo_type, repo_id = m.group(1), m.group(2).replace("--", "/")
        refs = _refs(folder)
        for commit in _snapshots(folder):
            names = sorted(n for n, c in refs.items() if c == commit)
            if revision is not None and revision not in (commit, *names):
                continue
            matched = True
            yield from _revision(folder, repo_type, repo_id, commit, names, builder)
    if not matched:
        builder.skip(Location(target), f"not in the Hugging Face cache at {cache}",
                     inconclusive=True)


def _refs(folder: Path) -> dict[str, str]:
    out = {}
    top = folder / "refs"
    for dirpath, _, files in os.walk(top):
        for name in files:
            path = Path(dirpath, name)
            try:
                commit = path.read_text(encoding="ascii", errors="replace")[:64].strip()
            except OSError:
                continue
            if _COMMIT.fullmatch(commit):
                out[path.relative_to(top).as_posix()] = commit
    return out


def _snapshots(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in (folder / "snapshots").iterdir()
                      if _COMMIT.fullmatch(p.name) and p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def _revision(folder: Path, repo_type: str, repo_id: str, commit: str, refs: list[str],
              builder: ReportBuilder) -> Iterator[Item]:
    prefix = "" if repo_type == "models" else f"{repo_type}/"
    here = f"hf-cache:{prefix}{repo_id}@{commit}"
    snapshot = folder / "snapshots" / commit
    inside = str(folder.resolve()) + os.sep
    files = total = 0
    for dirpath, dirnames, filenames in os.walk(snapshot):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            rel = path.relative_to(snapshot).as_posix()
            real = str(path.resolve())
            if not real.startswith(inside):
                builder.skip(Location(f"{here}/{rel}"), "a link out of the repository's cache "
                             f"folder (to {real}): not followed", inconclusive=True)
                continue
            files += 1
            total += path.stat().st_size if path.is_file() else 0
            yield Item(real, f"{here}/{rel}")
    builder.fact(Fact(Location(here), "model-version", {
        "registry": "huggingface-cache", "repo": repo_id, "repo_type": repo_type.rstrip("s"),
        "revision": commit, "refs": refs, "files": files, "bytes": total,
        "cache": str(folder)}))
