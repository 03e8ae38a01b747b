"""Kubernetes manifests: ML tools reachable from outside the cluster, KubeRay and Kubeflow
settings.

What a single manifest cannot say, a folder of them can: a Deployment runs ``mlflow server``
without an auth app, and a LoadBalancer Service in another file selects its pods. The checks
here join workloads to the Services and Ingresses that expose them (same namespace, the
Service selector a subset of the pod labels, an Ingress backend naming the Service).
Command lines are read with the ML-tool exposure scanner's parser, so that a Jupyter token or
an MLflow auth app is judged as ``mlward scan`` judges it in a Dockerfile.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from mlward._internal.scanners import devtools
from mlward.findings import Finding, Location, Severity
from mlward.rules import (
    IAC_K8S_JUPYTER_EXPOSED,
    IAC_K8S_KUBEFLOW_NO_MESH,
    IAC_K8S_ML_PRIVILEGED,
    IAC_K8S_MLFLOW_EXPOSED,
    IAC_K8S_RAY_EXPOSED,
    JUPYTER_NO_AUTH,
    MLFLOW_EXPOSED,
)

MAX_PODS = 10_000
EXPOSING_TYPES = ("LoadBalancer", "NodePort")
# Kinds whose pod templates sit at these paths (KubeRay, Kubeflow training, KServe).
_REPLICA_SPECS = ("pytorchReplicaSpecs", "tfReplicaSpecs", "mpiReplicaSpecs",
                  "xgbReplicaSpecs", "paddleReplicaSpecs", "jaxReplicaSpecs")
ML_KINDS = frozenset({"Notebook", "RayCluster", "RayService", "RayJob", "PyTorchJob",
                      "TFJob", "MPIJob", "XGBoostJob", "PaddleJob", "JAXJob", "TrainJob",
                      "InferenceService", "ServingRuntime", "Experiment"})
_ML_IMAGE_WORDS = ("jupyter", "notebook", "pytorch", "tensorflow", "rayproject", "mlflow",
                   "kserve", "triton", "vllm", "huggingface", "nvidia/cuda", "kubeflow",
                   "tensorboard", "torchserve", "seldon")


class Pod(NamedTuple):
    """A pod template found in a manifest: what runs, with which labels, where declared."""

    owner: str
    """``Deployment/mlflow`` (kind/name of the manifest)."""
    kind: str
    namespace: str
    labels: Mapping[str, str]
    spec: Mapping[str, Any]
    annotations: Mapping[str, str]
    uri: str
    line: int | None


class Exposure(NamedTuple):
    how: str
    """``LoadBalancer Service mlflow`` / ``Ingress web``."""
    uri: str
    line: int | None


def _meta(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = doc.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _name(doc: Mapping[str, Any]) -> str:
    return f"{doc.get('kind')}/{_meta(doc).get('name', '?')}"


def _line(value: object, key: str | None = None) -> int | None:
    line_of = getattr(value, "line_of", None)
    if key is not None and line_of is not None:
        return int(line_of(key))
    line = getattr(value, "line", None)
    return int(line) if line else None


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _templates(doc: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The pod templates (``{metadata, spec}``) of a workload of any kind."""
    kind = doc.get("kind")
    spec = _dict(doc.get("spec"))
    if kind == "Pod":
        yield {"metadata": _meta(doc), "spec": spec}
        return
    if kind == "CronJob":
        spec = _dict(_dict(spec.get("jobTemplate")).get("spec"))
    if "template" in spec:
        yield _dict(spec.get("template"))
    for key in _REPLICA_SPECS:
        for replica in _dict(spec.get(key)).values():
            yield _dict(_dict(replica).get("template"))
    for cluster in (spec, _dict(spec.get("rayClusterConfig")), _dict(spec.get("rayClusterSpec"))):
        if "headGroupSpec" in cluster:
            yield _dict(_dict(cluster.get("headGroupSpec")).get("template"))
            for group in cluster.get("workerGroupSpecs") or []:
                yield _dict(_dict(group).get("template"))
    for part in ("predictor", "transformer", "explainer"):  # KServe
        component = _dict(spec.get(part))
        if component:
            yield {"metadata": {}, "spec": component}


def pods(docs: list[tuple[str, Mapping[str, Any]]]) -> list[Pod]:
    out = []
    for uri, doc in docs:
        meta = _meta(doc)
        for template in _templates(doc):
            tmeta = _dict(template.get("metadata"))
            labels = {**_dict(tmeta.get("labels"))}
            annotations = {**_dict(meta.get("annotations")), **_dict(tmeta.get("annotations"))}
            out.append(Pod(_name(doc), str(doc.get("kind")),
                           str(meta.get("namespace") or "default"),
                           {str(k): str(v) for k, v in labels.items()},
                           _dict(template.get("spec")),
                           {str(k): str(v) for k, v in annotations.items()}, uri,
                           _line(template) or _line(doc)))
            if len(out) >= MAX_PODS:
                return out
    return out


def _has_auth(annotations: Mapping[str, Any]) -> bool:
    return any("auth" in str(k).lower() for k in annotations)


def exposures(pod: Pod, docs: list[tuple[str, Mapping[str, Any]]]) -> list[Exposure]:
    """The Services and Ingresses that make ``pod`` reachable from outside the cluster."""
    services = [(uri, d) for uri, d in docs if d.get("kind") == "Service"
                and str(_meta(d).get("namespace") or "default") == pod.namespace]
    selecting = []
    for uri, svc in services:
        selector = _dict(_dict(svc.get("spec")).get("selector"))
        if selector and all(pod.labels.get(str(k)) == str(v) for k, v in selector.items()):
            selecting.append((uri, svc))
    out = []
    for uri, svc in selecting:
        spec = _dict(svc.get("spec"))
        if spec.get("type") in EXPOSING_TYPES:
            out.append(Exposure(f"{spec.get('type')} Service {_meta(svc).get('name')}", uri,
                                _line(spec, "type")))
    names = {str(_meta(svc).get("name")) for _, svc in selecting}
    for uri, ing in docs:
        if ing.get("kind") != "Ingress" or _has_auth(_dict(_meta(ing).get("annotations"))):
            continue
        if str(_meta(ing).get("namespace") or "default") != pod.namespace:
            continue
        if names & set(_backends(ing)):
            out.append(Exposure(f"Ingress {_meta(ing).get('name')}", uri, _line(ing)))
    return out


def _backends(ingress: Mapping[str, Any]) -> Iterator[str]:
    """Service names an Ingress routes to (networking.k8s.io/v1 and v1beta1 shapes)."""
    spec = _dict(ingress.get("spec"))
    backends = [spec.get("defaultBackend"), spec.get("backend")]
    for rule in spec.get("rules") or []:
        for path in _dict(_dict(rule).get("http")).get("paths") or []:
            backends.append(_dict(path).get("backend"))
    for backend in backends:
        b = _dict(backend)
        name = _dict(b.get("service")).get("name") or b.get("serviceName")
        if name:
            yield str(name)


def _containers(pod: Pod) -> list[Mapping[str, Any]]:
    return [c for key in ("containers", "initContainers")
            for c in pod.spec.get(key) or [] if isinstance(c, Mapping)]


def _command(container: Mapping[str, Any]) -> str:
    return " ".join(devtools._command_text(container.get(k)) for k in ("command", "args"))


def _jupyter_without_token(container: Mapping[str, Any], loc: Location) -> bool:
    env = {str(_dict(e).get("name")): _dict(e).get("value") for e in container.get("env") or []}
    if "JUPYTER_TOKEN" in env and not env["JUPYTER_TOKEN"] and _is_jupyter(container):
        return True
    return any(f.rule_id == JUPYTER_NO_AUTH.id
               for f in devtools.check_command(_command(container), loc))


def _is_jupyter(container: Mapping[str, Any]) -> bool:
    text = f"{container.get('image', '')} {_command(container)}".lower()
    return "jupyter" in text or "notebook" in text


def _is_ml(pod: Pod) -> bool:
    if pod.kind in ML_KINDS:
        return True
    for c in _containers(pod):
        text = f"{c.get('image', '')} {_command(c)}".lower()
        if any(w in text for w in _ML_IMAGE_WORDS) or any(
                tool in text for tool in ("mlflow ", "ray start", "torchrun", "accelerate ")):
            return True
    return False


def findings(docs: list[tuple[str, Mapping[str, Any]]]) -> list[Finding]:
    """Findings for a folder's manifests, each at the file and line of what causes it."""
    out: list[Finding] = []
    for pod in pods(docs):
        exposed = None  # computed once per pod, only when a check needs it
        for container in _containers(pod):
            loc = Location(pod.uri, line=_line(container))
            command = _command(container)
            mlflow = any(f.rule_id == MLFLOW_EXPOSED.id
                         for f in devtools.check_command(command, loc))
            jupyter = _jupyter_without_token(container, loc)
            if not (mlflow or jupyter):
                continue
            exposed = exposed if exposed is not None else exposures(pod, docs)
            for e in exposed:
                rule, tool = ((IAC_K8S_MLFLOW_EXPOSED, "MLflow server without an auth app")
                              if mlflow else (IAC_K8S_JUPYTER_EXPOSED,
                                              "Jupyter with its token disabled"))
                out.append(rule.finding(loc, f"{pod.owner} runs {tool}, exposed by {e.how} "
                                        f"({e.uri}, line {e.line})", evidence=e.how,
                                        details={"workload": pod.owner, "exposure": e.how}))
        out += _privileged(pod)
        out += _no_mesh(pod)
    for uri, doc in docs:
        out += _kuberay(uri, doc)
    return out


def _privileged(pod: Pod) -> list[Finding]:
    if not _is_ml(pod):
        return []
    what = [f"{k}: true" for k in ("hostNetwork", "hostPID", "hostIPC") if pod.spec.get(k)]
    what += [f"hostPath volume {_dict(v).get('name')}" for v in pod.spec.get("volumes") or []
             if "hostPath" in _dict(v)]
    for c in _containers(pod):
        security = _dict(c.get("securityContext"))
        if security.get("privileged") is True:
            what.append(f"privileged container {c.get('name')}")
    if not what:
        return []
    return [IAC_K8S_ML_PRIVILEGED.finding(
        Location(pod.uri, line=pod.line), f"{pod.owner} runs with {', '.join(what)}",
        evidence=pod.owner, details={"workload": pod.owner, "host_access": what})]


def _no_mesh(pod: Pod) -> list[Finding]:
    kubeflow = pod.kind in ("Notebook", "PyTorchJob", "TFJob", "MPIJob", "InferenceService")
    if kubeflow and pod.annotations.get("sidecar.istio.io/inject", "").lower() == "false":
        return [IAC_K8S_KUBEFLOW_NO_MESH.finding(
            Location(pod.uri, line=pod.line),
            f"{pod.owner} sets sidecar.istio.io/inject: \"false\"", evidence=pod.owner)]
    return []


def _kuberay(uri: str, doc: Mapping[str, Any]) -> list[Finding]:
    spec = _dict(doc.get("spec"))
    if doc.get("kind") not in ("RayCluster", "RayService", "RayJob"):
        return []
    out = []
    for cluster in (spec, _dict(spec.get("rayClusterConfig")), _dict(spec.get("rayClusterSpec"))):
        head = _dict(cluster.get("headGroupSpec"))
        service_type = head.get("serviceType")
        if service_type in EXPOSING_TYPES:
            out.append(IAC_K8S_RAY_EXPOSED.finding(
                Location(uri, line=_line(head, "serviceType")),
                f"{_name(doc)} head service is a {service_type}: the Ray dashboard and jobs API "
                "are reachable from outside the cluster", evidence=f"serviceType {service_type}"))
        if head.get("enableIngress") is True:
            out.append(IAC_K8S_RAY_EXPOSED.finding(
                Location(uri, line=_line(head, "enableIngress")),
                f"{_name(doc)} creates an Ingress for the Ray dashboard",
                evidence="enableIngress: true", severity=Severity.HIGH))
    return out
