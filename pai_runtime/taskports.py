"""Tasks' declared ports closed to other users' tasks: what the launcher does around each task.

A task role's ``ports`` (OpenPAI's http, ssh, tensorboard, ...) are where a task's own servers listen
— TensorBoard from the ``tensorboard`` plugin, a notebook, sshd — with no login of their own. When
tasks run as their users' own accounts, the launcher closes each such port, before the command
starts, to every uid but the platform's and the task's account (:mod:`pai_runtime.firewall`, chain
``PAI-TASKS``, service ``task-<task id>``), and opens it again when the task ends. The same user's
other tasks share the account, so a job's tasks still reach each other.

When iptables is missing or refuses, the task still runs (its ports are no worse than without
isolation) but never silently: the launcher's log says why once, and every such task's runtime.log
carries "ports not protected from other users' tasks: <why>". A launcher that dies cannot release
its rules: the control plane sweeps the rules of tasks no longer live when it opens
(:func:`sweep_stale`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from pai_runtime.accounts import ensure_account
from pai_runtime.env import _peer_ports
from pai_runtime.firewall import TASK_CHAIN, FirewallError, ServiceFirewall
from pai_runtime.isolation import IsolationPolicy
from pai_runtime.spec import TaskPeer, TaskSpec

SERVICE_PREFIX = "task-"
_MAX_PLAIN_ID = 190  # a task id longer than this is named by its hash (iptables comments are short)
NOTE = "ports not protected from other users' tasks"


def service_name(task_id: str) -> str:
    """The task's name in the firewall's rules: ``task-<task id>``, hashed when too long."""
    if len(task_id) <= _MAX_PLAIN_ID:
        return SERVICE_PREFIX + task_id
    return f"{SERVICE_PREFIX}h{hashlib.sha256(task_id.encode()).hexdigest()[:40]}"


def task_ports(spec: TaskSpec) -> list[int]:
    """Every port the task listens on by declaration: its own entry in the job's peers (or the
    ports hashed from its uid, as its environment has them), and a ``tensorboard`` plugin's
    explicit ``parameters.port``."""
    own = next((p for p in spec.peers if p.role == spec.task_role and p.index == spec.task_index),
               TaskPeer(spec.task_role, spec.task_index, None))
    ports = {int(p) for plist in _peer_ports(spec, own).values() for p in plist}
    for plugin in spec.plugins or ():
        params = plugin.get("parameters") if isinstance(plugin, dict) else None
        if plugin.get("plugin") == "tensorboard" and isinstance(params, dict):
            try:
                ports.add(int(params.get("port") or 0))
            except (TypeError, ValueError):
                pass
    return sorted(p for p in ports if 0 < p < 65536)


def _note(log_dir: str, message: str) -> None:
    """One line in the task's runtime.log, in the runtime's format; a task directory that cannot take
    it is the supervisor's to report."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        fd = os.open(f"{log_dir}/runtime.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except OSError:
        return
    try:
        os.write(fd, f"[{stamp}] [openpai-runtime] [WARN] {message}\n".encode())
    finally:
        os.close(fd)


class TaskPortGuard:
    """The launcher's guarded tasks (see module docstring). Never raises into the launcher."""

    def __init__(self, policy: IsolationPolicy, firewall: ServiceFirewall | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.policy = policy
        self._say = say or (lambda line: print(f"pai_runtime.launcher: {line}", file=sys.stderr, flush=True))
        self._said = False
        self.problem = ""  # why no port can be guarded at all
        self.firewall: ServiceFirewall | None = firewall
        if firewall is None:
            try:
                self.firewall = ServiceFirewall.for_instance(policy.firewall_tag, TASK_CHAIN)
            except ValueError as exc:  # no tag, or not one instance_tag made
                self.problem = f"the isolation policy's firewall_tag is unusable: {exc}"
        self.held: dict[str, tuple[str, list[str]]] = {}  # task id -> (service, rules added)

    def guard(self, task_dir: str, spec: dict[str, Any]) -> None:
        """Close the task's ports before its command starts (nothing to do without ports)."""
        task_id = os.path.basename(task_dir)
        try:
            parsed = TaskSpec.from_json_dict(spec)
            ports = task_ports(parsed)
            if not ports:
                return
            account = ensure_account(self.policy, parsed.username)
        except Exception:
            return  # a spec or account the supervisor will fail the task for, with the reason
        service = service_name(task_id)
        try:
            if self.firewall is None:
                raise FirewallError(self.problem)
            added = self.firewall.guard(service, ports, [account.uid], fresh=True)
        except (FirewallError, ValueError, OSError) as exc:
            if not self._said:
                self._said = True
                self._say(f"{NOTE}: {exc} (said once per launcher; each task's runtime.log says it too)")
            _note(parsed.log_dir or f"{task_dir}/logs", f"{NOTE}: {exc}")
            return
        self.held[task_id] = (service, added)

    def release(self, task_id: str) -> None:
        """The task has ended: its ports' rules go (the ports may be anyone's next)."""
        held = self.held.pop(task_id, None)
        if held is None:
            return
        try:
            assert self.firewall is not None  # nothing is held without one
            self.firewall.release(*held)
        except (FirewallError, ValueError, OSError) as exc:
            self._say(f"task {task_id}: its port rules could not be removed ({exc}); the control plane "
                      "sweeps them when it next opens")


def sweep_stale(tag: str, is_live: Callable[[str], bool], task_ids: Iterable[str],
                firewall: ServiceFirewall | None = None) -> list[str]:
    """Remove the ``tag`` control plane's task rules of every task that is not live (its launcher
    died before releasing them). ``task_ids``: the task directories' names to map rules back to
    tasks; ``is_live(task_id)`` decides. Returns the services removed; FirewallError when iptables
    cannot be asked."""
    fw = firewall or ServiceFirewall.for_instance(tag, TASK_CHAIN)
    services = {sid for tool in fw.tools for sid, _, _ in fw.rules(tool)}
    if not services:
        return []
    names = {service_name(tid): tid for tid in task_ids}
    keep = {sid for sid in services if sid in names and is_live(names[sid])}
    return fw.sweep(keep)
