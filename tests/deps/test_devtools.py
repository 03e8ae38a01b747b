"""ML tool exposure in project trees (MW6xx), through ``mlward.scan``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlward._internal.pipeline import scan
from mlward.findings import Finding, Severity


def findings(tmp_path: Path, name: str, text: str) -> list[Finding]:
    (tmp_path / name).write_text(text)
    return [f for f in scan([tmp_path]).findings if f.rule_id.startswith("MW6")]


def rules(fs: list[Finding]) -> set[str]:
    return {f.rule_id for f in fs}


def test_jupyter_py_config_without_auth(tmp_path: Path, marker: Path) -> None:
    fs = findings(tmp_path, "jupyter_server_config.py",
                  "c = get_config()\n"
                  f"import os; os.system('touch {marker}')\n"
                  "c.ServerApp.ip = '0.0.0.0'\n"
                  "c.ServerApp.token = ''\n"
                  "c.ServerApp.password = ''\n"
                  "c.ServerApp.allow_origin = '*'\n"
                  "c.ServerApp.allow_root = True\n")
    by = {f.rule_id: f for f in fs}
    assert rules(fs) == {"MW601", "MW602", "MW603", "MW604"}
    assert by["MW601"].severity is Severity.CRITICAL and by["MW601"].location.line == 4
    assert by["MW602"].location.line == 3
    assert not marker.exists()  # the config is read, never run


def test_jupyter_with_password_is_not_unauthenticated(tmp_path: Path) -> None:
    fs = findings(tmp_path, "jupyter_notebook_config.py",
                  "c.NotebookApp.token = ''\nc.NotebookApp.password = 'argon2:$argon2id$v=19'\n")
    assert "MW601" not in rules(fs)


def test_jupyter_json_config(tmp_path: Path) -> None:
    fs = findings(tmp_path, "jupyter_server_config.json", json.dumps(
        {"ServerApp": {"ip": "*", "token": "", "disable_check_xsrf": True}}, indent=2))
    assert rules(fs) == {"MW601", "MW602", "MW603"}


def test_local_jupyter_without_token_is_high_not_critical(tmp_path: Path) -> None:
    fs = findings(tmp_path, "jupyter_server_config.py", "c.ServerApp.token = ''\n")
    assert [(f.rule_id, f.severity) for f in fs] == [("MW601", Severity.HIGH)]


def test_mlflow_in_shell_script(tmp_path: Path) -> None:
    fs = findings(tmp_path, "serve.sh",
                  "#!/bin/sh\nset -e\nmlflow server \\\n  --host 0.0.0.0 \\\n"
                  "  --backend-store-uri ./mlruns --serve-artifacts\n")
    assert rules(fs) == {"MW610", "MW611"}
    assert all(f.location.line == 3 for f in fs)


def test_mlflow_with_auth_app_or_local_host_is_fine(tmp_path: Path) -> None:
    assert findings(tmp_path, "run.sh",
                    "mlflow server --host 0.0.0.0 --app-name basic-auth\n"
                    "mlflow ui --port 5000\n") == []


def test_dockerfile_exec_form_and_tools(tmp_path: Path) -> None:
    fs = findings(tmp_path, "Dockerfile",
                  "FROM python:3.11\n"
                  'CMD ["ray", "start", "--head", "--dashboard-host=0.0.0.0"]\n'
                  "RUN tensorboard --logdir runs --bind_all && "
                  "streamlit run app.py --server.address 0.0.0.0\n"
                  "ENTRYPOINT jupyter lab --ip=0.0.0.0 --ServerApp.token='' --allow-root\n")
    assert rules(fs) == {"MW620", "MW630", "MW601", "MW602", "MW604"}
    assert {f.location.line for f in fs if f.rule_id == "MW630"} == {3}


def test_compose_published_ports(tmp_path: Path) -> None:
    fs = findings(tmp_path, "docker-compose.yml",
                  "services:\n"
                  "  nb:\n    image: jupyter/base-notebook\n    ports:\n      - \"8888:8888\"\n"
                  "  ray:\n    image: rayproject/ray\n    ports:\n"
                  "      - target: 8265\n        published: 8265\n"
                  "  local:\n    image: tensorboard\n    ports:\n"
                  "      - \"127.0.0.1:6006:6006\"\n"
                  "  tracking:\n    image: mlflow\n"
                  "    command: [\"mlflow\", \"server\", \"--host\", \"0.0.0.0\", "
                  "\"--app-name\", \"basic-auth\"]\n    ports: [\"5000:5000\"]\n")
    published = [f for f in fs if f.rule_id == "MW640"]
    assert sorted(f.details["port"] for f in published) == [8265, 8888]
    assert all(f.severity is Severity.HIGH for f in published)
    assert "MW610" not in rules(fs)


def test_kubernetes_service_ingress_and_raycluster(tmp_path: Path) -> None:
    fs = findings(tmp_path, "deploy.yaml",
                  "apiVersion: v1\nkind: Service\nmetadata: {name: mlflow}\n"
                  "spec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n    targetPort: 5000\n"
                  "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n"
                  "metadata: {name: tb}\nspec:\n  rules:\n  - http:\n      paths:\n"
                  "      - backend:\n          service:\n            name: tb\n"
                  "            port: {number: 6006}\n"
                  "---\napiVersion: ray.io/v1\nkind: RayCluster\nmetadata: {name: rc}\n"
                  "spec:\n  headGroupSpec:\n    rayStartParams:\n"
                  "      dashboard-host: '0.0.0.0'\n"
                  "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: srv}\n"
                  "spec:\n  template:\n    spec:\n      containers:\n      - name: m\n"
                  "        image: mlflow\n        command: [mlflow, server]\n"
                  "        args: [--host, 0.0.0.0]\n")
    assert rules(fs) == {"MW640", "MW620", "MW610", "MW611"}
    assert len([f for f in fs if f.rule_id == "MW640"]) == 2


def test_ingress_with_auth_annotation_is_fine(tmp_path: Path) -> None:
    assert findings(tmp_path, "ing.yaml",
                    "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: x\n"
                    "  annotations:\n    nginx.ingress.kubernetes.io/auth-url: https://auth\n"
                    "spec:\n  rules:\n  - http:\n      paths:\n      - backend:\n"
                    "          service: {name: x, port: {number: 8888}}\n") == []


def test_gradio_and_ray_in_python(tmp_path: Path, marker: Path) -> None:
    fs = findings(tmp_path, "app.py",
                  "import gradio as gr\n"
                  f"open('{marker}', 'w')\n"
                  "demo = gr.Interface(fn=f, inputs='text', outputs='text')\n"
                  "demo.launch(share=True, server_name='0.0.0.0')\n"
                  "import ray\nray.init(dashboard_host='0.0.0.0')\n")
    assert rules(fs) == {"MW631", "MW630", "MW620"}
    assert {f.location.line for f in fs} == {4, 6}
    assert not marker.exists()


def test_gradio_with_auth_is_fine(tmp_path: Path) -> None:
    assert findings(tmp_path, "app.py", "import gradio as gr\n"
                    "demo.launch(share=True, auth=('u', 'p'))\n") == []


@pytest.mark.parametrize("text", [
    # a billion-laughs style alias bomb: safe_load shares the nodes; the walk is bounded
    "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e]\n"
    "apiVersion: v1\nkind: List\n",
    "apiVersion: v1\nkind: Service\n" + "[" * 5000,
    "apiVersion: v1\nkind: Pod\nspec: " + "[" * 200 + "]" * 200 + "\n",
])
def test_hostile_yaml_ends_in_bounded_time(tmp_path: Path, text: str) -> None:
    assert findings(tmp_path, "evil.yaml", text) == []


def test_hostile_python_ends_in_bounded_time(tmp_path: Path) -> None:
    assert findings(tmp_path, "app.py", "import gradio\n" + "(" * 200_000 + "\n") == []
    assert findings(tmp_path, "app.py", "import gradio\nx = " + "-" * 300_000 + "1\n") == []
