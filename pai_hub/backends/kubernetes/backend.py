"""The Kubernetes backend: task attempts are Pods that the PAI scheduler binds (docs/kubernetes.md).

::

    start(launch) ─▶ ConfigMap <pod>-spec (spec.json)      ─┐
                  ─▶ Service  pai-job-<md5> (headless, once per job)
                  ─▶ NetworkPolicy pai-job-<md5> (once per job: only the job's and the hub's pods get in)
                  ─▶ Pod <pod> (schedulerName: pai)          │  all in a thread executor:
                  ─▶ Binding <pod> → launch.node              │  the client is blocking
                  ─▶ ConfigMap.ownerReferences += Pod        ─┘
    watch thread: list + watch pods (label app.kubernetes.io/managed-by=pai-hub) ─▶ asyncio queue
                  phase Succeeded/Failed → TaskExit(record = exit.json from the termination message)
                  DELETED before ending  → TaskExit(143 when we stopped it, else -1101 lost)

The official ``kubernetes`` client is used with ``_preload_content=False`` throughout: the backend
works on plain JSON dicts, the same shapes the pure builders in :mod:`.manifests` produce.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from pai_hub.backends.base import Backend, GpuInfo, NodeInfo, TaskEvent, TaskExit, TaskLaunch, TaskRunning
from pai_hub.backends.events import TaskEvents, exit_event
from pai_hub.backends.kubernetes import manifests as m
from pai_runtime.exitcodes import EXIT_STOPPED, EXIT_TASK_LOST
from pai_runtime.isolation import IsolationPolicy

if TYPE_CHECKING:
    from pai_hub.backends.kubernetes.shell import ExecTerminal

log = logging.getLogger(__name__)

LOG_NAMES = ("all", "stdout", "stderr", "runtime.log")
DEFAULT_GPU_MEMORY_MB = 16384


def _load_client(kubeconfig: str | None, context: str | None) -> Any:
    from kubernetes import client, config

    if kubeconfig is None:
        try:
            config.load_incluster_config()
            return client.ApiClient()
        except config.ConfigException:
            pass
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    return client.ApiClient(configuration)


def node_info(node: dict[str, Any], default_gpu_model: str = "nvidia",
              default_gpu_memory_mb: int = DEFAULT_GPU_MEMORY_MB) -> NodeInfo:
    """A cluster node as the scheduler sees it: allocatable CPU, memory and ``nvidia.com/gpu``.

    GPU model and memory come from GPU feature discovery's labels (``nvidia.com/gpu.product``,
    ``nvidia.com/gpu.memory`` in MiB) when present; GPU uuids are not visible through the API and
    are named ``K8S-<node>-<index>``.
    """
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    alloc = (node.get("status") or {}).get("allocatable") or {}
    name = str(meta.get("name"))
    gpus = int(m.parse_quantity(alloc.get(m.GPU_RESOURCE, 0)))
    model = labels.get("nvidia.com/gpu.product") or default_gpu_model
    try:
        memory = int(labels.get("nvidia.com/gpu.memory") or default_gpu_memory_mb)
    except ValueError:
        memory = default_gpu_memory_mb
    return NodeInfo(
        name=name,
        ip=m.node_ip(node),
        cpu=int(m.parse_quantity(alloc.get("cpu", 0))),
        memory_mb=int(m.parse_quantity(alloc.get("memory", 0)) // (1 << 20)),
        gpus=tuple(GpuInfo(i, f"K8S-{name}-{i}", model, memory) for i in range(gpus)),
    )


def _pairs(text: str) -> dict[str, str]:
    """``a=1,b=2`` -> {"a": "1", "b": "2"} (the form of PAI_K8S_USER_UIDS and PAI_K8S_HUB_SELECTOR)."""
    out = {}
    for item in text.split(","):
        if item.strip():
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"expected name=value, not {item!r}")
            out[key.strip()] = value.strip()
    return out


class KubernetesBackend(TaskEvents, Backend):
    """Runs task attempts as Pods in one namespace of a Kubernetes cluster (see module docstring).

    ``api_client``: a ``kubernetes.client.ApiClient`` (tests pass one aimed at a fake API server);
    without it the in-cluster config is used, else ``kubeconfig``/``context``.
    ``node_selector``: a label selector for the nodes offered to the scheduler (e.g. ``pai-worker=true``).
    ``gpu_isolation``: ``env`` (HiveD's way), ``limits`` or ``both`` (see :mod:`.manifests`).
    ``checkpoint_claim``: the PVC mounted at /pai/checkpoints (None: no checkpoint volume);
    ``ensure_checkpoint_claim`` creates it in ``open()`` when missing, with ``checkpoint_size`` and
    ``checkpoint_storage_class``.
    ``user_uids``: PAI user -> the uid (and gid) their pods run as; users not in it get a stable hash
    of their name (:func:`.manifests.user_uid`). Pods never run as root, whatever the isolation policy
    (``isolation`` is accepted as the other backends accept it: on a cluster, tasks are always
    isolated). ``hub_selector``: the labels of the hub's pods, the only pods besides a job's own that
    its NetworkPolicy lets in. ``host_network``: OpenPAI's old placement on the node's network, where
    no NetworkPolicy applies (other users' tasks reach the job's ports): off unless asked for.
    """

    name = "kubernetes"

    def __init__(
        self,
        *,
        namespace: str = "default",
        image: str = "pai-hub/runtime:0.1.0",
        api_client: Any = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        node_selector: str | None = None,
        gpu_isolation: str = "env",
        gpu_model: str = "nvidia",
        checkpoint_claim: str | None = "pai-checkpoints",
        ensure_checkpoint_claim: bool = False,
        checkpoint_size: str = "100Gi",
        checkpoint_storage_class: str | None = None,
        service_account: str | None = None,
        priority_class: str | None = None,
        image_pull_policy: str = "IfNotPresent",
        watch_timeout: int = 300,
        user_uids: dict[str, int] | None = None,
        hub_selector: dict[str, str] | None = None,
        host_network: bool = False,
        isolation: IsolationPolicy | None = None,
    ) -> None:
        if gpu_isolation not in m.GPU_ISOLATION_MODES:
            raise ValueError(f"gpu_isolation must be one of {m.GPU_ISOLATION_MODES}")
        super().__init__()
        self.namespace = namespace
        self.image = image
        self.node_selector = node_selector
        self.gpu_isolation = gpu_isolation
        self.gpu_model = gpu_model
        self.checkpoint_claim = checkpoint_claim
        self.ensure_checkpoint_claim = ensure_checkpoint_claim
        self.checkpoint_size = checkpoint_size
        self.checkpoint_storage_class = checkpoint_storage_class
        self.service_account = service_account
        self.priority_class = priority_class
        self.image_pull_policy = image_pull_policy
        self.watch_timeout = watch_timeout
        self.user_uids = {str(k): int(v) for k, v in (user_uids or {}).items()}
        self.hub_selector = dict(hub_selector or m.DEFAULT_HUB_SELECTOR)
        self.host_network = host_network
        self.isolation = isolation
        self._api_client = api_client
        self._kubeconfig = kubeconfig
        self._context = context
        self._core: Any = None
        self._net: Any = None
        self._policies: set[str] = set()
        self._nodes: list[NodeInfo] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: set[str] = set()
        self._services: set[str] = set()
        self._watch_thread: threading.Thread | None = None
        self._watch: Any = None
        self._closing = threading.Event()
        self._synced = threading.Event()

    #: Environment variables read by :meth:`from_env` (set by the Helm chart): name -> (argument, cast).
    ENV = {
        "PAI_K8S_NAMESPACE": ("namespace", str),
        "PAI_K8S_RUNTIME_IMAGE": ("image", str),
        "PAI_K8S_KUBECONFIG": ("kubeconfig", str),
        "PAI_K8S_NODE_SELECTOR": ("node_selector", str),
        "PAI_K8S_GPU_ISOLATION": ("gpu_isolation", str),
        "PAI_K8S_GPU_MODEL": ("gpu_model", str),
        "PAI_K8S_CHECKPOINT_CLAIM": ("checkpoint_claim", str),
        "PAI_K8S_ENSURE_CHECKPOINT_CLAIM": ("ensure_checkpoint_claim", lambda v: v.lower() in ("1", "true", "yes")),
        "PAI_K8S_CHECKPOINT_SIZE": ("checkpoint_size", str),
        "PAI_K8S_CHECKPOINT_STORAGE_CLASS": ("checkpoint_storage_class", str),
        "PAI_K8S_TASK_SERVICE_ACCOUNT": ("service_account", str),
        "PAI_K8S_PRIORITY_CLASS": ("priority_class", str),
        "PAI_K8S_IMAGE_PULL_POLICY": ("image_pull_policy", str),
        "PAI_K8S_USER_UIDS": ("user_uids", lambda v: {k: int(u) for k, u in _pairs(v).items()}),
        "PAI_K8S_HUB_SELECTOR": ("hub_selector", _pairs),
        "PAI_K8S_HOST_NETWORK": ("host_network", lambda v: v.lower() in ("1", "true", "yes")),
    }

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> KubernetesBackend:
        """A backend configured from ``PAI_K8S_*`` variables (empty values mean "not set"; an empty
        ``PAI_K8S_CHECKPOINT_CLAIM`` turns the checkpoint volume off)."""
        import os

        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        for var, (arg, cast) in cls.ENV.items():
            if var in env:
                value = env[var]
                if value == "":
                    if arg == "checkpoint_claim":
                        kwargs[arg] = None
                    continue
                kwargs[arg] = cast(value)
        kwargs.update(overrides)
        return cls(**kwargs)

    # -- lifecycle -----------------------------------------------------------------------------

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        assert self._loop is not None
        return await self._loop.run_in_executor(None, lambda: fn(*args, **kwargs))

    @staticmethod
    def _json(resp: Any) -> dict[str, Any]:
        data = resp.data if hasattr(resp, "data") else resp
        return json.loads(data) if data else {}

    async def open(self) -> None:
        from kubernetes import client

        self._loop = asyncio.get_running_loop()
        if self._api_client is None:
            self._api_client = await self._call(_load_client, self._kubeconfig, self._context)
        self._core = client.CoreV1Api(self._api_client)
        self._net = client.NetworkingV1Api(self._api_client)
        if self.host_network:
            log.warning("k8s backend: task pods on the host network: no NetworkPolicy applies, other users' "
                        "tasks can reach every job's ports (PAI_K8S_HOST_NETWORK)")
        await self.refresh_nodes()
        if self.checkpoint_claim and self.ensure_checkpoint_claim:
            body = m.checkpoint_pvc(self.checkpoint_claim, self.namespace, self.checkpoint_size,
                                    self.checkpoint_storage_class)
            await self._create_ignore_conflict(self._core.create_namespaced_persistent_volume_claim, body)
        self._closing.clear()
        self._synced.clear()
        self._watch_thread = threading.Thread(target=self._watch_loop, name="pai-k8s-watch", daemon=True)
        self._watch_thread.start()
        # The first list is done before open() returns: adopt() and start() see a synced view.
        await self._call(self._synced.wait, 30)

    async def close(self) -> None:
        self._closing.set()
        if self._watch is not None:
            self._watch.stop()  # closes the watch's response: the thread wakes up
        thread, self._watch_thread = self._watch_thread, None
        if thread is not None and self._loop is not None:
            await self._call(thread.join, 10)
        self._end_events()

    # -- nodes ---------------------------------------------------------------------------------

    async def refresh_nodes(self) -> list[NodeInfo]:
        """List the cluster's nodes again (``nodes()`` returns the last list)."""
        kwargs = {"label_selector": self.node_selector} if self.node_selector else {}
        data = self._json(await self._call(self._core.list_node, _preload_content=False, **kwargs))
        self._nodes = [node_info(n, self.gpu_model) for n in data.get("items") or () if m.node_is_usable(n)]
        return list(self._nodes)

    def nodes(self) -> list[NodeInfo]:
        return list(self._nodes)

    # -- tasks ---------------------------------------------------------------------------------

    def uid_of(self, username: str) -> int:
        """The uid (and gid) of a PAI user's pods."""
        return m.user_uid(username, self.user_uids)

    async def _create_ignore_conflict(self, fn: Any, body: dict[str, Any]) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._json(await self._call(fn, self.namespace, body, _preload_content=False))
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def build_manifests(self, launch: TaskLaunch) -> dict[str, dict[str, Any]]:
        """Every object ``start(launch)`` creates, in order: configmap, service, networkpolicy, pod,
        binding. The pod runs as its user's uid; ValueError if it lacks any of the isolation
        :func:`.manifests.isolation_problems` checks (host network allowed only when configured)."""
        spec_json = m.pod_spec_json(launch.spec, launch.gpus, gpu_isolation=self.gpu_isolation,
                                    checkpoints=self.checkpoint_claim is not None)
        uid = self.uid_of(str(launch.spec.get("username", "")))
        pod = m.task_pod(launch.task_id, launch.node, launch.gpus, launch.spec, namespace=self.namespace,
                         image=self.image, gpu_isolation=self.gpu_isolation,
                         checkpoint_claim=self.checkpoint_claim, service_account=self.service_account,
                         image_pull_policy=self.image_pull_policy, priority_class=self.priority_class,
                         uid=uid, gid=uid, host_network=self.host_network)
        policy = m.job_network_policy(launch.spec, self.namespace, self.hub_selector)
        problems = [p for p in m.isolation_problems(pod, [policy])
                    if not (self.host_network and p.startswith("spec.hostNetwork"))]
        if problems:
            raise ValueError(f"task {launch.task_id}: pod not isolated: {'; '.join(problems)}")
        return {
            "configmap": m.spec_configmap(launch.task_id, self.namespace, spec_json),
            "service": m.job_service(launch.spec, self.namespace),
            "networkpolicy": policy,
            "pod": pod,
            "binding": m.binding(pod["metadata"]["name"], self.namespace, launch.node),
        }

    async def start(self, launch: TaskLaunch) -> None:
        if self._core is None:
            raise RuntimeError("KubernetesBackend.start() before open()")
        objs = self.build_manifests(launch)
        core = self._core
        await self._create_ignore_conflict(core.create_namespaced_config_map, objs["configmap"])
        service = objs["service"]["metadata"]["name"]
        if service not in self._services:
            await self._create_ignore_conflict(core.create_namespaced_service, objs["service"])
            self._services.add(service)
        policy = objs["networkpolicy"]["metadata"]["name"]
        if policy not in self._policies:  # before the pod: it is never reachable without it
            await self._create_ignore_conflict(self._net.create_namespaced_network_policy, objs["networkpolicy"])
            self._policies.add(policy)
        created = await self._create_ignore_conflict(core.create_namespaced_pod, objs["pod"])
        if created is None:
            raise ValueError(f"task {launch.task_id} was already started")
        self._live.add(launch.task_id)
        name = objs["pod"]["metadata"]["name"]
        # The python client cannot deserialize the Binding's reply (a Status): read it raw.
        await self._call(core.create_namespaced_pod_binding, name, self.namespace, objs["binding"],
                         _preload_content=False)
        if created.get("metadata", {}).get("uid"):
            patch = {"metadata": {"ownerReferences": [m.owner_reference(created)]}}
            try:
                await self._call(core.patch_namespaced_config_map, objs["configmap"]["metadata"]["name"],
                                 self.namespace, patch, _preload_content=False)
            except Exception as exc:  # only garbage collection is at stake
                log.warning("k8s backend: could not own %s's spec: %s", name, exc)
        self._queue.put_nowait(TaskRunning(launch.task_id, time.time()))

    async def stop(self, task_id: str, grace: float = 10.0) -> None:
        """Delete the pod with ``grace`` seconds: SIGTERM to the runtime, which forwards it to the
        task's process group; SIGKILL from the kubelet after the grace period."""
        from kubernetes.client.exceptions import ApiException

        if task_id not in self._live:
            return
        self._stopping.add(task_id)
        try:
            await self._call(self._core.delete_namespaced_pod, m.pod_name(task_id), self.namespace,
                             grace_period_seconds=max(0, int(grace)), _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def delete(self, task_id: str) -> None:
        """Remove an ended task's pod (and, by garbage collection, its spec and, with the job's
        last pod, its Service). Logs go with it."""
        from kubernetes.client.exceptions import ApiException

        try:
            await self._call(self._core.delete_namespaced_pod, m.pod_name(task_id), self.namespace,
                             grace_period_seconds=0, _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- events --------------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        """List, then watch from the list's resourceVersion; list again after 410 Gone or an error."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        selector = f"{m.LABEL_MANAGED}={m.MANAGED_BY}"
        while not self._closing.is_set():
            try:
                data = self._json(self._core.list_namespaced_pod(self.namespace, label_selector=selector,
                                                                 _preload_content=False))
                self._post("LIST", data.get("items") or [])
                self._synced.set()
                version = (data.get("metadata") or {}).get("resourceVersion")
                while not self._closing.is_set():
                    self._watch = w = watch.Watch()
                    for event in w.stream(self._core.list_namespaced_pod, self.namespace,
                                          label_selector=selector, resource_version=version,
                                          timeout_seconds=self.watch_timeout, allow_watch_bookmarks=True):
                        obj = event.get("raw_object") or {}
                        kind = event.get("type")
                        if kind == "ERROR":
                            raise ApiException(status=int(obj.get("code") or 500), reason=obj.get("message"))
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if kind in ("ADDED", "MODIFIED", "DELETED"):
                            self._post(kind, [obj])
                        if self._closing.is_set():
                            break
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("k8s backend: pod watch failed (%s); listing again", exc)
                    self._closing.wait(1.0)
            except Exception as exc:
                if self._closing.is_set():
                    return
                log.warning("k8s backend: pod watch failed (%s); listing again", exc)
                self._closing.wait(1.0)

    def _post(self, kind: str, pods: list[dict[str, Any]]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._on_pods, kind, pods)
        except RuntimeError:
            pass

    def _on_pods(self, kind: str, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            task_id = ((pod.get("metadata") or {}).get("annotations") or {}).get(m.ANN_TASK_ID)
            if task_id is None or task_id not in self._live:
                continue
            event = self._event_of(task_id, pod, deleted=kind == "DELETED")
            if isinstance(event, TaskExit):
                self._forget(task_id)
                self._queue.put_nowait(event)

    def _forget(self, task_id: str) -> None:
        super()._forget(task_id)
        self._stopping.discard(task_id)

    def _event_of(self, task_id: str, pod: dict[str, Any] | None, *, deleted: bool = False) -> TaskEvent:
        record = m.exit_record(pod, EXIT_TASK_LOST) if pod is not None else None
        if record is None and (deleted or pod is None):
            if task_id in self._stopping:
                record = {"exitCode": EXIT_STOPPED, "signal": 15, "reason": "stopped (pod deleted)"}
            else:
                record = {"exitCode": EXIT_TASK_LOST, "reason": "pod deleted" if pod is not None
                          else "no pod for the task"}
        if record is None:
            assert pod is not None
            return TaskRunning(task_id, m.started_at(pod))
        return exit_event(task_id, record)

    # -- adoption ------------------------------------------------------------------------------

    async def adopt(self, known_task_ids: list[str]) -> list[TaskEvent]:
        selector = f"{m.LABEL_MANAGED}={m.MANAGED_BY}"
        data = self._json(await self._call(self._core.list_namespaced_pod, self.namespace,
                                           label_selector=selector, _preload_content=False))
        by_task = {}
        for pod in data.get("items") or ():
            tid = ((pod.get("metadata") or {}).get("annotations") or {}).get(m.ANN_TASK_ID)
            if tid is not None:
                by_task[tid] = pod
        events: list[TaskEvent] = []
        for tid in known_task_ids:
            event = self._event_of(tid, by_task.get(tid))
            if isinstance(event, TaskRunning):
                self._live.add(tid)
            else:
                self._live.discard(tid)
            events.append(event)
        return events

    # -- logs and shells -----------------------------------------------------------------------

    def _pod(self, task_id: str) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._json(self._core.read_namespaced_pod(m.pod_name(task_id), self.namespace,
                                                             _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                raise KeyError(task_id) from None
            raise

    def log_names(self, task_id: str) -> list[str]:
        """``all`` (the container log) while the pod exists; the runtime's separate files while its
        container runs (they are read through exec)."""
        pod = self._pod(task_id)
        if (pod.get("status") or {}).get("phase") == "Running":
            return list(LOG_NAMES)
        return ["all"] if m.container_terminated(pod) is not None else []

    def read_log(self, task_id: str, name: str, offset: int = 0, limit: int | None = None) -> bytes:
        """``all`` through pods/log (the runtime's interleaved output, streamed to the container's
        stdout); ``stdout``/``stderr``/``runtime.log`` by exec-ing ``tail -c`` in the running
        container (empty once it ended: only ``all`` outlives the container)."""
        from kubernetes.client.exceptions import ApiException

        if name not in LOG_NAMES:
            raise KeyError(name)
        pod = m.pod_name(task_id)
        if name == "all":
            kwargs: dict[str, Any] = {"container": m.CONTAINER, "_preload_content": False}
            if limit is not None:
                kwargs["limit_bytes"] = max(1, offset + limit)
            try:
                data = self._core.read_namespaced_pod_log(pod, self.namespace, **kwargs).data
            except ApiException as exc:
                if exc.status == 404:
                    raise KeyError(task_id) from None
                if exc.status == 400:  # container not started yet
                    return b""
                raise
            data = data[offset:]
            return data if limit is None else data[:limit]
        if (self._pod(task_id).get("status") or {}).get("phase") != "Running":
            return b""
        from kubernetes.stream import stream

        cmd = f"tail -c +{int(offset) + 1} {m.TASK_DIR}/logs/{name} 2>/dev/null"
        if limit is not None:
            cmd += f" | head -c {int(limit)}"
        out = stream(self._core.connect_get_namespaced_pod_exec, pod, self.namespace,
                     command=["/bin/sh", "-c", cmd], container=m.CONTAINER, stdin=False, stdout=True,
                     stderr=False, tty=False, binary=True)
        return out if isinstance(out, bytes) else str(out).encode()

    def exec_shell(self, task_id: str) -> ExecTerminal:
        """``bash -i`` (else ``sh -i``) in the task container through pods/exec, behind a local PTY
        (see :class:`pai_hub.backends.kubernetes.shell.ExecTerminal`). Only while the container runs."""
        from pai_hub.backends.kubernetes.shell import ExecTerminal

        pod = self._pod(task_id)
        if (pod.get("status") or {}).get("phase") != "Running":
            raise KeyError(f"{task_id}: its pod is not running")
        return ExecTerminal.open(self._core, m.pod_name(task_id), self.namespace, m.CONTAINER)
