"""Every manifest the Kubernetes backend produces, and the Helm chart's rendered templates, validated
against the OpenAPI schemas of a pinned Kubernetes version with ``kubernetes-validate`` (strict:
unknown fields are errors). No API server is involved."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pai_hub.backends.base import TaskLaunch
from pai_hub.backends.kubernetes import KubernetesBackend, node_info
from pai_hub.backends.kubernetes import manifests as m
from pai_runtime.spec import TaskSpec
from tests.backends.kubernetes.conftest import make_spec
from tests.requirements import require_module

kubernetes_validate = require_module("kubernetes_validate")

#: The Kubernetes version the manifests are validated against.
K8S_VERSION = "1.31.0"
CHART = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "pai-hub"


def validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def launch(spec: dict[str, Any], gpus: tuple[int, ...] = (4, 5)) -> TaskLaunch:
    return TaskLaunch(spec["task_id"], "gpu-node-0", gpus, spec)


@pytest.mark.parametrize("isolation", m.GPU_ISOLATION_MODES)
def test_every_manifest_of_a_task_is_valid(spec: dict[str, Any], isolation: str) -> None:
    backend = KubernetesBackend(namespace="pai", image="pai-hub/runtime:0.1.0", gpu_isolation=isolation,
                                service_account="pai-task", priority_class="pai-job")
    objs = backend.build_manifests(launch(spec))
    assert list(objs) == ["configmap", "service", "pod", "binding"]
    for obj in objs.values():
        validate(obj)
    validate(m.checkpoint_pvc("pai-checkpoints", "pai", "1Ti", "nfs"))


def test_cpu_only_task_and_no_checkpoints_are_valid() -> None:
    spec = make_spec("ps_server", 0, gpu=0)
    backend = KubernetesBackend(namespace="pai", checkpoint_claim=None)
    objs = backend.build_manifests(launch(spec, ()))
    for obj in objs.values():
        validate(obj)
    pod = objs["pod"]
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "none"
    assert m.GPU_RESOURCE not in pod["spec"]["containers"][0]["resources"].get("limits", {})
    assert json.loads(objs["configmap"]["data"]["spec.json"])["checkpoint_dir"] is None


def test_pod_shape(spec: dict[str, Any]) -> None:
    pod = m.task_pod(spec["task_id"], "gpu-node-0", (4, 5), spec, namespace="pai", image="img")
    ps = pod["spec"]
    assert ps["schedulerName"] == "pai" and "nodeName" not in ps
    assert ps["hostNetwork"] is True and ps["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert ps["restartPolicy"] == "Never"
    assert ps["hostname"] == "worker-0" and ps["subdomain"] == m.service_name("alice~mnist_v2")
    c = ps["containers"][0]
    # the task's own hashed ports, as host ports
    assert sorted(p["hostPort"] for p in c["ports"]) == [15001, 15002, 15003]
    assert all(p["hostPort"] == p["containerPort"] for p in c["ports"])
    # HiveD isolation: physical indices from the bind annotation, no device-plugin resource
    assert pod["metadata"]["annotations"][m.ANN_LEAF_CELL_ISOLATION] == "4,5"
    env = {e["name"]: e for e in c["env"]}
    assert "leaf-cell-isolation" in env["NVIDIA_VISIBLE_DEVICES"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert m.GPU_RESOURCE not in c["resources"].get("limits", {})
    assert c["resources"]["requests"] == {"cpu": "4", "memory": "8192Mi"}
    assert c["terminationMessagePath"] == m.TERMINATION_LOG
    assert {v["name"] for v in ps["volumes"]} == {"spec", "task", "dshm", "checkpoints"}
    assert pod["metadata"]["annotations"][m.ANN_TASK_ID] == spec["task_id"]
    assert pod["metadata"]["labels"][m.LABEL_JOB] == m.job_key("alice~mnist_v2")

    limited = m.task_pod(spec["task_id"], "n", (4, 5), spec, namespace="pai", image="img", gpu_isolation="limits")
    c = limited["spec"]["containers"][0]
    assert c["resources"]["limits"][m.GPU_RESOURCE] == "2"
    assert "NVIDIA_VISIBLE_DEVICES" not in {e["name"] for e in c["env"]}


def test_runtime_spec_is_rewritten_for_the_pod(spec: dict[str, Any]) -> None:
    out = m.pod_spec_json(spec, (4, 5))
    TaskSpec.from_json_dict(out)  # still a valid TaskSpec
    assert out["gpus"] == [0, 1]  # inside the container only its GPUs exist, renumbered
    assert out["work_dir"] == "/pai/task/work" and out["log_dir"] == "/pai/task/logs"
    assert out["checkpoint_dir"] == "/pai/checkpoints/alice/mnist_v2"
    assert out["peers"] == spec["peers"] and out["secrets"] == spec["secrets"]
    assert spec["gpus"] == [4, 5]  # the input is not modified


def test_names_are_dns_safe_and_distinct() -> None:
    label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    ids = ["7.0.worker.0.0", "7.0.Worker.0.0", "7.0.ps_server.0.1", "x" * 300, "a~b.c", "12.3.r.0.0"]
    names = [m.pod_name(t) for t in ids]
    assert len(set(names)) == len(ids)
    for n in [*names, *(m.spec_configmap_name(t) for t in ids), m.service_name("u~j"), m.task_hostname("ps_server", 3)]:
        assert label.match(n) and len(n) <= 63, n
    assert m.service_name("u~j")[0].isalpha()


def test_exit_record_from_termination_message() -> None:
    record = {"exitCode": 300, "startedAt": 1.0, "finishedAt": 2.0}
    pod = {"status": {"phase": "Failed", "containerStatuses": [
        {"name": "task", "state": {"terminated": {"exitCode": 255, "message": json.dumps(record)}}}]}}
    assert m.exit_record(pod, -1101) == record  # the real code, not the shell's 255
    pod["status"]["containerStatuses"][0]["state"]["terminated"] = {
        "exitCode": 137, "reason": "OOMKilled", "message": "tail of the log",
        "startedAt": "2024-01-01T00:00:00Z", "finishedAt": "2024-01-01T00:01:00Z"}
    rec = m.exit_record(pod, -1101)
    assert rec["exitCode"] == 137 and rec["reason"] == "OOMKilled" and rec["finishedAt"] - rec["startedAt"] == 60
    evicted = {"status": {"phase": "Failed", "reason": "Evicted", "message": "disk pressure"}}
    assert m.exit_record(evicted, -1101)["exitCode"] == -1101
    running = {"status": {"phase": "Running", "containerStatuses": [{"name": "task", "state": {"running": {}}}]}}
    assert m.exit_record(running, -1101) is None


def test_node_info_from_allocatable() -> None:
    node = {"metadata": {"name": "gpu-node-0", "labels": {"nvidia.com/gpu.product": "Tesla-V100", "nvidia.com/gpu.memory": "32768"}},
            "spec": {},
            "status": {"allocatable": {"cpu": "15500m", "memory": "131914Mi", "nvidia.com/gpu": "4"},
                       "addresses": [{"type": "Hostname", "address": "gpu-node-0"}, {"type": "InternalIP", "address": "10.0.0.1"}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}
    info = node_info(node)
    assert (info.name, info.ip, info.cpu, info.memory_mb) == ("gpu-node-0", "10.0.0.1", 15, 131914)
    assert [g.index for g in info.gpus] == [0, 1, 2, 3] and info.gpus[0].model == "Tesla-V100"
    assert info.gpus[0].memory_mb == 32768 and not info.gpus[0].simulated
    assert m.node_is_usable(node)
    node["spec"]["unschedulable"] = True
    assert not m.node_is_usable(node)
    assert m.parse_quantity("2Gi") == 2 * 1024**3 and m.parse_quantity("500m") == 0.5


def test_from_env() -> None:
    b = KubernetesBackend.from_env({"PAI_K8S_NAMESPACE": "pai", "PAI_K8S_GPU_ISOLATION": "both",
                                    "PAI_K8S_CHECKPOINT_CLAIM": "", "PAI_K8S_NODE_SELECTOR": "",
                                    "PAI_K8S_ENSURE_CHECKPOINT_CLAIM": "true"})
    assert (b.namespace, b.gpu_isolation, b.checkpoint_claim, b.node_selector) == ("pai", "both", None, None)
    assert b.ensure_checkpoint_claim is True
    with pytest.raises(ValueError):
        KubernetesBackend(gpu_isolation="magic")


# -- the Helm chart --------------------------------------------------------------------------------


def render_chart(values: dict[str, Any] | None = None, namespace: str = "pai") -> list[dict[str, Any]]:
    """Render the chart with Go's text/template + sprig (``py-go-template``): Helm's engine minus its
    own extras (``include``, ``tpl``, ``lookup``; the chart uses none), with ``_helpers.tpl``
    prepended to each template as Helm makes its definitions visible to all. Not ``helm template``:
    helm is not installable here (see docs/kubernetes.md)."""
    go_template = require_module("go_template")
    import tempfile

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    merged = yaml.safe_load((CHART / "values.yaml").read_text())
    for key, value in (values or {}).items():  # dotted keys, as --set
        target = merged
        *path, last = key.split(".")
        for p in path:
            target = target[p]
        target[last] = value
    context = {"Values": merged, "Release": {"Name": "rel", "Namespace": namespace, "Service": "Helm"},
               "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]}}
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    docs = []
    for path in sorted((CHART / "templates").glob("*.yaml")):
        with tempfile.NamedTemporaryFile("w", suffix=".tpl", delete=False) as f:
            f.write(helpers + path.read_text())
        out = go_template.render(Path(f.name), context).decode()
        Path(f.name).unlink()
        assert not out.startswith(("parse template failed", "render template failed")), f"{path.name}: {out}"
        docs.extend(d for d in yaml.safe_load_all(out) if d)
    return docs


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "pai-hub"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["pai"]["schedulerName"] == m.SCHEDULER_NAME
    assert set(values["pai"]["cluster"]) == {"physicalCluster", "virtualClusters"}


@pytest.mark.parametrize("values", [
    {},
    {"postgresql.enabled": False, "postgresql.externalUrl": "postgresql+psycopg://u:p@db:5432/pai",
     "checkpoints.enabled": False, "pai.gpuIsolation": "limits", "hub.dataStorage.storageClass": "fast"},
])
def test_chart_renders_valid_manifests(values: dict[str, Any]) -> None:
    docs = render_chart(values)
    kinds = sorted(d["kind"] for d in docs)
    for doc in docs:
        validate(doc)
    assert "Deployment" in kinds and "Role" in kinds and "ClusterRole" in kinds
    assert ("StatefulSet" in kinds) == (not values)
    assert ("PersistentVolumeClaim" in kinds)  # the hub's data volume at least


def test_chart_rbac_covers_what_the_backend_calls() -> None:
    docs = render_chart()
    role = next(d for d in docs if d["kind"] == "Role")
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    needed = {("pods", "create"), ("pods", "list"), ("pods", "watch"), ("pods", "get"), ("pods", "delete"),
              ("pods/binding", "create"), ("pods/log", "get"), ("pods/exec", "create"), ("pods/exec", "get"),
              ("services", "create"), ("configmaps", "create"), ("configmaps", "patch"),
              ("persistentvolumeclaims", "create")}
    assert needed <= granted
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert cluster_role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == next(
        d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    cluster = yaml.safe_load(config["data"]["cluster.yaml"])
    assert cluster["virtualClusters"]["default"]["virtualCells"][0]["cellNumber"] == 2
