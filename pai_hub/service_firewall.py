"""Loopback ports of per-user services closed, at the kernel, to every Unix account but their owner's.

The platform starts services for a user (an experiment's NNI manager, later TensorBoard or a notebook
server) that listen on 127.0.0.1 and have no login of their own. Binding to 127.0.0.1 keeps other
machines out, not other users of this one: any local process could call them. When tasks run as
their users' own Unix accounts (``IsolationPolicy.switches_users``), netfilter's ``owner`` match can
tell who opens a connection, so each guarded port gets, in one dedicated chain::

    -p tcp --dport PORT -m owner --uid-owner <platform uid> -j RETURN   # polling, the UI proxy
    -p tcp --dport PORT -m owner --uid-owner <owner uid>    -j RETURN   # the owner's trials
    -p tcp --dport PORT                                     -j REJECT --reject-with tcp-reset

The chain (``PAI-SERVICES``) sees only new TCP connections on the loopback (``OUTPUT -o lo --syn``),
so established traffic is never re-checked. Every rule carries a comment ``pai-hub:<instance>:<id>``:
``instance`` names the control plane (a hash of its data directory), so several control planes on one
machine never remove each other's rules, and a restarted one sweeps exactly its own stale rules.
Rules of one service are added and removed atomically (``iptables-restore --noflush``), the accepts
before the reject, so the port is never open to others while rules change.
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
#: the jump into the chain: new TCP connections on the loopback only.
JUMP = ("-o", "lo", "-p", "tcp", "--syn", "-j", CHAIN)
_SERVICE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_COMMENT = re.compile(r'--comment "?pai-hub:([0-9a-f]+):([A-Za-z0-9_.-]+)"?')
_DPORT = re.compile(r"--dport (\d+)")


class FirewallError(RuntimeError):
    """iptables is missing or refused: the service's port would be open to every local user."""


def instance_tag(data_dir: Path | str) -> str:
    """A short stable name of the control plane owning a data directory (its rules' comment)."""
    return hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]


@dataclass
class ServiceFirewall:
    """The guarded ports of one control plane (see module docstring)."""

    instance: str
    iptables: str = "iptables"
    platform_uid: int = field(default_factory=os.geteuid)

    @classmethod
    def for_data_dir(cls, data_dir: Path | str) -> ServiceFirewall:
        found = shutil.which("iptables") or shutil.which("iptables", path="/usr/sbin:/sbin")
        return cls(instance_tag(data_dir), found or "iptables")

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

    def _restore(self, lines: list[str]) -> None:
        """Apply ``-A``/``-D`` lines to the filter table in one transaction."""
        if not lines:
            return
        restore = str(Path(self.iptables).with_name(Path(self.iptables).name + "-restore"))
        if not os.path.isabs(restore):
            restore = shutil.which("iptables-restore") or "iptables-restore"
        text = "*filter\n" + "\n".join(lines) + "\nCOMMIT\n"
        done = self._run("--noflush", stdin=text, tool=restore)
        if done.returncode != 0:
            raise FirewallError(f"iptables-restore refused the rules: {done.stderr.strip() or done.stdout.strip()}")

    def check(self) -> None:
        """Make sure the chain and the jump into it exist; FirewallError says why not (never silent)."""
        listed = self._run("-S", CHAIN)
        if listed.returncode != 0:
            made = self._run("-N", CHAIN)
            if made.returncode != 0 and "exists" not in made.stderr:
                raise FirewallError(f"cannot create the iptables chain {CHAIN}: {made.stderr.strip()}")
        if self._run("-C", "OUTPUT", *JUMP).returncode != 0:
            added = self._run("-I", "OUTPUT", "1", *JUMP)
            if added.returncode != 0:
                raise FirewallError(f"cannot add the jump to {CHAIN} in OUTPUT: {added.stderr.strip()}")

    # -- guarded services ---------------------------------------------------------------------------
    def _comment(self, service: str) -> str:
        if not _SERVICE_ID.match(service):
            raise ValueError(f"service id {service!r}: letters, digits, '_', '.', '-' only")
        return f"pai-hub:{self.instance}:{service}"

    def rules(self) -> list[tuple[str, int, str]]:
        """This control plane's rules: (service id, port, the rule as ``iptables -S`` prints it)."""
        listed = self._run("-S", CHAIN)
        if listed.returncode != 0:
            return []
        out = []
        for line in listed.stdout.splitlines():
            m, port = _COMMENT.search(line), _DPORT.search(line)
            if line.startswith("-A ") and m and port and m.group(1) == self.instance:
                out.append((m.group(2), int(port.group(1)), line))
        return out

    def guarded(self) -> dict[str, int]:
        """Service id → its guarded port, for this control plane."""
        return {service: port for service, port, _ in self.rules()}

    def guard(self, service: str, port: int, owner_uids: Iterable[int]) -> None:
        """Close ``port`` on the loopback to every uid but the platform's and ``owner_uids``.
        Replaces the service's earlier rules (a resumed experiment gets a new port)."""
        comment = self._comment(service)
        self.check()
        uids = sorted({self.platform_uid, *owner_uids})
        match = f"-d 127.0.0.0/8 -p tcp --dport {int(port)}"
        tag = f'-m comment --comment "{comment}"'
        lines = [f"-D {line[3:]}" for sid, _, line in reversed(self.rules()) if sid == service]
        lines += [f"-A {CHAIN} {match} -m owner --uid-owner {uid} {tag} -j RETURN" for uid in uids]
        lines.append(f"-A {CHAIN} {match} {tag} -j REJECT --reject-with tcp-reset")
        self._restore(lines)

    def release(self, service: str) -> None:
        """Remove the service's rules (its port is closed or given back); nothing to do is fine."""
        self._comment(service)
        self._restore([f"-D {line[3:]}" for sid, _, line in reversed(self.rules()) if sid == service])

    def sweep(self, keep: Collection[str] = ()) -> list[str]:
        """Remove this control plane's rules of every service not in ``keep`` (stale after a restart);
        returns the services removed."""
        stale = [(sid, line) for sid, _, line in reversed(self.rules()) if sid not in keep]
        self._restore([f"-D {line[3:]}" for _, line in stale])
        return sorted({sid for sid, _ in stale})
