"""Pure manifest builders for the Kubernetes backend: dicts in, dicts out, no API calls.

Everything the backend creates is built here, so that it can be validated offline against the
Kubernetes OpenAPI schemas (``kubernetes-validate``, see tests/backends/kubernetes).

One task attempt becomes:

* a **ConfigMap** ``<pod>-spec`` holding ``spec.json`` (the runtime's TaskSpec, paths rewritten to the
  pod's file system), owned by the pod once it exists (garbage-collected with it);
* a **Pod** ``<pod>`` with ``schedulerName: pai`` (no kube-scheduler touches it), bound to the node the
  PAI scheduler chose with a **Binding**; on the pod network, with the task's hashed ports as
  ``containerPort``/``hostPort`` (so ``PAI_HOST_IP_*`` and the ports mean what they mean on the other
  backends); the runtime (``python -m pai_runtime``) as the entrypoint; its exit record
  (``exit.json``) copied to the container's termination message;
* a headless **Service** per job (``clusterIP: None``, selector = the job's label) for task discovery:
  ``<role>-<index>.<service>.<namespace>.svc`` resolves to each task's pod IP;
* a **NetworkPolicy** per job: its pods accept connections only from the job's own pods and from the
  hub's (issue 16: another user's task cannot reach a job's ports);
* one **PersistentVolumeClaim** (per deployment, not per task) mounted at ``/pai/checkpoints``.

Every task pod runs as its user's uid, never as root (:func:`security_context`): ``runAsUser``/
``runAsGroup``/``fsGroup`` from the user's uid, ``runAsNonRoot``, no privilege escalation, every
capability dropped, the default seccomp profile, no service-account token and no service links.
:func:`isolation_problems` says what a manifest lacks of all that; the backend refuses to create a
pod it does not pass, and the tests run it on every manifest the backend builds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

#: The scheduler name of our pods: kube-scheduler ignores them, the PAI scheduler binds them.
SCHEDULER_NAME = "pai"
MANAGED_BY = "pai-hub"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
LABEL_JOB = "pai.microsoft.com/job"
LABEL_ROLE = "pai.microsoft.com/task-role"
LABEL_USER = "pai.microsoft.com/user"
LABEL_VC = "pai.microsoft.com/virtual-cluster"
ANN_TASK_ID = "pai.microsoft.com/task-id"
ANN_FRAMEWORK = "pai.microsoft.com/framework-name"
ANN_NODE = "pai.microsoft.com/node"
ANN_GPUS = "pai.microsoft.com/gpus"
ANN_PORTS = "rest-server/port-scheduling-spec"  # OpenPAI's annotation, kept for tooling
#: HiveD's bind annotation: the physical leaf-cell (GPU) indices, read by NVIDIA_VISIBLE_DEVICES.
ANN_LEAF_CELL_ISOLATION = "hivedscheduler.microsoft.com/pod-leaf-cell-isolation"
ANN_UID = "pai.microsoft.com/uid"
#: The hub's pods (the Helm chart's labels): the only pods besides a job's own that may reach its ports.
DEFAULT_HUB_SELECTOR = {"app.kubernetes.io/name": "pai-hub", "app.kubernetes.io/component": "hub"}
#: uids given to users without a configured one (a hash of the name in this range; see user_uid).
UID_RANGE = (1_000_000, 2_000_000_000)
GPU_RESOURCE = "nvidia.com/gpu"
CONTAINER = "task"

#: Paths inside the task container.
SPEC_MOUNT = "/pai/spec"
TASK_DIR = "/pai/task"
CHECKPOINT_MOUNT = "/pai/checkpoints"
TERMINATION_LOG = "/dev/termination-log"

#: GPU isolation modes (docs/kubernetes.md): ``env`` as HiveD (NVIDIA_VISIBLE_DEVICES = the chosen
#: physical indices, no device-plugin resource), ``limits`` (``nvidia.com/gpu: n``; the device plugin
#: picks the devices), ``both`` (the limit for accounting, plus our env, which a device plugin overrides).
GPU_ISOLATION_MODES = ("env", "limits", "both")

#: The container's command: copy the spec to a writable task directory, run the runtime, stream its
#: interleaved output (``all``) to the container log, forward SIGTERM, and leave ``exit.json`` as the
#: termination message (``python -m pai_runtime`` reports codes above 255 as 255; the record has the real one).
ENTRYPOINT_SCRIPT = r"""set -u
mkdir -p "$PAI_TASK_DIR/logs"
cp "$PAI_SPEC_FILE" "$PAI_TASK_DIR/spec.json"
: > "$PAI_TASK_DIR/logs/all"
python -m pai_runtime "$PAI_TASK_DIR" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT HUP
tail -n +1 -F --pid="$pid" "$PAI_TASK_DIR/logs/all" 2>/dev/null &
tailpid=$!
rc=0
while :; do
  wait "$pid"; rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
wait "$tailpid" 2>/dev/null
cat "$PAI_TASK_DIR/exit.json" > "$PAI_TERMINATION_LOG" 2>/dev/null || true
exit "$rc"
"""

_DNS_LABEL_BAD = re.compile(r"[^a-z0-9-]+")


def _digest(text: str, n: int = 10) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def dns_label(text: str, max_len: int = 63) -> str:
    """``text`` as a DNS-1123 label (lowercase alphanumerics and '-', starting and ending with an
    alphanumeric), at most ``max_len`` characters; a hash suffix keeps distinct inputs distinct."""
    clean = _DNS_LABEL_BAD.sub("-", text.lower()).strip("-") or "x"
    if clean == text and len(clean) <= max_len:
        return clean
    suffix = _digest(text)
    head = clean[: max_len - len(suffix) - 1].strip("-") or "x"
    return f"{head}-{suffix}"


def user_uid(username: str, uids: dict[str, int] | None = None,
             uid_range: tuple[int, int] = UID_RANGE) -> int:
    """The uid (and gid) a PAI user's pods run as: the configured one, else a stable hash of the name
    into ``uid_range`` (two billion values: two users of a cluster share one with odds of about
    n²/4·10⁹; configure ``uids`` where that matters). Never 0."""
    if uids and username in uids:
        uid = int(uids[username])
    else:
        lo, hi = uid_range
        uid = lo + int(hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest(), 16) % (hi - lo + 1)
    if uid <= 0:
        raise ValueError(f"uid {uid} for PAI user {username!r}: pods never run as root")
    return uid


def security_context(uid: int, gid: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod securityContext, container securityContext) of a task running as ``uid``/``gid``."""
    pod = {"runAsUser": uid, "runAsGroup": gid, "runAsNonRoot": True, "fsGroup": gid,
           "seccompProfile": {"type": "RuntimeDefault"}}
    container = {"runAsUser": uid, "runAsGroup": gid, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
                 "privileged": False, "capabilities": {"drop": ["ALL"]}}
    return pod, container


def pod_name(task_id: str) -> str:
    """The pod of a task attempt: ``pai-<sanitised task id>-<hash>`` (a valid hostname label too)."""
    return dns_label(f"pai-{task_id}", 58)  # room for "-spec" in the ConfigMap name


def job_key(framework_name: str) -> str:
    """The job's label value (63 chars max, label-safe): an md5 of the framework name, as OpenPAI."""
    return hashlib.md5(framework_name.encode()).hexdigest()


def service_name(framework_name: str) -> str:
    """The headless Service of a job: a DNS-1035 label (starts with a letter)."""
    return f"pai-job-{job_key(framework_name)[:24]}"


def spec_configmap_name(task_id: str) -> str:
    return f"{pod_name(task_id)}-spec"


def task_hostname(role: str, index: int) -> str:
    """The pod's hostname inside the job's Service domain: ``<role>-<index>``."""
    return dns_label(f"{role}-{index}")


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:63].strip("_.-")
    return value or "none"


def common_labels(spec: dict[str, Any]) -> dict[str, str]:
    return {
        LABEL_MANAGED: MANAGED_BY,
        LABEL_JOB: job_key(str(spec.get("framework_name", ""))),
        LABEL_USER: _label_value(str(spec.get("username", ""))),
        LABEL_VC: _label_value(str(spec.get("virtual_cluster", ""))),
    }


def own_ports(spec: dict[str, Any]) -> dict[str, list[int]]:
    """The task's own hashed ports, from its entry in ``peers``."""
    for peer in spec.get("peers") or ():
        if peer.get("role") == spec.get("task_role") and int(peer.get("index", -1)) == int(spec.get("task_index", -2)):
            return {k: [int(p) for p in v] for k, v in (peer.get("ports") or {}).items()}
    return {}


def pod_spec_json(spec: dict[str, Any], gpus: tuple[int, ...] | list[int], *, gpu_isolation: str = "env",
                  checkpoints: bool = True) -> dict[str, Any]:
    """The TaskSpec as the runtime in the pod reads it: paths inside the container, and the GPUs
    renumbered 0..n-1 (inside the container only the task's GPUs exist, whichever mode isolates them)."""
    out = copy.deepcopy(dict(spec))
    out["gpus"] = list(range(len(gpus)))
    out["work_dir"] = f"{TASK_DIR}/work"
    out["log_dir"] = f"{TASK_DIR}/logs"
    if checkpoints and out.get("checkpoint_dir"):
        parts = [p for p in str(out["checkpoint_dir"]).split("/") if p][-2:]  # <user>/<job>
        out["checkpoint_dir"] = "/".join([CHECKPOINT_MOUNT, *parts])
    elif not checkpoints:
        out["checkpoint_dir"] = None
    return out


def spec_configmap(task_id: str, namespace: str, spec_json: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap carrying ``spec.json`` for one task attempt."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": spec_configmap_name(task_id),
            "namespace": namespace,
            "labels": common_labels(spec_json),
            "annotations": {ANN_TASK_ID: task_id},
        },
        "data": {"spec.json": json.dumps(spec_json, sort_keys=True)},
    }


def task_pod(task_id: str, node: str, gpus: tuple[int, ...] | list[int], spec: dict[str, Any], *,
             namespace: str, image: str, gpu_isolation: str = "env",
             checkpoint_claim: str | None = "pai-checkpoints", service_account: str | None = None,
             image_pull_policy: str = "IfNotPresent", node_selector: dict[str, str] | None = None,
             priority_class: str | None = None, uid: int | None = None, gid: int | None = None,
             host_network: bool = False) -> dict[str, Any]:
    """The Pod of one task attempt (not yet bound: ``schedulerName: pai``, no ``nodeName``), running
    as ``uid``/``gid`` (default: :func:`user_uid` of its user). ``host_network``: OpenPAI's old way,
    on the node's network, where no NetworkPolicy applies (:func:`isolation_problems` reports it)."""
    uid = user_uid(str(spec.get("username", ""))) if uid is None else uid
    gid = uid if gid is None else gid
    if gpu_isolation not in GPU_ISOLATION_MODES:
        raise ValueError(f"gpu_isolation must be one of {GPU_ISOLATION_MODES}, not {gpu_isolation!r}")
    name = pod_name(task_id)
    role = str(spec.get("task_role", ""))
    index = int(spec.get("task_index", 0))
    role_info = (spec.get("task_roles") or {}).get(role) or {}
    cpu = int(role_info.get("cpu") or 0)
    memory_mb = int(role_info.get("memory_mb") or 0)
    shm_mb = int(role_info.get("shm_mb") or 0)
    physical = ",".join(str(g) for g in gpus)
    ports = own_ports(spec)

    labels = {**common_labels(spec), LABEL_ROLE: _label_value(role)}
    annotations = {
        ANN_TASK_ID: task_id,
        ANN_FRAMEWORK: str(spec.get("framework_name", "")),
        ANN_NODE: node,
        ANN_GPUS: physical,
        ANN_LEAF_CELL_ISOLATION: physical,
        ANN_UID: str(uid),
        ANN_PORTS: json.dumps({"schedulePortStart": 15000, "schedulePortEnd": 40000,
                               "ports": {k: {"count": len(v)} for k, v in ports.items()}}, sort_keys=True),
    }

    env: list[dict[str, Any]] = [
        {"name": "PAI_TASK_DIR", "value": TASK_DIR},
        {"name": "PAI_SPEC_FILE", "value": f"{SPEC_MOUNT}/spec.json"},
        {"name": "PAI_TERMINATION_LOG", "value": TERMINATION_LOG},
        {"name": "PAI_K8S_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "PAI_K8S_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    resources: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    if cpu:
        resources["requests"]["cpu"] = str(cpu)
    if memory_mb:
        resources["requests"]["memory"] = f"{memory_mb}Mi"
        resources["limits"]["memory"] = f"{memory_mb}Mi"
    if gpus and gpu_isolation in ("limits", "both"):
        resources["limits"][GPU_RESOURCE] = str(len(gpus))
    if gpu_isolation in ("env", "both"):
        if gpus:  # HiveD: the physical indices from the bind annotation, through the downward API
            env.append({"name": "NVIDIA_VISIBLE_DEVICES", "valueFrom": {"fieldRef": {
                "fieldPath": f"metadata.annotations['{ANN_LEAF_CELL_ISOLATION}']"}}})
        else:
            env.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"})
    elif not gpus:
        env.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"})
    resources = {k: v for k, v in resources.items() if v}

    seen: set[int] = set()
    container_ports = []
    for label in sorted(ports):
        for port in ports[label]:
            if port in seen:
                continue  # two labels hashed onto one port: declare it once
            seen.add(port)
            container_ports.append({"containerPort": port, "hostPort": port, "protocol": "TCP"})

    volumes: list[dict[str, Any]] = [
        # 0440 with fsGroup = the task's gid: readable by the task's uid only (and root).
        {"name": "spec", "configMap": {"name": spec_configmap_name(task_id), "defaultMode": 0o440}},
        {"name": "task", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True},
        {"name": "task", "mountPath": TASK_DIR},
    ]
    if shm_mb:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_mb}Mi"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if checkpoint_claim:
        volumes.append({"name": "checkpoints", "persistentVolumeClaim": {"claimName": checkpoint_claim}})
        mounts.append({"name": "checkpoints", "mountPath": CHECKPOINT_MOUNT})

    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": image_pull_policy,
        "command": ["/bin/sh", "-c", ENTRYPOINT_SCRIPT],
        "env": env,
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_security, container["securityContext"] = security_context(uid, gid)
    if resources:
        container["resources"] = resources
    if container_ports:
        container["ports"] = container_ports

    pod_spec: dict[str, Any] = {
        "schedulerName": SCHEDULER_NAME,
        "restartPolicy": "Never",
        "hostNetwork": host_network,
        "dnsPolicy": "ClusterFirstWithHostNet" if host_network else "ClusterFirst",
        "hostname": task_hostname(role, index),
        "subdomain": service_name(str(spec.get("framework_name", ""))),
        "terminationGracePeriodSeconds": 600,
        "containers": [container],
        "volumes": volumes,
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        "securityContext": pod_security,
        # A task gets no credentials for the cluster's API and no variables naming other services.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    if node_selector:
        pod_spec["nodeSelector"] = dict(node_selector)
    if priority_class:
        pod_spec["priorityClassName"] = priority_class
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": pod_spec,
    }


def binding(pod: str, namespace: str, node: str) -> dict[str, Any]:
    """The Binding that places pod ``pod`` on ``node`` (POST pods/<pod>/binding)."""
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod, "namespace": namespace},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def job_service(spec: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The headless Service of a job: DNS records for every task (ready or not)."""
    framework = str(spec.get("framework_name", ""))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(framework),
            "namespace": namespace,
            "labels": common_labels(spec),
            "annotations": {ANN_FRAMEWORK: framework},
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {LABEL_JOB: job_key(framework)},
        },
    }


def job_network_policy(spec: dict[str, Any], namespace: str,
                       hub_selector: dict[str, str] | None = None) -> dict[str, Any]:
    """The NetworkPolicy of a job: its pods accept connections (any port) only from the job's own pods
    and from the hub's pods (the hub proxies notebooks, TensorBoard and NNI). Egress is not limited."""
    framework = str(spec.get("framework_name", ""))
    job = {LABEL_JOB: job_key(framework)}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": service_name(framework),
            "namespace": namespace,
            "labels": common_labels(spec),
            "annotations": {ANN_FRAMEWORK: framework},
        },
        "spec": {
            "podSelector": {"matchLabels": dict(job)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": dict(job)}},
                                  {"podSelector": {"matchLabels": dict(hub_selector or DEFAULT_HUB_SELECTOR)}}]}],
        },
    }


def isolation_problems(obj: dict[str, Any], policies: list[dict[str, Any]] | None = None) -> list[str]:
    """What a task pod lacks of issue 16's isolation (empty: nothing), each naming the field. A pod
    must run as a non-root uid with no privilege escalation and no capabilities, without a
    service-account token, off the host network, and be selected by one of ``policies`` (the job's
    NetworkPolicy) when they are given. Other kinds pass."""
    if obj.get("kind") != "Pod":
        return []
    problems = []
    ps = obj.get("spec") or {}
    psc = ps.get("securityContext") or {}
    if ps.get("automountServiceAccountToken") is not False:
        problems.append("spec.automountServiceAccountToken: must be false")
    if ps.get("hostNetwork"):
        problems.append("spec.hostNetwork: must be false (no NetworkPolicy applies on the host network)")
    for f in ("hostPID", "hostIPC"):
        if ps.get(f):
            problems.append(f"spec.{f}: must be false")
    for v in ps.get("volumes") or ():
        if "hostPath" in v:
            problems.append(f"spec.volumes[{v.get('name')}]: no hostPath")
    for i, c in enumerate([*(ps.get("initContainers") or ()), *(ps.get("containers") or ())]):
        sc = c.get("securityContext") or {}
        where = f"spec.containers[{c.get('name', i)}].securityContext"
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        if not isinstance(uid, int) or uid <= 0:
            problems.append(f"{where}.runAsUser: must be a uid other than root, not {uid!r}")
        if sc.get("runAsGroup", psc.get("runAsGroup")) in (None, 0):
            problems.append(f"{where}.runAsGroup: must be a gid other than root")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            problems.append(f"{where}.runAsNonRoot: must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}.allowPrivilegeEscalation: must be false")
        if sc.get("privileged"):
            problems.append(f"{where}.privileged: must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or ()) or caps.get("add"):
            problems.append(f"{where}.capabilities: must drop ALL and add none")
    if policies is not None and not any(_selects(p, obj) for p in policies):
        problems.append("no NetworkPolicy of the job selects this pod")
    return problems


def _selects(policy: dict[str, Any], pod: dict[str, Any]) -> bool:
    """``policy`` is an ingress NetworkPolicy in the pod's namespace whose podSelector matches it."""
    spec = policy.get("spec") or {}
    if policy.get("kind") != "NetworkPolicy" or "Ingress" not in (spec.get("policyTypes") or ()):
        return False
    if (policy.get("metadata") or {}).get("namespace") != (pod.get("metadata") or {}).get("namespace"):
        return False
    wanted = (spec.get("podSelector") or {}).get("matchLabels") or {}
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def checkpoint_pvc(name: str, namespace: str, size: str = "100Gi", storage_class: str | None = None,
                   access_modes: tuple[str, ...] = ("ReadWriteMany",)) -> dict[str, Any]:
    """The claim for ``/pai/checkpoints`` (shared by every task: ReadWriteMany)."""
    spec: dict[str, Any] = {"accessModes": list(access_modes), "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL_MANAGED: MANAGED_BY}},
        "spec": spec,
    }


def owner_reference(pod: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference to a created pod (its dependents are deleted with it)."""
    return {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}


# -- reading the cluster ---------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}


def parse_quantity(text: str | int | float | None) -> float:
    """A Kubernetes quantity (``15500m``, ``131Gi``, ``8``) as a number."""
    if text is None:
        return 0.0
    if isinstance(text, (int, float)):
        return float(text)
    m = _QUANTITY.match(str(text).strip())
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f"not a quantity: {text!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def node_is_usable(node: dict[str, Any]) -> bool:
    """Ready and schedulable."""
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def node_ip(node: dict[str, Any]) -> str:
    addresses = (node.get("status") or {}).get("addresses") or ()
    for kind in ("InternalIP", "ExternalIP", "Hostname"):
        for a in addresses:
            if a.get("type") == kind:
                return str(a.get("address"))
    return ""


# -- reading task state -----------------------------------------------------------------------------


def container_terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    """The task container's ``state.terminated`` (None while it has not ended)."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        if cs.get("name") == CONTAINER:
            term = (cs.get("state") or {}).get("terminated")
            if term:
                return term
            return None
    return None


def exit_record(pod: dict[str, Any], lost_code: int) -> dict[str, Any] | None:
    """The exit record of an ended pod (None while it runs).

    In order: the runtime's ``exit.json`` from the termination message; else the container's exit
    code with the message (a log tail under FallbackToLogsOnError) and reason; else, for a pod that
    failed without its container ending (evicted, rejected by the kubelet), ``lost_code``.
    """
    status = pod.get("status") or {}
    phase = status.get("phase")
    term = container_terminated(pod)
    if term is None and phase not in ("Succeeded", "Failed"):
        return None
    if term is not None:
        message = term.get("message") or ""
        try:
            record = json.loads(message)
        except ValueError:
            record = None
        if isinstance(record, dict) and "exitCode" in record:
            return record
        code = int(term.get("exitCode", lost_code))
        record = {"exitCode": code, "reason": term.get("reason") or "", "source": "containerStatus"}
        if term.get("signal"):
            record["signal"] = int(term["signal"])
        if message:
            record["messageTail"] = message[-2048:]
        started = _timestamp(term.get("startedAt"))
        finished = _timestamp(term.get("finishedAt"))
        if started is not None:
            record["startedAt"] = started
        if finished is not None:
            record["finishedAt"] = finished
        return record
    return {"exitCode": lost_code, "reason": status.get("reason") or "PodFailed",
            "message": status.get("message") or "", "source": "podStatus"}


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def started_at(pod: dict[str, Any]) -> float | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        if cs.get("name") == CONTAINER:
            running = (cs.get("state") or {}).get("running")
            if running:
                return _timestamp(running.get("startedAt"))
    return _timestamp((pod.get("status") or {}).get("startTime"))
