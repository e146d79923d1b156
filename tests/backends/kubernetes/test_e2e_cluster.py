"""The job suite against a REAL cluster (scripts/e2e-k8s.sh, `make e2e-k8s`): skipped unless
PAI_E2E_K8S=1 and KUBECONFIG are set. Needs the runtime image (PAI_K8S_RUNTIME_IMAGE, default
pai-hub/runtime:0.1.0) pullable by the nodes, and the namespace PAI_K8S_NAMESPACE (default
pai-e2e) to exist; tasks are CPU-only unless PAI_E2E_GPUS=1."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import pytest

from pai_hub.backends.base import TaskExit, TaskLaunch, TaskRunning
from pai_hub.backends.kubernetes import KubernetesBackend
from tests.backends.kubernetes.conftest import make_spec

pytestmark = pytest.mark.skipif(
    os.environ.get("PAI_E2E_K8S") != "1" or not os.environ.get("KUBECONFIG"),
    reason="real-cluster e2e: run scripts/e2e-k8s.sh with KUBECONFIG set")


def _launch(backend: KubernetesBackend, command: str, index: int, framework: str, gpus: int = 0) -> TaskLaunch:
    node = backend.nodes()[0]
    spec = make_spec("worker", index, command=command, framework=framework, gpu=gpus)
    spec["task_id"] = f"e2e{uuid.uuid4().hex[:8]}.0.worker.{index}.0"
    spec["peers"] = [{**p, "ip": node.ip} for p in spec["peers"]]
    spec["checkpoint_dir"] = None
    return TaskLaunch(spec["task_id"], node.name, tuple(range(gpus)), spec)


async def _until_exit(events: Any, task_ids: set[str], timeout: float = 300) -> dict[str, TaskExit]:
    exits: dict[str, TaskExit] = {}
    deadline = time.monotonic() + timeout
    while set(exits) != task_ids:
        event = await asyncio.wait_for(events.__anext__(), max(1, deadline - time.monotonic()))
        if isinstance(event, TaskExit) and event.task_id in task_ids:
            exits[event.task_id] = event
    return exits


def test_job_suite_on_a_real_cluster() -> None:
    async def main() -> None:
        backend = KubernetesBackend.from_env(
            namespace=os.environ.get("PAI_K8S_NAMESPACE", "pai-e2e"), kubeconfig=os.environ["KUBECONFIG"],
            checkpoint_claim=None)
        await backend.open()
        events = backend.events().__aiter__()
        framework = f"e2e~job{uuid.uuid4().hex[:6]}"
        gpus = 1 if os.environ.get("PAI_E2E_GPUS") == "1" else 0
        try:
            assert backend.nodes(), "no Ready nodes"
            ok = _launch(backend, "echo hello-from-pai; test -n \"$PAI_TASK_INDEX\" || exit 9", 0, framework, gpus)
            bad = _launch(backend, "echo failing >&2; exit 42", 1, framework)
            long = _launch(backend, "sleep 600", 2, framework)
            for t in (ok, bad, long):
                await backend.start(t)
            exits = await _until_exit(events, {ok.task_id, bad.task_id})
            assert exits[ok.task_id].exit_code == 0, exits[ok.task_id].record
            assert exits[bad.task_id].exit_code == 42, exits[bad.task_id].record
            log = await asyncio.get_running_loop().run_in_executor(None, backend.read_log, ok.task_id, "all")
            assert b"hello-from-pai" in log
            found = await backend.adopt([long.task_id])
            assert isinstance(found[0], TaskRunning)
            await backend.stop(long.task_id, grace=5)
            stopped = await _until_exit(events, {long.task_id}, 120)
            assert stopped[long.task_id].exit_code in (143, 137)
            for t in (ok, bad):
                await backend.delete(t.task_id)
        finally:
            await backend.close()

    asyncio.run(main())
