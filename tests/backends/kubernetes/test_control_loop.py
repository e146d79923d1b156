"""The Kubernetes backend's control loop (create, bind, watch, stop, adopt, logs) against a FAKE API
server (tests/backends/kubernetes/fake_apiserver.py: a tornado app on 127.0.0.1, not Kubernetes).
What the fake cannot show - real scheduling, kubelet behaviour, exec - is covered by
scripts/e2e-k8s.sh against a real cluster."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pai_hub.backends.base import TaskExit, TaskLaunch, TaskRunning
from pai_hub.backends.kubernetes import KubernetesBackend
from pai_hub.backends.kubernetes import manifests as m
from tests.backends.kubernetes.conftest import make_spec
from tests.backends.kubernetes.fake_apiserver import FakeApiServer
from tests.requirements import require_module

require_module("kubernetes")

NODE = {"metadata": {"name": "gpu-node-0", "labels": {"pai-worker": "true"}}, "spec": {},
        "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "8"},
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                   "conditions": [{"type": "Ready", "status": "True"}]}}
DOWN = {"metadata": {"name": "down", "labels": {"pai-worker": "true"}}, "spec": {},
        "status": {"allocatable": {"cpu": "16", "memory": "64Gi"}, "conditions": [{"type": "Ready", "status": "False"}]}}


@pytest.fixture
def fake() -> Any:
    server = FakeApiServer().start()
    server.add_node(NODE)
    server.add_node(DOWN)
    yield server
    server.stop()


def client_for(fake: FakeApiServer) -> Any:
    from kubernetes import client

    config = client.Configuration()
    config.host = fake.url
    return client.ApiClient(config)


def backend_for(fake: FakeApiServer, **kw: Any) -> KubernetesBackend:
    return KubernetesBackend(namespace="pai", api_client=client_for(fake), watch_timeout=5, **kw)


@contextlib.asynccontextmanager
async def opened(fake: FakeApiServer, **kw: Any) -> AsyncIterator[tuple[KubernetesBackend, AsyncIterator[Any]]]:
    """An open backend on the fake and its events, closed at the end."""
    backend = backend_for(fake, **kw)
    await backend.open()
    try:
        yield backend, backend.events().__aiter__()
    finally:
        await backend.close()


async def started(backend: KubernetesBackend, events: AsyncIterator[Any], *tasks: TaskLaunch) -> None:
    """Start ``tasks`` and see each reported running."""
    for task in tasks:
        await backend.start(task)
        assert isinstance(await next_event(events), TaskRunning)


async def next_event(events: AsyncIterator[Any], timeout: float = 10.0) -> Any:
    return await asyncio.wait_for(events.__anext__(), timeout)


def launch(role: str = "worker", index: int = 0) -> TaskLaunch:
    spec = make_spec(role, index)
    return TaskLaunch(spec["task_id"], "gpu-node-0", (4, 5), spec)


def test_nodes_come_from_the_cluster(fake: FakeApiServer) -> None:
    async def main() -> None:
        async with opened(fake, node_selector="pai-worker=true") as (backend, _):
            nodes = backend.nodes()
            assert [n.name for n in nodes] == ["gpu-node-0"]  # the NotReady node is not offered
            assert nodes[0].ip == "10.0.0.1" and len(nodes[0].gpus) == 8 and nodes[0].memory_mb == 65536

    asyncio.run(main())


def test_start_bind_exit_and_logs(fake: FakeApiServer) -> None:
    async def main() -> None:
        task = launch()
        pod = m.pod_name(task.task_id)
        async with opened(fake) as (backend, events):
            await started(backend, events, task)
            objs = fake.store.objects
            assert objs["pods"][pod]["spec"]["nodeName"] == "gpu-node-0"  # bound through pods/binding
            assert objs["pods"][pod]["spec"]["schedulerName"] == "pai"
            assert m.service_name("alice~mnist_v2") in objs["services"]
            cm = objs["configmaps"][m.spec_configmap_name(task.task_id)]
            assert cm["metadata"]["ownerReferences"][0]["uid"] == objs["pods"][pod]["metadata"]["uid"]
            assert json.loads(cm["data"]["spec.json"])["gpus"] == [0, 1]
            calls = [c for c in fake.store.calls if c[0] != "GET"]
            assert [c[1].rsplit("/", 1)[-1] for c in calls] == [
                "configmaps", "services", "networkpolicies", "pods", "binding", m.spec_configmap_name(task.task_id)]
            # the job's NetworkPolicy exists before its pod, and selects it; the pod runs as alice's uid
            policy = objs["networkpolicies"][m.service_name("alice~mnist_v2")]
            assert m.isolation_problems(objs["pods"][pod], [policy]) == []
            assert objs["pods"][pod]["spec"]["securityContext"]["runAsUser"] == backend.uid_of("alice")
            with pytest.raises(ValueError):
                await backend.start(task)  # the pod exists already

            record = {"exitCode": 300, "startedAt": 100.0, "finishedAt": 110.0}
            fake.finish(pod, 255, json.dumps(record), log=b"hello\nworld\n")
            event = await next_event(events)
            assert isinstance(event, TaskExit) and event.task_id == task.task_id
            assert (event.exit_code, event.started_at, event.finished_at) == (300, 100.0, 110.0)
            assert event.record == record

            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, backend.read_log, task.task_id, "all") == b"hello\nworld\n"
            assert await loop.run_in_executor(None, backend.read_log, task.task_id, "all", 6, 3) == b"wor"
            assert await loop.run_in_executor(None, backend.log_names, task.task_id) == ["all"]
            with pytest.raises(KeyError):
                await loop.run_in_executor(None, backend.read_log, "nope.0.w.0.0", "all")
            with pytest.raises(KeyError):
                await loop.run_in_executor(None, backend.read_log, task.task_id, "bogus")

    asyncio.run(main())


def test_exit_without_record_and_second_job_service_reused(fake: FakeApiServer) -> None:
    async def main() -> None:
        a, b = launch("worker", 0), launch("worker", 1)
        async with opened(fake) as (backend, events):
            await started(backend, events, a, b)
            assert sum(1 for c in fake.store.calls if c == ("POST", "/api/v1/namespaces/pai/services")) == 1
            assert sum(1 for c in fake.store.calls
                       if c == ("POST", "/apis/networking.k8s.io/v1/namespaces/pai/networkpolicies")) == 1
            fake.finish(m.pod_name(b.task_id), 137, "Killed\n")  # OOM: no exit.json, a log tail
            event = await next_event(events)
            assert event.task_id == b.task_id and event.exit_code == 137
            assert event.record["source"] == "containerStatus" and event.record["messageTail"] == "Killed\n"

    asyncio.run(main())


def test_stop_and_lost_pods(fake: FakeApiServer) -> None:
    async def main() -> None:
        a, b = launch("worker", 0), launch("worker", 1)
        async with opened(fake) as (backend, events):
            await started(backend, events, a, b)
            await backend.stop(a.task_id, grace=5)
            event = await next_event(events)
            assert (event.task_id, event.exit_code) == (a.task_id, 143)
            assert m.pod_name(a.task_id) not in fake.store.objects["pods"]
            await backend.stop(a.task_id)  # idempotent
            fake.delete_behind_our_back(m.pod_name(b.task_id))
            event = await next_event(events)
            assert (event.task_id, event.exit_code) == (b.task_id, -1101)

    asyncio.run(main())


def test_adopt_after_restart(fake: FakeApiServer) -> None:
    async def main() -> None:
        first = backend_for(fake)
        await first.open()
        running, done = launch("worker", 0), launch("worker", 1)
        await first.start(running)
        await first.start(done)
        await first.close()  # the control plane goes away; the pods stay
        fake.finish(m.pod_name(done.task_id), 0, json.dumps({"exitCode": 0, "finishedAt": 5.0}))

        async with opened(fake) as (second, events):
            found = await second.adopt([running.task_id, done.task_id, "9.0.worker.0.0"])
            assert isinstance(found[0], TaskRunning) and found[0].task_id == running.task_id
            assert isinstance(found[1], TaskExit) and found[1].exit_code == 0
            assert isinstance(found[2], TaskExit) and found[2].exit_code == -1101
            fake.finish(m.pod_name(running.task_id), 1, json.dumps({"exitCode": 1, "finishedAt": 9.0}))
            event = await next_event(events)
            assert (event.task_id, event.exit_code) == (running.task_id, 1)

    asyncio.run(main())
