"""Errors of the provenance stage."""

from __future__ import annotations

from mlward.errors import MlwardError


class ProvenanceError(MlwardError):
    """A manifest, statement, key or signature that cannot be read, written or trusted."""


class FileChangedError(ProvenanceError):
    """A file changed (size, time or identity) while it was being hashed."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path} changed while it was being hashed ({what}); "
                         "try again when nothing is writing to it")
        self.path = path
        self.what = what
