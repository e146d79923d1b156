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
    assert list(objs) == ["configmap", "service", "networkpolicy", "pod", "binding"]
    for obj in objs.values():
        validate(obj)
        assert m.isolation_problems(obj, [objs["networkpolicy"]]) == [], obj["kind"]
    validate(m.checkpoint_pvc("pai-checkpoints", "pai", "1Ti", "nfs"))


def test_cpu_only_task_and_no_checkpoints_are_valid() -> None:
    spec = make_spec("ps_server", 0, gpu=0)
    backend = KubernetesBackend(namespace="pai", checkpoint_claim=None)
    objs = backend.build_manifests(launch(spec, ()))
    for obj in objs.values():
        validate(obj)
        assert m.isolation_problems(obj, [objs["networkpolicy"]]) == [], obj["kind"]
    pod = objs["pod"]
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "none"
    assert m.GPU_RESOURCE not in pod["spec"]["containers"][0]["resources"].get("limits", {})
    assert json.loads(objs["configmap"]["data"]["spec.json"])["checkpoint_dir"] is None


def test_pod_shape(spec: dict[str, Any]) -> None:
    pod = m.task_pod(spec["task_id"], "gpu-node-0", (4, 5), spec, namespace="pai", image="img")
    ps = pod["spec"]
    assert ps["schedulerName"] == "pai" and "nodeName" not in ps
    assert ps["hostNetwork"] is False and ps["dnsPolicy"] == "ClusterFirst"
    assert ps["restartPolicy"] == "Never"
    assert ps["hostname"] == "worker-0" and ps["subdomain"] == m.service_name("alice~mnist_v2")
    c = ps["containers"][0]
    # the task's own hashed ports, as host ports (on the pod network: the job's NetworkPolicy applies)
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


def test_pods_run_as_their_users_never_root(spec: dict[str, Any]) -> None:
    """Issue 16: a task pod runs as its user's uid, non-root, without privilege escalation or
    capabilities, without a service-account token, and only its job's and the hub's pods reach it."""
    backend = KubernetesBackend(namespace="pai", user_uids={"alice": 40001}, service_account="pai-task")
    objs = backend.build_manifests(launch(spec))
    pod, policy = objs["pod"], objs["networkpolicy"]
    ps, c = pod["spec"], pod["spec"]["containers"][0]
    assert ps["securityContext"]["runAsUser"] == 40001 and ps["securityContext"]["runAsNonRoot"] is True
    assert ps["securityContext"]["fsGroup"] == 40001  # the spec volume (0440) is readable by the task's group
    assert c["securityContext"] == {"runAsUser": 40001, "runAsGroup": 40001, "runAsNonRoot": True,
                                    "allowPrivilegeEscalation": False, "privileged": False,
                                    "capabilities": {"drop": ["ALL"]}}
    assert ps["automountServiceAccountToken"] is False and ps["enableServiceLinks"] is False
    # the job's policy: ingress only from the job's pods and the hub's
    assert policy["spec"]["podSelector"]["matchLabels"] == {m.LABEL_JOB: m.job_key("alice~mnist_v2")}
    sources = [f["podSelector"]["matchLabels"] for f in policy["spec"]["ingress"][0]["from"]]
    assert sources == [{m.LABEL_JOB: m.job_key("alice~mnist_v2")}, m.DEFAULT_HUB_SELECTOR]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    # another user's pods: another uid, another policy that does not admit alice's
    bob = make_spec(framework="bob~other")
    bob["username"] = "bob"
    other = backend.build_manifests(launch(bob))
    bob_uid = other["pod"]["spec"]["securityContext"]["runAsUser"]
    assert bob_uid not in (0, 40001) and bob_uid == m.user_uid("bob")
    assert m.isolation_problems(other["pod"], [policy]) == ["no NetworkPolicy of the job selects this pod"]


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("spec.securityContext", {}, "runAsUser: must be a uid other than root"),
    ("spec.containers.0.securityContext.runAsUser", 0, "runAsUser: must be a uid other than root"),
    ("spec.automountServiceAccountToken", None, "automountServiceAccountToken: must be false"),
    ("spec.hostNetwork", True, "spec.hostNetwork: must be false"),
    ("spec.containers.0.securityContext.allowPrivilegeEscalation", True, "allowPrivilegeEscalation: must be false"),
    ("spec.containers.0.securityContext.capabilities", {"add": ["NET_ADMIN"], "drop": ["ALL"]},
     "capabilities: must drop ALL and add none"),
    ("spec.containers.0.securityContext.privileged", True, "privileged: must be false"),
])
def test_the_validator_names_what_a_pod_lacks(spec: dict[str, Any], field: str, value: Any, problem: str) -> None:
    """The isolation check is not vacuous: take one field away from a good pod and it says which."""
    objs = KubernetesBackend(namespace="pai").build_manifests(launch(spec))
    pod = json.loads(json.dumps(objs["pod"]))
    *path, last = field.split(".")
    target: Any = pod
    for p in path:
        target = target[int(p)] if p.isdigit() else target[p]
    if value is None:
        del target[last]
    else:
        target[last] = value
    if field == "spec.securityContext":  # and the container's own uid too
        del pod["spec"]["containers"][0]["securityContext"]["runAsUser"]
    problems = m.isolation_problems(pod, [objs["networkpolicy"]])
    assert any(problem in p for p in problems), problems


def test_todays_manifests_would_fail(spec: dict[str, Any]) -> None:
    """A pod as this backend built them before issue 16 (root, host network, token mounted, no policy)."""
    old = {"kind": "Pod", "metadata": {"namespace": "pai", "labels": {}},
           "spec": {"hostNetwork": True, "containers": [{"name": "task", "image": "img"}]}}
    problems = m.isolation_problems(old, [])
    assert len(problems) >= 6, problems


def test_host_network_is_an_explicit_opt_out(spec: dict[str, Any]) -> None:
    backend = KubernetesBackend(namespace="pai", host_network=True)
    pod = backend.build_manifests(launch(spec))["pod"]
    assert pod["spec"]["hostNetwork"] is True and pod["spec"]["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert [p for p in m.isolation_problems(pod) if "hostNetwork" in p]
    assert KubernetesBackend.from_env({"PAI_K8S_HOST_NETWORK": "true"}).host_network is True


def test_uids_are_stable_distinct_and_configurable() -> None:
    names = [f"user{i}" for i in range(2000)] + ["alice", "Alice", "a" * 300]
    uids = {m.user_uid(n) for n in names}
    assert len(uids) == len(names) and min(uids) >= m.UID_RANGE[0] and max(uids) <= m.UID_RANGE[1]
    assert m.user_uid("alice") == m.user_uid("alice")
    assert m.user_uid("alice", {"alice": 5000}) == 5000
    with pytest.raises(ValueError):
        m.user_uid("root-ish", {"root-ish": 0})
    b = KubernetesBackend.from_env({"PAI_K8S_USER_UIDS": "alice=40001, bob=40002",
                                    "PAI_K8S_HUB_SELECTOR": "app=hub,tier=web"})
    assert b.uid_of("alice") == 40001 and b.uid_of("bob") == 40002 and b.uid_of("carol") == m.user_uid("carol")
    assert b.hub_selector == {"app": "hub", "tier": "web"}


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
              ("persistentvolumeclaims", "create"), ("networkpolicies", "create")}
    assert needed <= granted
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert cluster_role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == next(
        d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    from pai_hub.backends.kubernetes.backend import _pairs

    hub_labels = deploy["spec"]["template"]["metadata"]["labels"]
    selector = _pairs(env["PAI_K8S_HUB_SELECTOR"])
    assert selector and all(hub_labels.get(k) == v for k, v in selector.items())  # the policies admit the hub
    assert env["PAI_K8S_HOST_NETWORK"] == "false"
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    cluster = yaml.safe_load(config["data"]["cluster.yaml"])
    assert cluster["virtualClusters"]["default"]["virtualCells"][0]["cellNumber"] == 2
