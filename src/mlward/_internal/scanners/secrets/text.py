"""The last-resort scanner: a secrets pass over small text files no other scanner claims."""

from __future__ import annotations

from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.sources import Source
from mlward.errors import MissingExtra

MAX_TEXT_BYTES = 2 << 20
"""Larger files are not claimed (they are data, not configuration); they stay unrecognised."""


def looks_like_text(head: bytes) -> bool:
    """No NUL byte and valid UTF-8 (a multi-byte character cut at the end is allowed).

    One decode: the first bad byte must be within the last three (a character is at most
    four bytes, so a cut one starts there; anything earlier is not text). Most sniffers of
    every file ask this, and a failed decode is the costly part."""
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3
    return True


def read_text(source: Source, limit: int) -> str:
    with source.open() as f:
        return f.read(limit).decode("utf-8", "replace")


class TextScanner(Scanner):
    """Configs, ``.env``, YAML, JSON, shell scripts, Markdown: secrets only.

    Priority 900, after every specific format, so it never takes a file another scanner
    recognises; as a supplementary scanner it still runs after the scanner that claimed a
    text file (a requirements file, a compose file), unless that scanner covers secrets.
    """

    name = "text"
    priority = 900
    supplementary = True

    def sniff(self, source: Source) -> bool:
        return source.size is not None and source.size <= MAX_TEXT_BYTES \
            and looks_like_text(source.head())

    def scan(self, source: Source, ctx: ScanContext) -> None:
        from mlward._internal.scanners.secrets.detect import require_engine, syntax_for
        from mlward._internal.scanners.secrets.report import baseline_for, report_secrets

        ctx.examined(source.location, self.name)
        try:
            require_engine()
        except MissingExtra as exc:
            ctx.skip(source.location, f"secrets pass not run: {exc}", inconclusive=True)
            return
        text = read_text(source, MAX_TEXT_BYTES)
        report_secrets(ctx, text, source.location, where="text file",
                       allowed=baseline_for(source.fs_path), syntax=syntax_for(source.name))
