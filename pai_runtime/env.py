"""The PAI_* environment of a task, as OpenPAI sets it (notes §4.4).

Two groups, as in OpenPAI: the variables the REST server puts on every container (protocol task-role
keys, e.g. ``PAI_TASK_ROLE_TASK_COUNT_ps_server``) and the ones the runtime generates from the
framework (converted task-role names, lowercase alphanumerics only, e.g. ``PAI_HOST_IP_psserver_0``).
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping

from pai_runtime.ports import hashed_ports
from pai_runtime.spec import TaskPeer, TaskSpec

_NOT_ALNUM = re.compile(r"[^a-z0-9]")

#: Variables of the control plane's own environment that a task must not inherit.
CONTROL_PLANE_ENV_PREFIXES = ("PAI_", "FC_", "JUPYTERHUB_", "JPY_", "HIVED_", "PYTEST_")
CONTROL_PLANE_ENV_NAMES = frozenset({
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "PYTEST_CURRENT_TEST",
})
#: Settings of the runtime itself: kept for the launcher (which gets ``task_environ`` of the control
#: plane's environment) but not given to tasks (see ``supervisor.BASE_ENVIRON``).
RUNTIME_SETTINGS_ENV_NAMES = frozenset({"PAI_EXIT_SPEC", "PAI_EXIT_CALLBACK_GRACE"})
#: FrameworkController's namespace for every framework (OpenPAI runs them all in ``default``).
FC_NAMESPACE = "default"


def convert_name(task_role: str) -> str:
    """FrameworkController's task-role name: lowercase, ``[^a-z0-9]`` removed (``ps_server`` → ``psserver``)."""
    return _NOT_ALNUM.sub("", task_role.lower())


def task_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` minus what belongs to the control plane (its PAI_*/JupyterHub variables, GPU masks)."""
    return {
        k: v for k, v in environ.items()
        if k in RUNTIME_SETTINGS_ENV_NAMES
        or (k not in CONTROL_PLANE_ENV_NAMES and not k.startswith(CONTROL_PLANE_ENV_PREFIXES))
    }


def runtime_env(
    peers: Iterable[tuple[str, int, str | None, Mapping[str, list[int]]]],
    current_role: str,
    current_index: int,
    work_dir: str | None = None,
) -> dict[str, str]:
    """The runtime-generated variables (OpenPAI's ``framework_parser.py genenv``).

    ``peers`` are ``(fc_role_name, index, host_ip, {label: ports})`` for every task of the job, in
    task-role then index order; role names must already be converted.
    """
    env: dict[str, str] = {}
    host_lists: dict[str, list[str]] = {}
    instances: list[str] = []
    own_ip: str | None = None
    own_ports: Mapping[str, list[int]] = {}
    for role, index, ip, ports in peers:
        instances.append(f"{role}:{index}")
        for label, plist in ports.items():
            joined = ",".join(str(p) for p in plist)
            env[f"PAI_PORT_LIST_{role}_{index}_{label}"] = joined
            env[f"PAI_{role}_{index}_{label}_PORT"] = joined
        hosts = host_lists.setdefault(role, [])
        if ip:
            env[f"PAI_HOST_IP_{role}_{index}"] = ip
            http = ports.get("http")
            hosts.append(f"{ip}:{http[0]}" if http else ip)
        if role == current_role and index == current_index:
            own_ip, own_ports = ip, ports
    for role, hosts in host_lists.items():
        env[f"PAI_TASK_ROLE_{role}_HOST_LIST"] = ",".join(hosts)
    env["PAI_TASK_ROLE_INSTANCES"] = ",".join(instances)
    if own_ip:
        env["PAI_CURRENT_CONTAINER_IP"] = own_ip
        env["PAI_CONTAINER_HOST_IP"] = own_ip
    if own_ports.get("http"):
        env["PAI_CURRENT_CONTAINER_PORT"] = str(own_ports["http"][0])
        env["PAI_CONTAINER_HOST_PORT"] = str(own_ports["http"][0])
    if own_ports.get("ssh"):
        env["PAI_CONTAINER_SSH_PORT"] = str(own_ports["ssh"][0])
    port_list = []
    for label, plist in own_ports.items():
        joined = ",".join(str(p) for p in plist)
        env[f"PAI_CONTAINER_HOST_{label}_PORT_LIST"] = joined
        port_list.append(f"{label}:{joined};")
    env["PAI_CONTAINER_HOST_PORT_LIST"] = "".join(port_list)
    if work_dir is not None:
        env["PAI_WORK_DIR"] = work_dir
    return env


def _peer_ports(spec: TaskSpec, peer: TaskPeer) -> Mapping[str, list[int]]:
    """A peer's ports; the current task's are hashed from its uid when the spec left them out."""
    if peer.ports:
        return peer.ports
    role = spec.task_roles.get(peer.role)
    if role and role.ports and peer.role == spec.task_role and peer.index == spec.task_index:
        return {label: hashed_ports(spec.task_uid, label, n) for label, n in role.ports.items()}
    return {}


@functools.lru_cache(maxsize=4096)
def _framework_ids(framework: str, attempt: str) -> tuple[str, str]:
    """FrameworkController's framework name (md5) and the ConfigMap UID of a framework attempt.

    FC names the ConfigMap ``<framework>-attempt`` and the pod ``<framework>-<role>-<index>``; instance
    UIDs are ``<attempt id>_<object UID>``. The ConfigMap is re-created per framework attempt; its UID
    here is derived from the framework name and attempt (cached: every task of a job asks)."""
    return (hashlib.md5(framework.encode()).hexdigest(),
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"pai-fc-configmap:{framework}:{attempt}")))


def build_env(spec: TaskSpec) -> dict[str, str]:
    """Every PAI_* / FC_* variable of the task, plus its GPU mask (``CUDA_VISIBLE_DEVICES``)."""
    roles = spec.task_roles
    role_names = list(roles)
    framework = spec.framework_name
    job_name = f"{spec.username}~{spec.job_name}" if "~" not in spec.job_name else spec.job_name
    n_roles = str(len(roles))
    n_tasks = str(sum(r.instances for r in roles.values()))
    role_list = ",".join(role_names)
    env = {
        "PAI_FRAMEWORK_NAME": framework,
        "PAI_JOB_NAME": job_name,
        "PAI_USER_NAME": spec.username,
        "PAI_USERNAME": spec.username,
        "PAI_DEFAULT_FS_URI": "",
        "PAI_VIRTUAL_CLUSTER": spec.virtual_cluster,
        "PAI_TASK_ROLE_COUNT": n_roles,
        "PAI_TASK_ROLES_NUM": n_roles,
        "PAI_JOB_TASK_ROLE_COUNT": n_roles,
        "PAI_TASK_ROLE_LIST": role_list,
        "PAI_JOB_TASK_ROLE_LIST": role_list,
        "PAI_TASKS_NUM": n_tasks,
        "PAI_JOB_TASK_COUNT": n_tasks,
    }
    for name, r in roles.items():
        env[f"PAI_TASK_ROLE_TASK_COUNT_{name}"] = str(r.instances)
        env[f"PAI_RESOURCE_{name}"] = f"{r.gpu},{r.cpu},{r.memory_mb},{r.shm_mb}"
        env[f"PAI_MIN_FAILED_TASK_COUNT_{name}"] = str(r.min_failed)
        env[f"PAI_MIN_SUCCEEDED_TASK_COUNT_{name}"] = str(r.min_succeeded)
    index = str(spec.task_index)
    env["PAI_CURRENT_TASK_ROLE_NAME"] = spec.task_role
    env["PAI_CURRENT_TASK_ROLE_CURRENT_TASK_INDEX"] = index
    env["PAI_TASK_INDEX"] = index

    fc_role = convert_name(spec.task_role)
    attempt = str(spec.job_attempt_id)
    fc_name, configmap_uid = _framework_ids(framework, attempt)
    env["FC_FRAMEWORK_NAMESPACE"] = FC_NAMESPACE
    env["FC_FRAMEWORK_NAME"] = fc_name
    env["FC_TASKROLE_NAME"] = fc_role
    env["FC_TASK_INDEX"] = index
    env["FC_CONFIGMAP_NAME"] = f"{fc_name}-attempt"
    env["FC_POD_NAME"] = f"{fc_name}-{fc_role}-{index}"
    env["FC_FRAMEWORK_ATTEMPT_ID"] = attempt
    env["FC_FRAMEWORK_ATTEMPT_INSTANCE_UID"] = f"{attempt}_{configmap_uid}"
    env["FC_CONFIGMAP_UID"] = configmap_uid
    env["FC_TASK_ATTEMPT_ID"] = str(spec.task_attempt_id)
    env["FC_POD_UID"] = spec.task_uid
    env["FC_TASK_ATTEMPT_INSTANCE_UID"] = f"{spec.task_attempt_id}_{spec.task_uid}"

    order = {name: i for i, name in enumerate(role_names)}
    peers = sorted(spec.peers, key=lambda p: (order.get(p.role, len(order)), p.index))
    if not any(p.role == spec.task_role and p.index == spec.task_index for p in peers):
        peers.append(TaskPeer(spec.task_role, spec.task_index, None))
    env.update(runtime_env(
        ((convert_name(p.role), p.index, p.ip, _peer_ports(spec, p)) for p in peers),
        fc_role, spec.task_index, spec.work_dir or None,
    ))
    if spec.log_dir:
        # OpenPAI: a fifo whose lines land in runtime.log; here runtime.log itself (append to it: >>).
        env["RUNTIME_LOG_PIPE"] = f"{spec.log_dir}/runtime.log"
    if spec.checkpoint_dir:
        env["PAI_CHECKPOINT_DIR"] = spec.checkpoint_dir
    own = roles.get(spec.task_role)
    if own is not None and own.gpu == 0:
        env["NVIDIA_VISIBLE_DEVICES"] = "none"
    # CUDA numbers devices fastest-first by default; NVML (and our scheduler) by PCI bus order.
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in spec.gpus)
    return env
