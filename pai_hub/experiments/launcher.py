"""The PAI training service for NNI: NNI runs this as each trial's command; it runs the trial as a PAI job.

``python launcher.py SPEC.json`` (stdlib only: it runs in the NNI virtual environment). NNI (platform
``local``) starts it with the trial's ``NNI_*`` environment; it submits one PAI job (protocol v2,
``nni_<experiment>_<trial>`` in the experiment's virtual cluster, so it queues under the VC's quota and
priority like any job) whose command exports that environment, so the trial's ``nni`` SDK fetches its
parameters and reports metrics straight to the NNI manager (127.0.0.1). It then follows the job: exit
0 when it SUCCEEDED, 1 when it FAILED, 130 when stopped. SIGINT/SIGTERM (NNI cancelling the trial, or
the experiment stopping) stop the job first.

When the trials run as their owner's Unix account (spec ``ownAccount``: isolation ``users``/``sandbox``),
the job cannot enter the platform's experiment directory: uploaded files travel in the job's command and
are written into the task's own directory, where NNI's per-trial output goes too. The owner's token
never reaches the job: it stays in this process, which runs as the platform.

A job built from ``command`` + resources is written by the one job-document builder,
``pai_client/jobdoc.py`` (standard library only), loaded by its path next to this package
(``PAI_JOBDOC`` overrides it): this file may import nothing outside the standard library.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shlex
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

FORWARD = ("MULTI_PHASE", "REUSE_MODE")
FINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def _jobdoc() -> ModuleType:
    """``pai_client.jobdoc``, loaded from its file: pai_client itself needs httpx, absent here."""
    path = os.environ.get("PAI_JOBDOC") or str(Path(__file__).resolve().parents[2] / "pai_client" / "jobdoc.py")
    spec = importlib.util.spec_from_file_location("pai_jobdoc", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the job-document builder from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def job_name(exp_id: str, trial_id: str) -> str:
    return f"nni_{exp_id}_{trial_id}"


def build_protocol(spec: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """The job for one trial: the template's protocol (or one built from command + resources) with the
    trial's NNI environment exported before every command."""
    exp_id, trial_id = environ["NNI_EXP_ID"], environ["NNI_TRIAL_JOB_ID"]
    env = {k: v for k, v in environ.items() if k.startswith("NNI_") or k in FORWARD}
    env["NNI_PLATFORM"] = environ.get("NNI_PLATFORM", "local")
    steps = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    steps.append(f"export PATH={shlex.quote(spec['binDir'])}:\"$PATH\"")
    if spec.get("ownAccount"):
        steps += _own_account_steps(spec)
    else:
        steps.append(f"cd {shlex.quote(spec['codeDir'])}")
    prefix = " && ".join(steps)
    template = spec["template"]
    if template.get("protocol"):
        doc = copy.deepcopy(template["protocol"])
    else:
        jobdoc = _jobdoc()
        role = jobdoc.RoleDescription("trial", [template["command"]], cpu=int(template.get("cpu", 1)),
                                      memory_mb=int(template.get("memoryMB", 1024)), gpu=int(template.get("gpu", 0)),
                                      sku=template.get("sku"))
        doc = jobdoc.build(jobdoc.JobDescription(job_name(exp_id, trial_id), [role],
                                                 image=template.get("image", "python:3.11")))
    doc["name"] = job_name(exp_id, trial_id)
    doc.setdefault("defaults", {})["virtualCluster"] = spec["virtualCluster"]
    doc.setdefault("extras", {})["nni"] = {"experiment": spec["experimentId"], "trial": trial_id,
                                           "sequence": environ.get("NNI_TRIAL_SEQ_ID")}
    for role in doc["taskRoles"].values():
        role["commands"] = [prefix + " && " + " && ".join(role["commands"])]
    return doc


def _own_account_steps(spec: dict[str, Any]) -> list[str]:
    """The trial runs as its owner's Unix account, which cannot enter the platform's experiment
    directory: NNI's per-trial output (``trial.log``) goes to the task's own directory, and code the
    platform holds (uploaded ``files``, or none) is written there by the task itself."""
    steps = ['work="${PAI_WORK_DIR:-$PWD}"', 'export NNI_OUTPUT_DIR="$work/nni-output"']
    if not spec.get("codeInTask"):
        return [*steps, f"cd {shlex.quote(spec['codeDir'])}"]
    steps += ['mkdir -p "$work/nni-code"', 'cd "$work/nni-code"']
    for name, text in sorted((spec.get("files") or {}).items()):
        parent = os.path.dirname(name)
        if parent:
            steps.append(f"mkdir -p {shlex.quote(parent)}")
        steps.append(f"printf %s {shlex.quote(text)} > {shlex.quote(name)}")
    return steps


class Client:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token

    def call(self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json") -> Any:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=30) as r:
            data = r.read()
        return json.loads(data) if data else None


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        spec = json.load(f)
    with open(spec["tokenFile"]) as f:
        client = Client(spec["url"], f.read().strip())
    doc = build_protocol(spec, dict(os.environ))
    stopping: list[int] = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    base = doc["name"]
    for attempt in range(1, 10):  # a resumed experiment re-runs cancelled trials: nni_<exp>_<trial>_2, ...
        doc["name"] = base if attempt == 1 else f"{base}_{attempt}"
        try:
            client.call("POST", "/api/v2/jobs", json.dumps(doc).encode(), "text/yaml")
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 409:
                continue
            print(f"PAI refused the trial job: {exc.code} {exc.read().decode(errors='replace')}", flush=True)
            return 1
    else:
        print(f"PAI refused the trial job: {base} was submitted 9 times already", flush=True)
        return 1
    framework = f"{spec['username']}~{doc['name']}"
    print(f"PAI job {framework} submitted", flush=True)
    state, stop_sent = "", 0.0
    while True:
        if stopping and not stop_sent:
            stop_sent = time.monotonic()
            try:
                client.call("PUT", f"/api/v2/jobs/{framework}/executionType", b'{"value": "STOP"}')
            except (urllib.error.URLError, OSError) as exc:
                print(f"could not stop {framework}: {exc}", flush=True)
        try:
            now = client.call("GET", f"/api/v2/jobs/{framework}")["jobStatus"]["state"]
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            print(f"status of {framework}: {exc}", flush=True)
            now = state
        if now != state:
            state = now
            print(f"PAI job {framework}: {state}", flush=True)
        if state in FINAL:
            return {"SUCCEEDED": 0, "FAILED": 1}.get(state, 130)
        if stop_sent and time.monotonic() - stop_sent > 4:
            return 130  # NNI sends SIGKILL 5 s after SIGINT; the job is STOPPING
        time.sleep(0.25 if stop_sent else 1.0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
