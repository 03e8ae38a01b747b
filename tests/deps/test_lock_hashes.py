"""Lock files and ``--hash`` lines: the distribution digests they pin reach the dependency
(the BOM lists them as the library's hashes)."""

from __future__ import annotations

from pathlib import Path

from mlward._internal.scanners.deps.manifests import (
    parse_pipfile_lock,
    parse_poetry_lock,
    parse_pylock,
    parse_uv_lock,
)
from mlward._internal.scanners.deps.requirements import parse_requirements

A, B = "a" * 64, "b" * 64


def test_requirements_hash_options(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        f"torch==2.1.0 \\\n    --hash=sha256:{A} \\\n    --hash sha256:{B.upper()}\nnumpy==1\n")
    torch, numpy = parse_requirements(tmp_path / "requirements.txt")
    assert torch.hashes == (f"sha256:{A}", f"sha256:{B}")
    assert numpy.hashes == ()


def test_lock_files() -> None:
    poetry = parse_poetry_lock(
        f'[[package]]\nname = "x"\nversion = "1.0"\n'
        f'files = [{{file = "x.whl", hash = "sha256:{A}"}}]\n', "poetry.lock")
    assert poetry[0].hashes == (f"sha256:{A}",)
    uv = parse_uv_lock(
        f'[[package]]\nname = "x"\nversion = "1.0"\nsdist = {{ url = "u", hash = "sha256:{A}" }}\n'
        f'wheels = [{{ url = "w", hash = "sha256:{B}" }}]\n', "uv.lock")
    assert set(uv[0].hashes) == {f"sha256:{A}", f"sha256:{B}"}
    pylock = parse_pylock(
        f'lock-version = "1.0"\n[[packages]]\nname = "x"\nversion = "1.0"\n'
        f'wheels = [{{ name = "x.whl", hashes = {{ sha256 = "{A}" }} }}]\n', "pylock.toml")
    assert pylock[0].hashes == (f"sha256:{A}",)
    pipfile = parse_pipfile_lock(
        f'{{"default": {{"x": {{"version": "==1.0", "hashes": ["sha256:{B}"]}}}}}}',
        "Pipfile.lock")
    assert pipfile[0].hashes == (f"sha256:{B}",)
