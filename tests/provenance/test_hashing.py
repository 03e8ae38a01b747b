"""Digests: each label computes exactly what the hashing module documents."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import blake3
import pytest

from mlward._internal.provenance.errors import FileChangedError, ProvenanceError
from mlward._internal.provenance.hashing import (
    CHUNK,
    SMALL,
    FileJob,
    HashSpec,
    file_digest,
    hash_files,
    hash_paths,
    parse_label,
)

SHARD = CHUNK  # the smallest shard size allowed, so small test files get several shards


def _data(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def test_plain_sha256_is_what_sha256sum_prints(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(_data(3 * CHUNK + 17))
    assert file_digest(f, "sha256") == hashlib.sha256(f.read_bytes()).hexdigest()


def test_sharded_digest_follows_the_documented_definition(tmp_path: Path) -> None:
    data = _data(2 * SHARD + 1234)
    f = tmp_path / "f"
    f.write_bytes(data)
    label = HashSpec("sha256", SHARD).label_for(len(data))
    assert label == f"sha256-sharded-{SHARD}"
    outer = hashlib.sha256(f"mlward-sharded-v1 {SHARD} {len(data)}\n".encode())
    for start in range(0, len(data), SHARD):
        outer.update(hashlib.sha256(data[start:start + SHARD]).digest())
    assert file_digest(f, label) == outer.hexdigest()


def test_sharded_digest_is_the_same_with_one_worker_or_many(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(_data(5 * SHARD + 3))
    job = FileJob.of(f, f.stat(), f"sha256-sharded-{SHARD}")
    assert hash_files([job], workers=1) == hash_files([job], workers=4)


def test_files_at_or_below_the_shard_size_get_plain_sha256() -> None:
    spec = HashSpec("sha256", SHARD)
    assert spec.label_for(SHARD) == "sha256"
    assert HashSpec("sha256", None).label_for(10 * SHARD) == "sha256"


def test_blake3_is_what_b3sum_prints(tmp_path: Path) -> None:
    data = _data(9 * CHUNK + 5)  # large enough for blake3's own threads
    f = tmp_path / "f"
    f.write_bytes(data)
    assert file_digest(f, "blake3") == blake3.blake3(data).hexdigest()


def test_many_files_keep_their_order(tmp_path: Path) -> None:
    paths = []
    for n in range(50):
        p = tmp_path / f"f{n}"
        p.write_bytes(str(n).encode() * (n + 1))
        paths.append(p)
    jobs = [FileJob.of(p, p.stat(), "sha256") for p in paths]
    assert hash_files(jobs) == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_file_changed_after_listing_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"before")
    job = FileJob.of(f, f.stat(), "sha256")
    f.write_bytes(b"after, longer")
    with pytest.raises(FileChangedError, match="changed while it was being hashed"):
        hash_files([job])


def test_file_growing_while_its_shards_are_hashed_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(_data(3 * SHARD))
    job = FileJob.of(f, f.stat(), f"sha256-sharded-{SHARD}")

    def append(_: int) -> None:  # runs after the first shard is hashed
        with open(f, "ab") as out:
            out.write(b"more")

    with pytest.raises(FileChangedError, match="size"):
        hash_files([job], workers=1, progress=append)


def test_truncated_file_is_reported_not_crashed_on(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(_data(3 * SHARD))
    job = FileJob.of(f, f.stat(), f"sha256-sharded-{SHARD}")

    def truncate(_: int) -> None:
        with open(f, "r+b") as out:
            out.truncate(10)

    with pytest.raises(FileChangedError):
        hash_files([job], workers=1, progress=truncate)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProvenanceError, match="cannot read"):
        file_digest(tmp_path / "nope")


@pytest.mark.parametrize("label", ["md5", "sha256-sharded-", "sha256-sharded-12", "SHA256"])
def test_unknown_labels_are_refused(label: str) -> None:
    with pytest.raises(ProvenanceError, match="unknown digest algorithm"):
        parse_label(label)


def test_large_blake3_file_that_shrank_since_listing_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(_data(10 * CHUNK))
    job = FileJob.of(f, f.stat(), "blake3")
    with open(f, "r+b") as out:
        out.truncate(3 * CHUNK)
    os.utime(f, ns=(job.mtime_ns, job.mtime_ns))  # even with its old time put back
    with pytest.raises(FileChangedError):
        hash_files([job])


@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, SMALL + 1])
def test_small_files_take_the_short_path_with_the_same_digest(tmp_path: Path,
                                                               size: int) -> None:
    f = tmp_path / "f"
    f.write_bytes(_data(size))
    assert file_digest(f) == hashlib.sha256(f.read_bytes()).hexdigest()


def test_small_file_replaced_or_resized_under_its_old_time_is_reported(tmp_path: Path) -> None:
    f, other = tmp_path / "f", tmp_path / "other"
    f.write_bytes(b"listed")
    job = FileJob.of(f, f.stat(), "sha256")
    other.write_bytes(b"listed")
    other.replace(f)  # same size, a new inode
    with pytest.raises(FileChangedError, match="replaced"):
        hash_files([job])
    job = FileJob.of(f, f.stat(), "sha256")
    with open(f, "ab") as out:
        out.write(b" and more")
    os.utime(f, ns=(job.mtime_ns, job.mtime_ns))
    with pytest.raises(FileChangedError, match="size"):
        hash_files([job])


def test_hashing_works_where_the_platform_has_no_cpu_affinity(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    f = tmp_path / "f"
    f.write_bytes(b"data")
    assert file_digest(f) == hashlib.sha256(b"data").hexdigest()


@pytest.mark.parametrize("name", ["plain.bin", "ünïcødé/名前.txt", 'quote"and\tcontrol\x01.bin',
                                  "surrogate\udcff.bin", "deep/er/path with spaces.csv"])
def test_canonical_lines_are_the_canonical_encoder_s_bytes(name: str) -> None:
    import json

    from mlward._internal.provenance.manifest import Entry, canonical_lines

    entries = [Entry(name, "file", 123, {"sha256": "ab" * 32}),
               Entry("z-link", "symlink", target=f"../{name}"), Entry("y-fifo", "fifo")]
    general = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
    assert canonical_lines(entries) == [general.encode(e.to_dict())
                                        for e in sorted(entries, key=lambda e: e.path)]


def test_paths_listed_without_stat_get_their_size_and_label_from_reading(tmp_path: Path) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"tiny")
    big.write_bytes(_data(3 * SHARD + 7))
    spec = HashSpec("sha256", SHARD)
    assert hash_paths([small, big], spec) == [
        (4, "sha256", hashlib.sha256(b"tiny").hexdigest()),
        (3 * SHARD + 7, f"sha256-sharded-{SHARD}", file_digest(big, f"sha256-sharded-{SHARD}"))]
    # a manifest's own label wins
    assert hash_paths([big], spec, labels=["sha256"]) == [
        (3 * SHARD + 7, "sha256", hashlib.sha256(big.read_bytes()).hexdigest())]


def test_a_fifo_found_where_a_file_was_listed_is_reported_without_blocking(
        tmp_path: Path) -> None:
    fifo = tmp_path / "was-a-file"
    os.mkfifo(fifo)
    with pytest.raises(FileChangedError, match="no longer a regular file"):
        hash_paths([fifo], HashSpec())


def test_a_listing_in_many_batches_keeps_its_order_sizes_and_labels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlward._internal.provenance import hashing

    monkeypatch.setattr(hashing, "LOOK_BATCH", 64)
    paths, expected = [], []
    for i in range(300):  # several batches; every 50th file over SMALL (hashed afterwards)
        size = SMALL + i if i % 50 == 0 else i
        f = tmp_path / f"{i:03d}"
        f.write_bytes(_data(size))
        paths.append(f)
        expected.append((size, "sha256", hashlib.sha256(_data(size)).hexdigest()))
    for workers in (1, 2):
        reported: list[int] = []
        assert hash_paths(paths, HashSpec(), workers=workers, progress=reported.append) \
            == expected
        assert sum(reported) == sum(size for size, _, _ in expected)


@pytest.mark.parametrize("trouble", ["missing", "link", "directory"])
def test_a_file_that_cannot_be_read_in_a_batch_stops_the_listing_by_name(
        tmp_path: Path, trouble: str) -> None:
    paths = []
    for i in range(200):
        f = tmp_path / f"{i:03d}"
        f.write_bytes(b"x" * i)
        paths.append(f)
    bad = paths[150]
    bad.unlink()
    if trouble == "link":  # swapped for a link since the listing: never followed
        bad.symlink_to(paths[0])
    elif trouble == "directory":
        bad.mkdir()
    with pytest.raises(ProvenanceError, match=str(bad)):
        hash_paths(paths, HashSpec(), workers=2)


_HELPER = """
import hashlib, json, sys
from pathlib import Path
from mlward._internal.provenance import hashing
from mlward._internal.provenance.errors import ProvenanceError
from mlward.executors import prefork

forked = []
real = prefork.fork_task
def spy(work):
    task = real(work)
    forked.append(task is not None)
    return task
prefork.fork_task = spy
hashing.HELPER_MIN = 64
if sys.argv[2] == "allowed":
    prefork.allow_helpers()
paths = sorted(Path(sys.argv[1]).iterdir())
try:
    got = hashing.hash_paths(paths, hashing.HashSpec())
    error = None
except ProvenanceError as exc:
    got, error = None, str(exc)
print(json.dumps({"forked": forked, "got": got, "error": error}))
"""


def _helper_run(folder: Path, mode: str) -> dict[str, object]:
    import json
    import subprocess
    import sys

    src = Path(__file__).resolve().parents[2] / "src"
    done = subprocess.run([sys.executable, "-c", _HELPER, str(folder), mode],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(src)})
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(not hasattr(os, "fork") or os.uname().sysname != "Linux",
                    reason="the forked helper is Linux's")
def test_a_long_listing_shared_with_a_forked_helper_gives_the_same_digests(
        tmp_path: Path) -> None:
    """The helper reads the second half of the listing on another core: same digests, sizes
    and labels, in order (files over SMALL in both halves are hashed afterwards, here); in a
    process that is not mlward's own console script nothing is forked."""
    expected = []
    for i in range(1000):  # enough for the two processes' reads to overlap
        size = SMALL + i if i % 245 == 0 else 100 + i * 7
        (tmp_path / f"{i:03d}").write_bytes(_data(size)[::-1])
        expected.append([size, "sha256", hashlib.sha256(_data(size)[::-1]).hexdigest()])
    assert _helper_run(tmp_path, "allowed") == {"forked": [True], "got": expected,
                                                  "error": None}
    assert _helper_run(tmp_path, "library") == {"forked": [False], "got": expected,
                                                  "error": None}


@pytest.mark.skipif(not hasattr(os, "fork") or os.uname().sysname != "Linux",
                    reason="the forked helper is Linux's")
def test_the_first_unreadable_file_of_the_listing_is_raised_whichever_half_has_it(
        tmp_path: Path) -> None:
    for i in range(200):
        (tmp_path / f"{i:03d}").write_bytes(_data(i))
    (tmp_path / "150").chmod(0o000)  # in the helper's half
    result = _helper_run(tmp_path, "allowed")
    if os.geteuid() != 0:  # root reads a file of mode 000
        assert result["forked"] == [True] and "150" in str(result["error"])
    (tmp_path / "150").unlink()
    (tmp_path / "150").mkdir()  # listed as a file, now a folder: in the helper's half
    result = _helper_run(tmp_path, "allowed")
    assert result["forked"] == [True] and result["got"] is None
    assert "150" in str(result["error"]) and "no longer a regular file" in str(result["error"])
    (tmp_path / "020").unlink()
    (tmp_path / "020").mkdir()  # and one in this process's half: that one is reported
    result = _helper_run(tmp_path, "allowed")
    assert "020" in str(result["error"]) and "150" not in str(result["error"])
