"""Real components for the scale-out tests: moto's S3 server on 127.0.0.1 with a request log,
gcp-storage-emulator and Azurite (Google Cloud Storage's and Azure Blob Storage's
emulators), a Dask ``LocalCluster``, separately started ``dask scheduler``/``dask worker``
processes, and a tree of mixed model files (payloads assembled from opcodes, never
committed)."""

from __future__ import annotations

import io
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloud.conftest import azurite_command, gcs_emulator  # noqa: F401 (a fixture used here)
from probe.conftest import _stop as stop  # the probe tests' servers stop the same way
from probe.conftest import free_port

REPO_SRC = Path(__file__).resolve().parents[2] / "src"
BIN = Path(sys.executable).parent


def evil_pickle(marker: Path) -> bytes:
    """``os.system("touch MARKER")`` on load, assembled from opcodes."""
    cmd = f"touch {marker}".encode()
    return b"\x80\x02cos\nsystem\n(X" + struct.pack("<I", len(cmd)) + cmd + b"tR."


def torch_zip(data_pkl: bytes, *storages: bytes) -> bytes:
    """A checkpoint laid out as ``torch.save`` lays it out: the pickle first, tensor storage
    in the middle, small records last."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", "little")
        for n, storage in enumerate(storages):
            zf.writestr(f"archive/data/{n}", storage)
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


def storage_ranges(blob: bytes) -> list[tuple[int, int]]:
    """The byte ranges of a checkpoint's tensor storage members (their data, not headers)."""
    out = []
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        for info in zf.infolist():
            if "/data/" in info.filename:
                name_len, extra_len = struct.unpack_from("<HH", blob, info.header_offset + 26)
                start = info.header_offset + 30 + name_len + extra_len
                out.append((start, start + info.compress_size))
    return out


def model_tree(root: Path, marker: Path, copies: int = 1) -> Path:
    """Mixed model files: benign and malicious pickles, torch checkpoints, a zip hiding a
    payload, text and a notebook-like JSON; ``copies`` of each under numbered folders."""
    for n in range(copies):
        d = root / f"set{n:04d}"
        d.mkdir(parents=True)
        (d / "clean.pkl").write_bytes(pickle.dumps({"weights": list(range(50)), "n": n}))
        (d / "evil.pkl").write_bytes(evil_pickle(marker))
        (d / "model.pt").write_bytes(torch_zip(pickle.dumps({"w": n}, protocol=2),
                                               bytes(4096)))
        (d / "evil.pt").write_bytes(torch_zip(evil_pickle(marker), bytes(1024)))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("inner/hook.pkl", evil_pickle(marker))
            zf.writestr("README.md", "a model bundle")
        (d / "bundle.zip").write_bytes(buf.getvalue())
        (d / "notes.txt").write_text("training notes\n")
    return root


# -- moto's S3 server ---------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    sent: int = 0


@dataclass
class S3Server:
    """moto's S3 app served on 127.0.0.1 the way ``ThreadedMotoServer`` serves it (werkzeug,
    a thread), behind a WSGI layer that logs each request's range and the bytes sent."""

    url: str
    log: list[Request] = field(default_factory=list)

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def gets(self, bucket: str, key: str) -> list[Request]:
        return [r for r in self.log if r.method == "GET" and r.path == f"/{bucket}/{key}"]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = S3Server(f"http://127.0.0.1:{free_port()}")

    def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        record = Request(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""),
                         environ.get("HTTP_RANGE"))
        server.log.append(record)
        body = app(environ, start_response)
        try:
            for chunk in body:
                record.sent += len(chunk)
                yield chunk
        finally:
            if hasattr(body, "close"):
                body.close()

    httpd = make_server("127.0.0.1", int(server.url.rsplit(":", 1)[1]), logged, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    env = {"AWS_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # read by botocore in this process and in worker processes
    _forget_filesystems()
    try:
        yield server
    finally:
        httpd.shutdown()
        thread.join()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _forget_filesystems()


def _forget_filesystems() -> None:
    """fsspec keeps one filesystem per process: drop it so the next one reads the endpoint."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


# -- Google Cloud Storage: gcp-storage-emulator (the test extra), on 127.0.0.1 --------------


@dataclass
class GcsServer:
    url: str

    def put(self, bucket: str, tree: Path, prefix: str) -> None:
        import fsspec

        fs = fsspec.filesystem("gs")
        fs.mkdir(bucket)
        for path in sorted(p for p in tree.rglob("*") if p.is_file()):
            fs.pipe_file(f"{bucket}/{prefix}/{path.relative_to(tree).as_posix()}",
                         path.read_bytes())


@pytest.fixture(scope="module")
def gcs(gcs_emulator: str) -> Iterator[GcsServer]:  # noqa: F811 (the imported fixture)
    """The cloud tests' gcp-storage-emulator. gcsfs finds it through STORAGE_EMULATOR_HOST,
    with anonymous credentials (the default chain would ask the cloud's metadata server) and
    its plain JSON-API filesystem (the default one first asks a gRPC endpoint the emulator
    does not serve)."""
    gcsfs = pytest.importorskip("gcsfs")
    import fsspec
    from gcsfs.core import GCSFileSystem

    server = GcsServer(gcs_emulator)
    saved_env = os.environ.get("STORAGE_EMULATOR_HOST")
    saved_conf = fsspec.config.conf.get("gs")
    saved_class = fsspec.get_filesystem_class("gs")
    try:
        os.environ["STORAGE_EMULATOR_HOST"] = server.url
        fsspec.config.conf["gs"] = {"token": "anon", "project": "test"}
        fsspec.register_implementation("gs", GCSFileSystem, clobber=True)
        GCSFileSystem.clear_instance_cache()
        yield server
    finally:
        if saved_env is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved_env
        if saved_conf is None:
            fsspec.config.conf.pop("gs", None)
        else:
            fsspec.config.conf["gs"] = saved_conf
        fsspec.register_implementation("gs", saved_class, clobber=True)
        gcsfs.GCSFileSystem.clear_instance_cache()


# -- Azurite: Azure Blob Storage's emulator (npm; .ci/run installs it in .test-tools/) ----

AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
"""Azurite's well-known development account key (published in its documentation)."""


@dataclass
class BlobServer:
    connection_string: str

    def put(self, container: str, tree: Path, prefix: str) -> None:
        from adlfs import AzureBlobFileSystem

        fs = AzureBlobFileSystem(connection_string=self.connection_string)
        fs.mkdir(container)
        for path in sorted(p for p in tree.rglob("*") if p.is_file()):
            fs.pipe_file(f"{container}/{prefix}/{path.relative_to(tree).as_posix()}",
                         path.read_bytes())


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlobServer]:
    """``azurite-blob`` on 127.0.0.1; adlfs finds it through AZURE_STORAGE_CONNECTION_STRING,
    as it finds a real account."""
    pytest.importorskip("adlfs")
    command = azurite_command()  # found as the cloud tests find it, or skipped with the reason
    workdir = tmp_path_factory.mktemp("azurite")
    port = free_port()
    proc = _start([*command, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
                   str(workdir), "--silent", "--skipApiVersionCheck", "--loose"], workdir,
                  "azurite")
    server = BlobServer(f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                        f"AccountKey={AZURITE_KEY};"
                        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    saved = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    try:
        _wait_for_port(port, proc, workdir / "azurite.log")
        os.environ["AZURE_STORAGE_CONNECTION_STRING"] = server.connection_string
        _forget_azure()
        yield server
    finally:
        stop(proc)
        if saved is None:
            os.environ.pop("AZURE_STORAGE_CONNECTION_STRING", None)
        else:
            os.environ["AZURE_STORAGE_CONNECTION_STRING"] = saved
        _forget_azure()


def _forget_azure() -> None:
    from adlfs import AzureBlobFileSystem

    AzureBlobFileSystem.clear_instance_cache()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"{log.stem} did not start:\n" + log.read_text(errors="replace"))
            time.sleep(0.2)


# -- Dask processes started as a user starts them -----------------------------------------


@dataclass
class DaskProcesses:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    workdir: Path

    def add_worker(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = _start([str(BIN / "dask"), "worker", self.address, "--nthreads", "1",
                       "--no-dashboard", "--host", "127.0.0.1"], self.workdir,
                      f"worker{len(self.workers)}", env)
        self.workers.append(proc)
        return proc

    def client(self) -> Any:
        from distributed import Client

        return Client(self.address, timeout=30)

    def wait_for_workers(self, n: int) -> None:
        with self.client() as c:
            c.wait_for_workers(n, timeout=120)


def _start(cmd: list[str], workdir: Path, name: str,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    base = {**os.environ, "PYTHONPATH": str(REPO_SRC)}  # the workers run this tree's mlward
    with open(workdir / f"{name}.log", "ab") as log:
        return subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**base, **(env or {})})


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[DaskProcesses]:
    """A ``dask scheduler`` and one ``dask worker``, separate processes on 127.0.0.1."""
    if not (BIN / "dask").exists():
        pytest.skip("dask is not installed (pip install 'mlward[dask]')")
    port = free_port()
    workdir = tmp_path / "dask"
    workdir.mkdir()
    scheduler = _start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                        str(port), "--no-dashboard"], workdir, "scheduler")
    procs = DaskProcesses(f"tcp://127.0.0.1:{port}", scheduler, [], workdir)
    try:
        _wait_for_port(port, scheduler, workdir / "scheduler.log")
        procs.add_worker()
        procs.wait_for_workers(1)
        yield procs
    finally:
        for proc in [*procs.workers, scheduler]:
            stop(proc)
