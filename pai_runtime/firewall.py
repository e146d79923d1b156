"""Loopback ports of a user's services and tasks closed, at the kernel, to every other Unix account.

The platform starts services for a user (an experiment's NNI manager) and users' tasks declare ports
(OpenPAI's ``ports`` per task role: http, ssh, tensorboard) that listen on this machine with no login
of their own. Binding to 127.0.0.1 keeps other machines out, not other users of this one: any local
process could call them. When tasks run as their users' own Unix accounts
(``IsolationPolicy.switches_users``), netfilter's ``owner`` match can tell who opens a connection, so
each guarded port gets, in one dedicated chain::

    -p tcp --dport PORT -m owner --uid-owner <platform uid> -j RETURN   # polling, the UI proxy
    -p tcp --dport PORT -m owner --uid-owner <owner uid>    -j RETURN   # the owner's own tasks
    -p tcp --dport PORT                                     -j REJECT --reject-with tcp-reset

A chain sees only new TCP connections on the loopback interface (``OUTPUT -o lo --syn``): every
connection to any of this machine's own addresses, 127.0.0.1 or not, leaves through ``lo``, and
established traffic is never re-checked. The same rules go to ``ip6tables`` when it is installed, so
``[::1]:PORT`` of a dual-stack listener is closed too. Two chains keep owners apart:
``PAI-SERVICES`` (the control plane's services, :data:`CHAIN`) and ``PAI-TASKS`` (tasks' ports, the
launcher's, :data:`TASK_CHAIN`), so a sweep by one never removes the other's rules.

Every rule carries a comment ``pai-hub:<instance>:<id>``: ``instance`` names the control plane (a
hash of its data directory, :func:`instance_tag`), so several control planes on one machine never
remove each other's rules, and a restarted one sweeps exactly its own stale rules. Rules of one
service are added and removed atomically (``iptables-restore --noflush``), the accepts before the
reject, so the port is never open to others while rules change.

Standard library only: the launcher (``pai_runtime``) uses it as well as the control plane.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

CHAIN = "PAI-SERVICES"
#: the chain of tasks' declared ports (the launcher's).
TASK_CHAIN = "PAI-TASKS"
_SERVICE_ID = re.compile(r"^[A-Za-z0-9_.~-]{1,200}$")
_COMMENT = re.compile(r'--comment "?pai-hub:([0-9a-f]+):([A-Za-z0-9_.~-]+)"?')
_INSTANCE = re.compile(r"^[0-9a-f]{1,64}$")
_DPORT = re.compile(r"--dport (\d+)")
_SBIN = "/usr/sbin:/sbin"


def jump(chain: str) -> tuple[str, ...]:
    """The rule in OUTPUT that sends new TCP connections on the loopback into ``chain``."""
    return ("-o", "lo", "-p", "tcp", "--syn", "-j", chain)


#: the jump into the services' chain.
JUMP = jump(CHAIN)


class FirewallError(RuntimeError):
    """iptables is missing or refused: the port would be open to every local user."""


def instance_tag(data_dir: Path | str) -> str:
    """A short stable name of the control plane owning a data directory (its rules' comment)."""
    return hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]


def find_tool(name: str) -> str | None:
    """``name`` on PATH or in the sbin directories (a launcher's PATH may lack them)."""
    return shutil.which(name) or shutil.which(name, path=_SBIN)


@dataclass
class ServiceFirewall:
    """The guarded ports of one control plane in one chain (see module docstring).

    ``iptables`` is the IPv4 tool; ``ip6tables`` the IPv6 one, or "" to leave IPv6 alone. The
    chain and its jump are checked once (:meth:`check`) and again only after a change failed."""

    instance: str
    iptables: str = "iptables"
    platform_uid: int = field(default_factory=os.geteuid)
    chain: str = CHAIN
    ip6tables: str = ""
    _ready: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _INSTANCE.match(self.instance):  # else its rules could be added but never found again
            raise ValueError(f"firewall instance {self.instance!r}: 1-64 lowercase hex digits (instance_tag)")

    @classmethod
    def for_data_dir(cls, data_dir: Path | str, chain: str = CHAIN) -> ServiceFirewall:
        return cls.for_instance(instance_tag(data_dir), chain)

    @classmethod
    def for_instance(cls, instance: str, chain: str = CHAIN) -> ServiceFirewall:
        return cls(instance, find_tool("iptables") or "iptables", chain=chain, ip6tables=find_tool("ip6tables") or "")

    @property
    def tools(self) -> list[str]:
        return [self.iptables, *([self.ip6tables] if self.ip6tables else [])]

    # -- running iptables ---------------------------------------------------------------------------
    def _run(self, *args: str, stdin: str | None = None, tool: str | None = None) -> subprocess.CompletedProcess:
        exe = tool or self.iptables
        try:
            return subprocess.run([exe, "-w", "10", *args], input=stdin, capture_output=True, text=True,
                                  timeout=30, check=False)
        except FileNotFoundError as exc:
            raise FirewallError(f"{exe} is not installed (apt-get install iptables)") from exc
        except subprocess.TimeoutExpired as exc:
            raise FirewallError(f"{exe} did not answer in 30 s (the xtables lock?)") from exc

    def _restore(self, lines: list[str], tools: Iterable[str] | None = None) -> None:
        """Apply ``-A``/``-D`` lines to the filter table in one transaction per address family."""
        if not lines:
            return
        text = "*filter\n" + "\n".join(lines) + "\nCOMMIT\n"
        for tool in (self.tools if tools is None else tools):
            restore = str(Path(tool).with_name(Path(tool).name + "-restore"))
            if not os.path.isabs(restore):
                restore = find_tool(Path(restore).name) or restore
            done = self._run("--noflush", stdin=text, tool=restore)
            if done.returncode != 0:
                self._ready = False  # the chain may have been removed behind our back: check again
                raise FirewallError(f"{Path(restore).name} refused the rules: "
                                    f"{done.stderr.strip() or done.stdout.strip()}")

    def check(self) -> None:
        """Make sure the chain and the jump into it exist; FirewallError says why not (never silent)."""
        for tool in self.tools:
            listed = self._run("-S", self.chain, tool=tool)
            if listed.returncode != 0:
                made = self._run("-N", self.chain, tool=tool)
                if made.returncode != 0 and "exists" not in made.stderr:
                    raise FirewallError(f"cannot create the {Path(tool).name} chain {self.chain}: "
                                        f"{made.stderr.strip()}")
            if self._run("-C", "OUTPUT", *jump(self.chain), tool=tool).returncode != 0:
                added = self._run("-I", "OUTPUT", "1", *jump(self.chain), tool=tool)
                if added.returncode != 0:
                    raise FirewallError(f"cannot add the jump to {self.chain} in OUTPUT ({Path(tool).name}): "
                                        f"{added.stderr.strip()}")
        self._ready = True

    # -- guarded services ---------------------------------------------------------------------------
    def _comment(self, service: str) -> str:
        if not _SERVICE_ID.match(service):
            raise ValueError(f"service id {service!r}: letters, digits, '_', '.', '~', '-' only")
        return f"pai-hub:{self.instance}:{service}"

    def rules(self, tool: str | None = None) -> list[tuple[str, int, str]]:
        """This control plane's rules in the chain (IPv4 unless ``tool`` names ip6tables): (service
        id, port, the rule as ``iptables -S`` prints it)."""
        listed = self._run("-S", self.chain, tool=tool)
        if listed.returncode != 0:
            return []
        out = []
        for line in listed.stdout.splitlines():
            m, port = _COMMENT.search(line), _DPORT.search(line)
            if line.startswith("-A ") and m and port and m.group(1) == self.instance:
                out.append((m.group(2), int(port.group(1)), line))
        return out

    def guarded(self) -> dict[str, int]:
        """Service id → its guarded port (the last one, for a service with several)."""
        return {service: port for service, port, _ in self.rules()}

    def guarded_ports(self, tool: str | None = None) -> dict[str, list[int]]:
        """Service id → every port guarded for it (IPv4 unless ``tool`` names ip6tables)."""
        out: dict[str, set[int]] = {}
        for service, port, _ in self.rules(tool):
            out.setdefault(service, set()).add(port)
        return {service: sorted(ports) for service, ports in out.items()}

    def rule_lines(self, service: str, ports: int | Iterable[int], owner_uids: Iterable[int]) -> list[str]:
        """The ``-A`` lines that close ``ports`` to all but the platform and ``owner_uids``."""
        tag = f'-m comment --comment "{self._comment(service)}"'
        uids = sorted({self.platform_uid, *owner_uids})
        lines = []
        for port in sorted({int(ports)} if isinstance(ports, int) else {int(p) for p in ports}):
            if not 0 < port < 65536:
                raise ValueError(f"port {port} out of range")
            match = f"-p tcp --dport {port}"
            lines += [f"-A {self.chain} {match} -m owner --uid-owner {uid} {tag} -j RETURN" for uid in uids]
            lines.append(f"-A {self.chain} {match} {tag} -j REJECT --reject-with tcp-reset")
        return lines

    def guard(self, service: str, port: int | Iterable[int], owner_uids: Iterable[int], *,
              fresh: bool = False) -> list[str]:
        """Close ``port`` (or several) on this machine to every uid but the platform's and
        ``owner_uids``. Replaces the service's earlier rules (a resumed experiment gets a new port),
        unless ``fresh`` says it has none (a task attempt is guarded once: one ``iptables-restore``
        per family and nothing else). Returns the lines added, for :meth:`release`."""
        added = self.rule_lines(service, port, owner_uids)
        if not self._ready:
            self.check()
        for tool in self.tools:
            old = [] if fresh else [f"-D {line[3:]}" for sid, _, line in reversed(self.rules(tool)) if sid == service]
            self._restore(old + added, [tool])
        return added

    def release(self, service: str, added: list[str] | None = None) -> None:
        """Remove the service's rules (its port is closed or given back); nothing to do is fine.
        With ``added`` (what :meth:`guard` returned) the rules are deleted as they were written,
        without listing the chain first; if that fails they are looked up."""
        self._comment(service)
        for tool in self.tools:
            if added:
                try:
                    self._restore([f"-D {line[3:]}" for line in reversed(added)], [tool])
                    continue
                except FirewallError:
                    pass
            self._restore([f"-D {line[3:]}" for sid, _, line in reversed(self.rules(tool)) if sid == service],
                          [tool])

    def sweep(self, keep: Collection[str] = ()) -> list[str]:
        """Remove this control plane's rules in the chain of every service not in ``keep`` (stale
        after a restart); returns the services removed."""
        removed: set[str] = set()
        for tool in self.tools:
            stale = [(sid, line) for sid, _, line in reversed(self.rules(tool)) if sid not in keep]
            self._restore([f"-D {line[3:]}" for _, line in stale], [tool])
            removed.update(sid for sid, _ in stale)
        return sorted(removed)
