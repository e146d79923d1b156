"""The runtime environment from a FrameworkController ``Framework`` object, as OpenPAI's runtime makes it.

Used for compatibility tests against OpenPAI's own fixtures (``runtime-test-data/framework.json``) and
for anyone feeding the runtime a real Framework. Ports come from each role's
``rest-server/port-scheduling-spec`` annotation, hashed with each task's pod UID.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pai_runtime.env import runtime_env
from pai_runtime.ports import SCHEDULE_PORT_END, SCHEDULE_PORT_START, hashed_ports

PORT_SPEC_ANNOTATION = "rest-server/port-scheduling-spec"


def _task_statuses(framework: Mapping[str, Any]) -> dict[tuple[str, int], Mapping[str, Any]]:
    out: dict[tuple[str, int], Mapping[str, Any]] = {}
    attempt = (framework.get("status") or {}).get("attemptStatus") or {}
    for role in attempt.get("taskRoleStatuses") or []:
        for task in role.get("taskStatuses") or []:
            out[(role["name"], int(task["index"]))] = task.get("attemptStatus") or {}
    return out


def env_from_framework(framework: Mapping[str, Any] | str, task_role: str, index: int,
                       work_dir: str | None = None) -> dict[str, str]:
    """Runtime variables for task ``task_role``/``index`` (FC names) of a Framework (dict or JSON text)."""
    if isinstance(framework, str):
        framework = json.loads(framework)
    statuses = _task_statuses(framework)
    peers = []
    for role in framework["spec"]["taskRoles"]:
        name = role["name"]
        annotations = ((role.get("task") or {}).get("pod") or {}).get("metadata", {}).get("annotations") or {}
        port_spec = json.loads(annotations.get(PORT_SPEC_ANNOTATION) or "{}")
        start = int(port_spec.get("schedulePortStart", SCHEDULE_PORT_START))
        end = int(port_spec.get("schedulePortEnd", SCHEDULE_PORT_END))
        for i in range(int(role.get("taskNumber", 1))):
            status = statuses.get((name, i), {})
            uid = status.get("podUID")
            ports: dict[str, list[int]] = {}
            for label, desc in (port_spec.get("ports") or {}).items():
                if "start" in desc:  # legacy form {label: {start, count}}
                    ports[label] = [int(desc["start"]) + int(desc["count"]) * i + k
                                    for k in range(int(desc["count"]))]
                elif uid:
                    ports[label] = hashed_ports(uid, label, int(desc["count"]), start, end)
            peers.append((name, i, status.get("podHostIP"), ports))
    return runtime_env(peers, task_role, index, work_dir)


def format_exports(env: Mapping[str, str]) -> str:
    """``export K='V'`` lines, as OpenPAI's ``runtime_env.sh`` (single quotes escaped for bash)."""
    return "".join("export {}='{}'\n".format(k, v.replace("'", "'\\''")) for k, v in env.items())
