"""What a dependency source yields: one declared or installed package, where it was found."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from mlward.findings import Location


@dataclass(frozen=True)
class Dependency:
    name: str
    """As written; :attr:`key` is the PEP 503 form used for matching."""
    location: Location
    specifier: str = ""
    """The version range allowed (``==2.9.1``, ``>=2,<3``, empty for any)."""
    marker: str | None = None
    unresolvable: str | None = None
    """Why no version can be known (an editable install, a URL or VCS reference)."""
    origin: str = ""
    """The kind of source: ``requirements``, ``poetry.lock``, ``environment``, ..."""
    hashes: tuple[str, ...] = ()
    """``alg:hex`` digests of the distribution files the lock (or ``--hash``) pins."""

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    @property
    def version(self) -> str | None:
        """The exact version when the specifier pins one (``==X`` or ``===X``)."""
        try:
            specs = list(SpecifierSet(self.specifier))
        except InvalidSpecifier:
            return None
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            return specs[0].version
        return None

    @property
    def display(self) -> str:
        return f"{self.name}{self.specifier}" if self.specifier else self.name


class DependencyError(ValueError):
    """A dependency file that cannot be read as its format."""
