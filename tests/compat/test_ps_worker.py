"""The TensorFlow/PyTorch parameter-server pattern under the cluster config ``pai server`` generates
(issue 18): parameter servers with ``gpu: 0`` and workers with ``gpu: 1`` in one job. It was
refused ("tasks of affinity group 'default' ask for different SKUs or pinned cells"); now the job
runs, the parameter servers on CPU slots with no GPU, each worker on its own GPU.
"""

from __future__ import annotations

import pytest

from tests.server import running_server, wait_state

#: each task checks it sees exactly the GPUs its role asks for (else it exits 1 and the job fails)
SEES = 'n=$(printf %s "${CUDA_VISIBLE_DEVICES:-}" | tr , "\\n" | grep -c .); echo "gpus=$n"; test "$n" = "@N@"'

PS_WORKER = """protocolVersion: 2
name: ps-worker
type: job
prerequisites:
  - {name: image, type: dockerimage, uri: tensorflow/tensorflow:1.15.0-gpu}
taskRoles:
  ps:
    instances: 2
    dockerImage: image
    resourcePerInstance: {cpu: 2, memoryMB: 512, gpu: 0}
    commands: ['@PS@']
  worker:
    instances: 2
    dockerImage: image
    resourcePerInstance: {cpu: 2, memoryMB: 512, gpu: 1}
    commands: ['@WORKER@']
""".replace("@PS@", SEES.replace("@N@", "0")).replace("@WORKER@", SEES.replace("@N@", "1"))


def test_parameter_servers_and_gpu_workers_run_under_the_generated_config(tmp_path_factory: pytest.TempPathFactory):
    with running_server(tmp_path_factory.mktemp("psworker"), gpus=2, node_cpu=16) as srv, srv.client() as c:
        dry = c.post("/api/v2/jobs?dryRun=true", content=PS_WORKER, headers={"Content-Type": "text/yaml"})
        assert dry.status_code == 200, dry.text
        r = c.post("/api/v2/jobs", content=PS_WORKER, headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        detail = wait_state(c, "admin~ps-worker", {"SUCCEEDED", "FAILED", "STOPPED"}, timeout=60)
        assert detail["jobStatus"]["state"] == "SUCCEEDED", detail
        gpus = {(role, t["taskIndex"]): t.get("containerGpus") for role, r in detail["taskRoles"].items()
                for t in r["taskStatuses"]}
        assert set(gpus) == {("ps", 0), ("ps", 1), ("worker", 0), ("worker", 1)}
        assert not gpus[("ps", 0)] and not gpus[("ps", 1)], gpus
        assert gpus[("worker", 0)] and gpus[("worker", 1)] and gpus[("worker", 0)] != gpus[("worker", 1)], gpus
