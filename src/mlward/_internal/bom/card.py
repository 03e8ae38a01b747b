"""Model cards and configs: what a Hugging Face style model folder says about its model.

- ``README.md`` front matter (YAML between ``---`` lines): license, pipeline tag (task),
  datasets, base model, metrics (``model-index`` results), CO2 emissions; its body's
  sections on limitations, risks, intended and out-of-scope uses, training.
- ``config.json``: ``architectures`` (the model class) and ``model_type`` (its family).

Cards are written by whoever published the model: read with a size bound, YAML with the safe
loader and no aliases (a few aliases can expand into gigabytes once the values are copied out),
and any problem becomes a reason the component is incomplete, never an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

MAX_CARD_BYTES = 1 << 20
MAX_CONFIG_BYTES = 4 << 20
MAX_ITEMS = 100
MAX_TEXT = 2000

# Task -> (input format, output format) for modelCard.modelParameters.
TASK_IO = {
    "text-classification": ("text", "label"), "token-classification": ("text", "labels"),
    "text-generation": ("text", "text"), "text2text-generation": ("text", "text"),
    "translation": ("text", "text"), "summarization": ("text", "text"),
    "question-answering": ("text", "text"), "fill-mask": ("text", "text"),
    "feature-extraction": ("text", "embedding"), "sentence-similarity": ("text", "score"),
    "image-classification": ("image", "label"), "object-detection": ("image", "boxes"),
    "image-segmentation": ("image", "mask"), "text-to-image": ("text", "image"),
    "image-to-text": ("image", "text"), "automatic-speech-recognition": ("audio", "text"),
    "text-to-speech": ("text", "audio"), "audio-classification": ("audio", "label"),
    "tabular-classification": ("table", "label"), "tabular-regression": ("table", "number"),
    "zero-shot-classification": ("text", "label"),
}
_SECTIONS = {
    "limitation": "technicalLimitations", "bias": "ethicalConsiderations",
    "risk": "risks", "ethic": "ethicalConsiderations",
    "out-of-scope": "outOfScopeUses", "out of scope": "outOfScopeUses",
    "intended use": "useCases", "uses": "useCases", "direct use": "useCases",
    "training": "training", "preprocess": "preprocessing", "environmental": "environmental",
    "explainab": "explainability", "interpretab": "explainability",
}
_HEADING = re.compile(r"^#{1,4}\s+(.+?)\s*#*\s*$")


class _Loader(yaml.SafeLoader):
    """The safe loader without aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not accepted",
                                              None)
        return super().compose_node(parent, index)


def _text(value: Any) -> str | None:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)[:MAX_TEXT]
    return None


def _texts(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [t for t in (_text(v) for v in items[:MAX_ITEMS]) if t]


def read_bounded(path: Path, limit: int) -> str:
    """The file's text, or ValueError when it is larger than ``limit`` bytes."""
    with open(path, "rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return raw.decode("utf-8", errors="replace")


def front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The YAML front matter (a mapping) and the body; ValueError when it is malformed."""
    if not text.startswith("---"):
        return {}, text
    end = re.search(r"^---\s*$", text[3:], re.MULTILINE)
    if end is None:
        raise ValueError("front matter has no closing '---'")
    head, body = text[3:3 + end.start()], text[3 + end.end():]
    try:
        data = yaml.load(head, Loader=_Loader)  # a safe loader that refuses aliases
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValueError(f"front matter is not valid YAML ({str(exc).splitlines()[0]})") \
            from None
    if data is None:
        return {}, body
    if not isinstance(data, dict):
        raise ValueError("front matter is not a mapping")
    return data, body


def _sections(body: str) -> dict[str, list[str]]:
    """Card body sections by the considerations they describe, first paragraph of each."""
    out: dict[str, list[str]] = {}
    heading: str | None = None
    lines: list[str] = []

    def close() -> None:
        if heading is None:
            return
        text = " ".join(x.strip() for x in lines if x.strip()).strip()
        lower = heading.lower()
        if not text or text.startswith("[More Information Needed]"):
            return
        for key in dict.fromkeys(v for k, v in _SECTIONS.items() if k in lower):
            out.setdefault(key, []).append(text[:MAX_TEXT])

    for line in body.splitlines():
        m = _HEADING.match(line)
        if m:
            close()
            heading, lines = m.group(1), []
        elif heading is not None:
            lines.append(line)
    close()
    return out


def _description(body: str) -> str | None:
    for para in re.split(r"\n\s*\n", body):
        text = " ".join(x.strip() for x in para.splitlines()).strip()
        if text and not text.startswith(("#", "<", "!", "[", "|", "```")):
            return text[:MAX_TEXT]
    return None


def _metrics(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    index = meta.get("model-index")
    for entry in index[:MAX_ITEMS] if isinstance(index, list) else []:
        results = entry.get("results") if isinstance(entry, dict) else None
        for result in results[:MAX_ITEMS] if isinstance(results, list) else []:
            if not isinstance(result, dict):
                continue
            found = result.get("dataset")
            dataset: dict[str, Any] = found if isinstance(found, dict) else {}
            for metric in result.get("metrics") or []:
                if isinstance(metric, dict) and _text(metric.get("type")) and \
                        _text(metric.get("value")) is not None:
                    out.append({"type": _text(metric["type"]),
                                "value": _text(metric["value"]),
                                "slice": _text(dataset.get("name") or dataset.get("type"))})
    return out[:MAX_ITEMS]


def model_card(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """What the folder's ``README.md`` and ``config.json`` say, and the problems met."""
    card: dict[str, Any] = {}
    problems: list[str] = []
    readme = folder / "README.md"
    if readme.is_file() and not readme.is_symlink():
        try:
            meta, body = front_matter(read_bounded(readme, MAX_CARD_BYTES))
        except (OSError, ValueError) as exc:
            problems.append(f"model card README.md unreadable: {exc}")
            meta, body = {}, ""
        card["card"] = "README.md"
        _from_meta(meta, card)
        desc = _description(body)
        if desc:
            card["description"] = desc
        considerations = _sections(body)
        if considerations:
            card["considerations"] = considerations
    config = folder / "config.json"
    if config.is_file() and not config.is_symlink():
        try:
            data = json.loads(read_bounded(config, MAX_CONFIG_BYTES))
        except (OSError, ValueError, RecursionError) as exc:
            problems.append(f"config.json unreadable: {exc}")
            data = {}
        if isinstance(data, dict):
            archs = _texts(data.get("architectures"))
            if archs:
                card["architecture"] = archs[0]
            if _text(data.get("model_type")):
                card["architecture_family"] = _text(data["model_type"])
    return card, problems


def _from_meta(meta: Mapping[str, Any], card: dict[str, Any]) -> None:
    simple = {"license": "license", "pipeline_tag": "task", "library_name": "library",
              "license_name": "license_name", "model_name": "model_name"}
    for key, name in simple.items():
        if _text(meta.get(key)):
            card[name] = _text(meta[key])
    for key in ("datasets", "base_model", "language", "tags"):
        values = _texts(meta.get(key))
        if values:
            card[key] = values
    metrics = _metrics(meta)
    if metrics:
        card["metrics"] = metrics
    co2 = meta.get("co2_eq_emissions")
    if isinstance(co2, dict):
        card["co2_eq_emissions"] = {k: _text(v) for k, v in co2.items() if _text(v)}
    elif _text(co2):
        card["co2_eq_emissions"] = {"emissions": _text(co2)}
    task = card.get("task")
    if task in TASK_IO:
        card["inputs"], card["outputs"] = [TASK_IO[task][0]], [TASK_IO[task][1]]
