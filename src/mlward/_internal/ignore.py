"""Gitignore-style patterns (ignore files, ``exclude`` settings), matched by pathspec.

pathspec's import costs about 20 ms (a fifth of a one-folder scan), and most paths a scan
walks match none of a project's ignore patterns (``.venv/``, ``*.pyc``, ``build/`` are
seldom where models are). So each pattern is first reduced to its literal pieces: the
characters between its wildcards, character classes, slashes and spaces. A path that does
not contain every piece of some pattern cannot match any, and is answered without pathspec;
pathspec is imported, and decides, the first time a path might match. The pieces only rule
out: whatever may match goes to pathspec, so its semantics are the ones applied (a
differential test holds the two together).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mlward._internal import logs
from mlward.errors import UsageError

log = logs.get("mlward.walk")
_NOT_LITERAL = re.compile(r"\*+|\?|\[[^\]]*\]?|/|\s+")
"""What separates a pattern's literal pieces: wildcards, a character class (to its end, or
the end of the line), slashes (``**/`` may match no folder at all) and spaces (git strips
trailing ones)."""


def _pieces(line: str) -> tuple[str, ...] | None:
    """The literal pieces every path that ``line`` matches contains; None when the line is
    not a pattern (blank, or a comment)."""
    if not line.strip() or line.startswith("#"):
        return None
    if line.startswith("!"):  # a negation matches what its pattern matches
        line = line[1:]
    # Escaped characters, and pieces of dots only ("./" may be normalised away), are left
    # out: fewer pieces only send more paths to pathspec.
    return tuple(p for p in _NOT_LITERAL.split(line)
                 if p and "\\" not in p and p.strip(".") != "")


class Patterns:
    """Gitignore-style patterns: the last one that matches decides. ``where`` says where
    each line comes from, for messages ("path/.gitignore, line 3")."""

    def __init__(self, lines: Sequence[str], where: Sequence[str]) -> None:
        self.lines = list(lines)
        self.where = list(where)
        pieces = (_pieces(line) for line in self.lines)
        self._pieces = [p for p in pieces if p is not None]
        self._spec: Any = None

    def check(self, path: str) -> bool | None:
        """True when ``path`` (POSIX, relative to the patterns' folder, a folder with a
        trailing slash) is matched, False when a negation re-includes it, None when no
        pattern matches it."""
        if not any(all(p in path for p in pieces) for pieces in self._pieces):
            return None
        if self._spec is None:
            self._spec = self._compile(strict=False)
        include: bool | None = self._spec.check_file(path).include
        return include

    def match(self, path: str) -> bool:
        return bool(self.check(path))

    def validate(self) -> None:
        """Raise :class:`UsageError` for a line pathspec cannot read (patterns the user
        gave; an ignore file's bad lines are left out with a warning instead, as git
        leaves them)."""
        self._spec = self._compile(strict=True)

    def _compile(self, *, strict: bool) -> Any:
        import pathspec

        try:
            return pathspec.GitIgnoreSpec.from_lines(self.lines)
        except ValueError:  # pathspec's GitIgnorePatternError is one: find the line(s)
            pass
        good = []
        for line, where in zip(self.lines, self.where, strict=True):
            try:
                pathspec.GitIgnoreSpec.from_lines([line])
            except ValueError as exc:
                if strict:
                    raise UsageError(f"{where} is not a valid pattern ({exc})") from None
                log.warning("%s: %r is not a valid pattern; left out (%s)", where, line, exc)
            else:
                good.append(line)
        return pathspec.GitIgnoreSpec.from_lines(good)
