"""Container benchmark: does each scanner find a payload hidden inside a container format?

mlward beside picklescan, ModelScan, fickling and modelaudit (the tools and the way they are
measured come from ``pickle_scan.py``), on small inputs generated here into ``bench/out/``:
the same ``os.system`` pickle (never loaded) behind a ``.txt`` name, compressed the ways
joblib compresses, in a numpy object array and an ``.npz``, in a legacy and a tar-format
PyTorch checkpoint, in a torch zip with a wrong CRC or cut short like a failed download,
and three archives deep (zip in tar.gz in 7z); plus a zip bomb (1 GiB of zeros in a 1 MiB
member), where the question is time and memory.

Run it from the bench venv (``bash bench/setup.sh`` makes it)::

    bench/.venv/bin/python bench/containers_bench.py [--write-readme]
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import lzma
import pickle
import shlex
import struct
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import py7zr
from _bench import compile_mlward, write_section  # bench/ is the script folder, on sys.path
from pickle_scan import EVIL, TOOLS, Case, Run, machine, measure, warm_page_cache

BENCH = Path(__file__).resolve().parent
LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _p(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=2)


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]  # mode: w, w:gz, ...
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _npy(descr: str) -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()


def _torch_zip() -> bytes:
    return _zip({"archive/data.pkl": EVIL, "archive/byteorder": b"little",
                 "archive/data/0": bytes(4096), "archive/version": b"3\n"})


def bad_crc() -> bytes:
    data = bytearray(_torch_zip())
    for at in (14, data.find(b"PK\x01\x02") + 16):  # local and central CRC of data.pkl
        data[at:at + 4] = b"\xde\xad\xbe\xef"
    return bytes(data)


class _Unseekable(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        view = memoryview(b)  # type: ignore[arg-type]  # a buffer, as RawIOBase.write gets
        self.data += view
        return view.nbytes


def truncated_torch() -> bytes:
    """Members written with data descriptors (as torch's writer does), cut at two thirds."""
    out = _Unseekable()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive/data.pkl", EVIL)
        zf.writestr("archive/data/0", bytes(range(256)) * 64)
        zf.writestr("archive/version", b"3\n")
    return bytes(out.data[: len(out.data) * 2 // 3])


def legacy_torch() -> bytes:
    return (b"\x80\x02\x8a\x0a" + LEGACY_MAGIC + b"." + _p(1001) + _p({"little_endian": True})
            + EVIL + _p(["0"]) + struct.pack("<q", 3) + bytes(12))


def torch_tar() -> bytes:
    def storage(key: bytes, numel: int) -> bytes:
        return (b"\x80\x02(X" + struct.pack("<I", len(key)) + key + b"X\x03\x00\x00\x00cpu"
                b"ctorch\nFloatStorage\nt." + struct.pack("<q", numel) + bytes(4 * numel))

    storages = _p(2) + storage(b"0", 3) + EVIL + struct.pack("<q", 1) + bytes(4) + _p([])
    return _tar({"sys_info": _p({"little_endian": True}), "pickle": _p({"w": 1}),
                 "tensors": _p(0), "storages": storages})


def nested_7z() -> bytes:
    inner = _tar({"release/weights.zip": _zip({"model/data.bin": EVIL})}, mode="w:gz")
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(inner, "dist/model.tar.gz")
    return buf.getvalue()


def zip_bomb(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf, \
            zf.open("weights.bin", "w", force_zip64=True) as member:
        zero = bytes(16 << 20)
        for _ in range(64):
            member.write(zero)


CASES: list[tuple[str, str, str, Callable[[], bytes] | None]] = [
    ("txt-name", "notes.txt", "a pickle named .txt", lambda: EVIL),
    ("joblib-zlib", "clf.joblib", "zlib-compressed pickle (joblib compress='zlib')",
     lambda: zlib.compress(EVIL)),
    ("joblib-gzip", "clf.joblib", "gzip-compressed pickle", lambda: gzip.compress(EVIL)),
    ("joblib-bz2", "clf.joblib", "bz2-compressed pickle", lambda: bz2.compress(EVIL)),
    ("joblib-lzma", "clf.joblib", "lzma (alone) compressed pickle",
     lambda: lzma.compress(EVIL, format=lzma.FORMAT_ALONE)),
    ("joblib-xz", "clf.joblib", "xz-compressed pickle", lambda: lzma.compress(EVIL)),
    ("npy-object", "emb.npy", "numpy object array", lambda: _npy("'|O'") + EVIL),
    ("npz", "arrays.npz", "object array inside an .npz",
     lambda: _zip({"ok.npy": _npy("'<f4'") + bytes(4), "x.npy": _npy("'|O'") + EVIL})),
    ("torch-legacy", "model.pth", "legacy torch checkpoint, payload as the object pickle",
     legacy_torch),
    ("torch-tar", "old.pt", "tar-format torch checkpoint, payload between storages",
     torch_tar),
    ("torch-bad-crc", "model.pt", "torch zip whose data.pkl has a wrong CRC", bad_crc),
    ("torch-truncated", "model.pt", "torch-style zip cut short (no zip directory)",
     truncated_torch),
    ("nested-7z", "bundle.7z", "zip in tar.gz in 7z", nested_7z),
    ("zip-bomb", "bomb.zip", "1 GiB of zeros deflated to about 1 MiB", None),
]


def make_inputs(out: Path) -> list[Case]:
    folder = out / "containers"
    cases = []
    for name, filename, what, build in CASES:
        path = folder / name / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        case = Case(name, path, zip_bomb if build is None else _writes(build), what)
        case.ensure()
        cases.append(case)
    return cases


def _writes(build: Callable[[], bytes]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(build())

    return write


def render(cases: list[Case], runs: list[Run], command: str) -> str:
    by = {(r.case, r.tool): r for r in runs}
    tools = [t.name for t in TOOLS if any(r.tool == t.name for r in runs)]
    loads = sorted(r.load for r in runs)
    lines = [
        f"Measured {runs[0].measured[:16].replace('T', ' ')} UTC on {machine()}; the 1-minute "
        f"load average was {loads[0]:.1f}–{loads[-1]:.1f} (other work shares the machine, so "
        "wall times are noisy). mlward's times are mostly its start-up: scanning each input "
        "takes milliseconds.",
        "",
        "```sh",
        command,
        "```",
        "",
        "Each cell: the tool's verdict (parsed from its report), exit code, wall seconds and "
        "peak RSS. Every input but the bomb holds the same `os.system` payload: `clean` there "
        "means the payload was missed.",
        "",
        "| case | " + " | ".join(tools) + " |",
        "|---|" + "---|" * len(tools),
    ]
    for case in cases:
        cells = []
        for tool in tools:
            r = by.get((case.name, tool))
            if r is None:
                cells.append("")
                continue
            code = "killed" if r.exit_code is None else r.exit_code
            cells.append(f"{r.verdict} (exit {code}; {r.wall_s:.1f} s, "
                         f"{r.peak_rss_mib:,.0f} MiB)")
        lines.append(f"| {case.name}: {case.what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=BENCH / "out")
    p.add_argument("--tools", default=",".join(t.name for t in TOOLS),
                   help="comma-separated tools to run (default: all)")
    p.add_argument("--timeout", type=float, default=300,
                   help="seconds before a tool's run is killed (default: 300)")
    p.add_argument("--write-readme", action="store_true",
                   help="replace the results section of bench/README.md")
    args = p.parse_args(argv)
    compile_mlward()
    args.out.mkdir(parents=True, exist_ok=True)
    cases = make_inputs(args.out)
    tools = [t for t in TOOLS if t.name in args.tools.split(",")]
    for tool in tools:  # warm-up, not measured
        measure(tool, cases[0], args.out, args.timeout)
    runs = []
    for case in cases:
        warm_page_cache(case.path)
        for tool in tools:
            run = measure(tool, case, args.out, args.timeout)
            print(f"{case.name:16} {tool.name:11} {run.wall_s:7.2f} s  exit {run.exit_code}  "
                  f"{run.verdict}", file=sys.stderr, flush=True)
            runs.append(run)
    command = shlex.join(["bench/.venv/bin/python", "bench/containers_bench.py",
                          *(argv if argv is not None else sys.argv[1:])])
    section = render(cases, runs, command)
    if args.write_readme:
        write_section("containers_bench", section)
    else:
        print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
