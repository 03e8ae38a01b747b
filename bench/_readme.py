"""Each benchmark writes its own results section of bench/README.md, between its markers."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).with_name("README.md")


def write_section(name: str, section: str) -> None:
    """Replace the text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` (markers
    appended at the end when missing), through a temporary file and a rename."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = README.read_text()
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    start, stop = text.index(begin) + len(begin), text.index(end)
    tmp = README.with_name(README.name + ".tmp")
    tmp.write_text(text[:start] + "\n" + section.strip("\n") + "\n" + text[stop:])
    tmp.replace(README)
