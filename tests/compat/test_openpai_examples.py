"""OpenPAI's own example jobs (every YAML under ``shared/reference/openpai/jobs``, recursively) on PAI
Hub, unchanged (issue 18, "Done when").

For each file:

1. **Validation**: the verdict OpenPAI gives it (tests/protocol/test_protocol_reference_jobs.py holds
   the few published files that OpenPAI refuses too: unreadable YAML, a two-document stream, a job
   naming prerequisites it does not define) — in-process through :func:`pai_hub.protocol.check` (what
   ``pai job validate`` runs) and through a real ``pai server``'s dry run, which must agree: 200 for
   the valid ones, 400 with the in-process message for the others.
2. **Run**: every valid job is submitted, as written, except for the commands it runs, and must end
   SUCCEEDED on the local backend.

Why the commands are replaced: every example downloads code or data (``git clone``, ``wget``,
``pip install``, an NFS mount) and most need real GPUs and a container image; the test machine has no
network, no GPU and no container runtime. Letting them run would end each one FAILED with whatever
exit code ``wget`` gives without a network — which shows only that bash ran. What the test checks
instead is the platform's part, the same in every example: the document is accepted as OpenPAI
accepts it, scheduled with its own resources, ports, gang and plugins (ssh, cmd callbacks,
tensorboard, …) on a node the size of an OpenPAI worker (simulated GPUs), its tasks started, and
the job brought to SUCCEEDED. Each task's command checks that it got exactly the GPUs its role asks
for (``CUDA_VISIBLE_DEVICES``) and that the PAI environment names its task role and index.
Everything else in the document (prerequisites, deployments, ``extras``) is kept; commands a
deployment, a prerequisite's callback or the ``cmd`` plugin would run are replaced the same way.

The server's cluster is shaped like the one it generates for a machine, declared the size of an
OpenPAI worker (16 simulated GPUs, 96 CPUs, 2 TB), with the VC and the pinned cell two examples name
(:func:`example_cluster`).

The exception: jobs using OpenPAI's storage plugin ``teamwise_storage``, which PAI Hub does not
serve yet (it comes with storages). Issue 18 asks for a 400 naming the plugin at submit; until the
server gives it, the tasks of such a job fail before their command with the prerequisite exit code
(240). The test accepts one of the two, the same for every such job, and nothing else.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pai_hub import protocol
from pai_hub.scheduler.local_cluster import CPU_SLOT_BASE
from pai_runtime.exitcodes import EXIT_PREREQUISITE_FAILED
from tests.protocol.test_protocol_reference_jobs import (
    INVALID_YAML,
    JINJA_TEMPLATE,
    JOB_PLUS_SECRETS,
    SEMANTIC_FAILURES,
)
from tests.requirements import require_reference
from tests.server import REFERENCE, Server

JOBS = REFERENCE / "openpai" / "jobs"
REFUSED_BY_OPENPAI = INVALID_YAML | JOB_PLUS_SECRETS | SEMANTIC_FAILURES
#: a node the size of an OpenPAI GPU worker: the examples ask for up to 8 GPUs and 100 GB per gang, and
#: 501 CPU tasks of 50 GB each
NODE = {"gpus": 16, "cpu": 96, "memory_mb": 2048 * 1024}
#: every task: its role's GPUs are exactly the ones it sees, and the PAI environment names it
CHECK = ('n=$(printf %s "${CUDA_VISIBLE_DEVICES:-}" | tr , "\\n" | grep -c .); test "$n" = "@GPU@" || '
         '{ echo "saw $n GPUs (${CUDA_VISIBLE_DEVICES:-none}), asked for @GPU@"; exit 3; }; '
         'test "$PAI_CURRENT_TASK_ROLE_NAME" = "@ROLE@" && test -n "$PAI_CURRENT_TASK_ROLE_CURRENT_TASK_INDEX"')
TRIVIAL = "true"


def job_files() -> list[Path]:
    require_reference(JOBS)
    files = sorted(p for p in JOBS.rglob("*") if p.suffix in (".yaml", ".yml"))
    assert len(files) >= 68, f"{JOBS}: expected OpenPAI's 68 example jobs, found {len(files)}"
    return files


def text_of(path: Path) -> str:
    text = path.read_text()
    if str(path.relative_to(JOBS)) == JINJA_TEMPLATE:  # as its load test renders it (a Jinja template)
        text = text.replace("{{jobname}}", "stress_test_1").replace("{{vc}}", "default")
    return text


def runnable(doc: dict[str, Any], name: str) -> str:
    """The document with its commands replaced (module docstring), renamed ``name``."""
    doc = json.loads(json.dumps(doc))
    doc["name"] = name
    for role_name, role in doc["taskRoles"].items():
        gpu = role["resourcePerInstance"]["gpu"]
        role["commands"] = [CHECK.replace("@GPU@", str(gpu)).replace("@ROLE@", role_name)]
    for deployment in doc.get("deployments") or []:
        for role in deployment["taskRoles"].values():
            for key in ("preCommands", "postCommands"):
                if key in role:
                    role[key] = [TRIVIAL]
    for prereq in doc.get("prerequisites") or []:
        for callback in prereq.get("callbacks") or []:
            callback["commands"] = [TRIVIAL]
    for item in (doc.get("extras") or {}).get("com.microsoft.pai.runtimeplugin") or []:
        parameters = item.get("parameters") or {}
        for key in ("preCommands", "postCommands"):  # the cmd plugin's
            if key in parameters:
                parameters[key] = [TRIVIAL]
        for callback in parameters.get("callbacks") or []:
            callback["commands"] = [TRIVIAL]
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def uses_storage_plugin(doc: dict[str, Any]) -> bool:
    plugins = (doc.get("extras") or {}).get("com.microsoft.pai.runtimeplugin") or []
    return any(isinstance(p, dict) and p.get("plugin") == "teamwise_storage" for p in plugins)


def example_cluster() -> dict[str, Any]:
    """The HiveD config of the test's server: shaped like the one ``pai server`` generates for a
    machine (a chain of simulated GPUs and a chain of CPU slots on the one local node, SKUs as it
    derives them), declared the size of an OpenPAI GPU worker, with what two examples presuppose of
    their cluster, as an admin running them would configure it: a VC named ``cpu``
    (tensorflow_cifar10's CPU job) and a cell pinned as ``node-worker2`` for ``default`` (the
    pinned-cell example of OpenPAI's docs). Each chain has two halves under the node, so that a VC
    can hold a half (HiveD places a pod inside one cell of its VC)."""
    gpus, cpus, memory = NODE["gpus"], NODE["cpu"], NODE["memory_mb"]
    host = socket.gethostname()
    half_gpus, half_cpus = gpus // 2, cpus // 2
    return {
        "physicalCluster": {
            "skuTypes": {"simulated": {"gpu": 1, "cpu": cpus // gpus, "memory": f"{memory // gpus}Mi"},
                         "cpu": {"gpu": 0, "cpu": 1, "memory": f"{memory // cpus}Mi"}},
            "cellTypes": {
                "simulated-HALF": {"childCellType": "simulated", "childCellNumber": half_gpus},
                "simulated-NODE": {"childCellType": "simulated-HALF", "childCellNumber": 2, "isNodeLevel": True},
                "cpu-HALF": {"childCellType": "cpu", "childCellNumber": half_cpus},
                "CPU-NODE": {"childCellType": "cpu-HALF", "childCellNumber": 2, "isNodeLevel": True},
            },
            "physicalCells": [
                {"cellType": "simulated-NODE", "cellAddress": host,
                 "cellChildren": [{}, {"pinnedCellId": "node-worker2"}]},
                {"cellType": "CPU-NODE", "cellAddress": host, "cellChildren": [
                    {"cellChildren": [{"cellAddress": str(CPU_SLOT_BASE + half * half_cpus + i)}
                                      for i in range(half_cpus)]} for half in range(2)]},
            ],
        },
        "virtualClusters": {
            "default": {"virtualCells": [{"cellType": "simulated-NODE.simulated-HALF", "cellNumber": 1},
                                         {"cellType": "CPU-NODE.cpu-HALF", "cellNumber": 1}],
                        "pinnedCells": [{"pinnedCellId": "node-worker2"}]},
            "cpu": {"virtualCells": [{"cellType": "CPU-NODE.cpu-HALF", "cellNumber": 1}]},
        },
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("examples")
    srv = Server(base / "data", args=("--simulated-gpus", str(NODE["gpus"]), "--node-cpu", str(NODE["cpu"])))
    srv.data_dir.mkdir(parents=True, mode=0o700)
    for name, text in (("pai_config.py", f"c.PaiHub.node_memory_mb = {NODE['memory_mb']}\n"),
                       ("cluster.yaml", yaml.safe_dump(example_cluster()))):
        (srv.data_dir / name).write_text(text)
        (srv.data_dir / name).chmod(0o600)
    try:
        yield srv.start()
    finally:
        srv.stop()
        srv.kill_tasks()


def in_process_verdict(text: str) -> str | None:
    """None when valid, else the message ``pai job validate`` prints."""
    try:
        protocol.check(text, username="admin")
    except protocol.InvalidProtocol as exc:
        return str(exc)
    return None


def test_every_example_validates_as_in_openpai(server: Server) -> None:
    """In-process and the server's dry run agree with each other, and with OpenPAI, on every file."""
    wrong: dict[str, str] = {}
    with server.client() as c:
        for path in job_files():
            rel = str(path.relative_to(JOBS))
            text = text_of(path)
            verdict = in_process_verdict(text)
            r = c.post("/api/v2/jobs?dryRun=true", content=text.encode(), headers={"Content-Type": "text/yaml"})
            if rel in REFUSED_BY_OPENPAI:
                if verdict is None:
                    wrong[rel] = "valid in-process, refused by OpenPAI"
                elif r.status_code != 400 or r.json().get("message") != verdict:
                    wrong[rel] = f"server {r.status_code} {r.text[:200]} vs in-process {verdict[:200]}"
            elif verdict is not None:
                wrong[rel] = f"refused in-process: {verdict[:300]}"
            elif r.status_code == 400 and "teamwise_storage" in r.text and uses_storage_plugin(protocol.parse(text)):
                continue  # refused at submit, not by validation (module docstring)
            elif r.status_code != 200:
                wrong[rel] = f"server dry run {r.status_code}: {r.text[:300]}"
    assert not wrong, json.dumps(wrong, indent=1)


def test_every_valid_example_runs_to_succeeded(server: Server) -> None:
    submitted: dict[str, str] = {}
    failures: dict[str, str] = {}
    storage: dict[str, str] = {}  # jobs using teamwise_storage -> how the platform answered
    with server.client() as c:
        for i, path in enumerate(job_files()):
            rel = str(path.relative_to(JOBS))
            if rel in REFUSED_BY_OPENPAI:
                continue
            doc = protocol.parse(text_of(path))
            name = f"example-{i}"
            r = c.post("/api/v2/jobs", content=runnable(doc, name), headers={"Content-Type": "text/yaml"})
            if r.status_code == 400 and uses_storage_plugin(doc) and "teamwise_storage" in r.text:
                storage[rel] = "refused at submit"
            elif r.status_code != 202:
                failures[rel] = f"submit {r.status_code}: {r.text[:300]}"
            else:
                submitted[rel] = f"admin~{name}"
        assert not failures, json.dumps(failures, indent=1)
        deadline = time.monotonic() + 90
        pending = dict(submitted)
        while pending and time.monotonic() < deadline:
            for rel, framework in list(pending.items()):
                state = c.get(f"/api/v2/jobs/{framework}").json()["jobStatus"]
                if state["state"] not in ("SUCCEEDED", "FAILED", "STOPPED"):
                    continue
                del pending[rel]
                if uses_storage_plugin(protocol.parse(text_of(JOBS / rel))) and state["state"] == "FAILED" \
                        and state["appExitCode"] == EXIT_PREREQUISITE_FAILED:
                    storage[rel] = "failed: plugin not available"
                elif state["state"] != "SUCCEEDED":
                    failures[rel] = _why(c, framework, state)
            time.sleep(0.2)
    assert not pending, f"still running after 90 s: {sorted(pending)}"
    assert not failures, json.dumps(failures, indent=1)
    # OpenPAI's storage plugin (teamwise_storage) is not served yet (docs/rest-api.md, storages): a job
    # using it is refused at submit naming the plugin (issue 18) or, where that refusal is not in
    # place, its tasks fail before their command with the prerequisite exit code, never anything else
    storage_jobs = {str(p.relative_to(JOBS)) for p in job_files() if str(p.relative_to(JOBS)) not in
                    REFUSED_BY_OPENPAI and uses_storage_plugin(protocol.parse(text_of(p)))}
    assert set(storage) == storage_jobs, storage
    assert len(set(storage.values())) == 1, f"the storage plugin answered two ways: {storage}"


def _why(c: httpx.Client, framework: str, state: dict[str, Any]) -> str:
    detail = c.get(f"/api/v2/jobs/{framework}").json()
    tasks = [(role, t.get("containerExitCode"), t.get("containerExitDiagnostics"))
             for role, r in detail["taskRoles"].items() for t in r["taskStatuses"] if t.get("containerExitCode")]
    return f"{state['state']} exit {state.get('appExitCode')}: {state.get('appExitDiagnostics')} {tasks[:3]}"
