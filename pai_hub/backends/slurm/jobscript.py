"""What a Slurm batch job of the Slurm backend runs: ``python -m pai_hub.backends.slurm.jobscript TASK_DIR``.

It runs on the Slurm node, inside the allocation:

1. takes the GPUs Slurm allocated (``CUDA_VISIBLE_DEVICES`` / ``SLURM_JOB_GPUS`` set by the gres/gpu plugin)
   and writes them into ``spec.json`` so the runtime's ``CUDA_VISIBLE_DEVICES`` (and failure analysis)
   use Slurm's choice, not the orchestrator's guess;
2. records ``slurm_job.json`` (job id, node, GPUs, start time): the backend reads it as "started";
3. runs the task exactly as ``python -m pai_runtime TASK_DIR`` does (signals forwarded to the task's
   process group, ``exit.json`` written, exit datagram sent to ``--notify`` when given);
4. debug reservation: if the task failed and ``slurm.json`` asks for ``holdSeconds``, it creates the
   ``hold`` marker and keeps the allocation (and so the GPUs) while the marker exists, until the
   deadline or a signal (``scancel``). ``srun --jobid J --overlap`` opens shells in it meanwhile.

Only the standard library and :mod:`pai_runtime` are imported: this runs once per task.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import sys
import time

from pai_runtime.atomic import write_json_atomic
from pai_runtime.supervisor import SPEC_FILE, STOP_FILE

HOLD_FILE = "hold"
STARTED_FILE = "slurm_job.json"
CONFIG_FILE = "slurm.json"


def _slurm_gpus() -> list[int] | None:
    for var in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        value = os.environ.get(var)
        if value is None:
            continue
        try:
            return [int(x) for x in value.split(",") if x.strip() != ""]
        except ValueError:
            continue
    return None


def _run_task(task_dir: str, notify: str | None) -> int:
    """``python -m pai_runtime TASK_DIR`` in this process, without its argparse (15 ms a task):
    signals to the job (scancel) are forwarded to the task's process group."""
    from pai_runtime.supervisor import run_task_forwarding_signals

    return run_task_forwarding_signals(task_dir, notify)


def main(argv: list[str]) -> int:
    task_dir = argv[0]
    notify = argv[2] if len(argv) > 2 and argv[1] == "--notify" else None
    with open(f"{task_dir}/{CONFIG_FILE}") as f:
        config = json.load(f)
    spec_path = f"{task_dir}/{SPEC_FILE}"
    with open(spec_path) as f:
        spec = json.load(f)
    gpus = _slurm_gpus() if config.get("gpus", 0) else []
    if gpus is not None and gpus != spec.get("gpus"):
        spec["gpus"] = gpus
        write_json_atomic(spec_path, spec, mode=0o600)
    started = time.time()
    write_json_atomic(f"{task_dir}/{STARTED_FILE}", {
        "jobId": os.environ.get("SLURM_JOB_ID"), "node": os.environ.get("SLURMD_NODENAME"),
        "host": socket.gethostname(), "gpus": spec.get("gpus") or [], "startedAt": started,
        "pid": os.getpid()}, mode=0o600, durable=False)  # lost to a power cut: the job id is in slurm.json

    if notify and not os.path.exists(notify):
        notify = None  # another host: the backend polls exit.json instead
    code = _run_task(task_dir, notify)
    hold = float(config.get("holdSeconds") or 0)
    if code != 0 and hold > 0 and not os.path.exists(f"{task_dir}/{STOP_FILE}"):
        def leave(_signum: int, _frame: object) -> None:
            raise SystemExit(code if 0 <= code <= 255 else 255)

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, leave)
        marker = f"{task_dir}/{HOLD_FILE}"
        deadline = time.time() + hold
        with open(marker, "w") as f:
            f.write(json.dumps({"until": deadline, "jobId": os.environ.get("SLURM_JOB_ID")}))
        while os.path.exists(marker) and time.time() < deadline:
            time.sleep(1.0)
        try:
            os.unlink(marker)
        except FileNotFoundError:
            pass
    return code


def run(argv: list[str]) -> None:
    """Run the job and exit with the task's exit status (codes above 255 as 255; exit.json has the real one)."""
    rc = main(argv)
    sys.exit(rc if 0 <= rc <= 255 else 255)


def command_line(python: str, import_path: list[str] | None) -> str:
    """The shell command a batch job runs, before its arguments (``TASK_DIR [--notify SOCKET]``).

    With ``import_path`` (the control plane's own interpreter, whose package root and site-packages
    are known) Python starts with ``-S -E``: no ``site`` processing (no .pth files, no editable-install
    finder) and no PYTHON* variables, and imports only this module and :mod:`pai_runtime` from the
    given path: about 20 ms of interpreter start instead of 100 ms. Without it (another interpreter on
    the nodes), that interpreter's own site decides where packages come from."""
    code = "import sys;"
    if import_path is not None:
        code += f"sys.path[:0]={import_path!r};"
    code += "from pai_hub.backends.slurm.jobscript import run;run(sys.argv[1:])"
    flags = " -S -E" if import_path is not None else ""
    return f"exec {shlex.quote(python)}{flags} -c {shlex.quote(code)}"


if __name__ == "__main__":
    run(sys.argv[1:])
