"""The task spec: the one document the control plane hands the runtime for a task attempt.

It is written as JSON (mode 0600: it may carry secrets) into the task attempt's directory by the
backend, and read by the runtime. Everything the runtime needs is here, so a task can be re-run
or debugged from its directory alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TaskPeer:
    """Where one task of the job runs: used for PAI_HOST_IP_*, host lists and port lists."""

    role: str
    index: int
    ip: str | None
    ports: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class TaskRoleInfo:
    """The resource and completion facts of a task role, for the PAI_* environment."""

    instances: int
    cpu: int
    memory_mb: int
    gpu: int
    shm_mb: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    min_failed: int = 1
    min_succeeded: int = 1


@dataclass
class TaskSpec:
    """One attempt of one task. ``command`` is the rendered entrypoint; ``<% $secrets.x %>``
    references are left in it and resolved by the runtime from ``secrets``."""

    task_id: str
    task_uid: str
    framework_name: str
    username: str
    job_name: str
    virtual_cluster: str
    task_role: str
    task_index: int
    job_attempt_id: int
    task_attempt_id: int
    command: str
    gpus: list[int]
    work_dir: str
    log_dir: str
    task_roles: dict[str, TaskRoleInfo]
    peers: list[TaskPeer]
    secrets: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    #: Directory shared by the attempts of the task (``PAI_CHECKPOINT_DIR``); created if missing.
    checkpoint_dir: str | None = None
    #: Runtime plugin invocations in order (``pai_hub.protocol.prerequisites.plugin_invocations``):
    #: ``{plugin, name, parameters, failurePolicy, callbacks}``. Empty: the command runs as it is.
    plugins: list[dict[str, Any]] = field(default_factory=list)
    #: Exit spec file for failure analysis; None: ``$PAI_EXIT_SPEC`` of the runtime, else built-in.
    exit_spec: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict. Shallow on purpose (``asdict`` deep-copies every value, once per task
        launch): the containers are the spec's own, not to be changed by the caller."""
        data = dict(self.__dict__)
        data["task_roles"] = {k: dict(v.__dict__) for k, v in self.task_roles.items()}
        data["peers"] = [dict(p.__dict__) for p in self.peers]
        return data

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> TaskSpec:
        data = dict(data)
        data["task_roles"] = {k: TaskRoleInfo(**v) for k, v in data["task_roles"].items()}
        data["peers"] = [TaskPeer(**p) for p in data["peers"]]
        return cls(**data)
