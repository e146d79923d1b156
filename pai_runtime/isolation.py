"""Who a task runs as, and what it may see: the isolation policy every backend and the launcher share.

The control plane decides the policy once (``PaiHub.isolation*`` settings) and hands it, as JSON, to
whatever starts user code: the local launcher, the Slurm job script, debug shells, NNI managers.
Three modes, as JupyterHub's spawners and OpenPAI's containers draw the line:

``none``
    Everything runs as the platform's own Unix user. Right for a single-user laptop, where the one
    user is the admin anyway; wrong for a team (any task can read the platform's files).
``users``
    Each PAI user's tasks run as that user's own Unix account (created on first use, like
    JupyterHub's ``LocalAuthenticator.create_system_users``, or mapped to an existing account), with
    ``PR_SET_NO_NEW_PRIVS``; the platform's files are protected by their modes only.
``sandbox``
    ``users`` plus a bubblewrap sandbox per task: private ``/tmp``, own PID namespace, the platform's
    data directory not mounted, only the task directory, the user's home and storages writable.

``auto`` (the default) picks ``sandbox`` when the platform may switch users (root) and ``bwrap`` is
installed, ``users`` when it may switch users only, else ``none``.

This module imports nothing from ``pai_hub``: it runs inside the launcher and the Slurm job script.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from typing import Any

MODES = ("none", "users", "sandbox")


@dataclass(frozen=True)
class IsolationPolicy:
    """The isolation settings in force (see module docstring)."""

    mode: str = "none"
    #: Unix account of a PAI user: ``{username}`` is the PAI name made Unix-safe (see accounts.py).
    account_template: str = "pai-{username}"
    #: uids (and gids) given to accounts created on first use.
    uid_min: int = 40000
    uid_max: int = 49999
    #: where created accounts' homes are made (mode 0700, owned by the account).
    home_root: str = "/home"
    #: PAI user -> an existing Unix account (used as is, never created).
    accounts: dict[str, str] = field(default_factory=dict)
    #: create missing accounts (else a task of a user without an account fails with that reason).
    create_accounts: bool = True
    #: paths no task may see (the platform's data directory, its home): hidden in a sandbox.
    hidden_paths: tuple[str, ...] = ()
    #: paths tasks need read-only (the Python installation, the code of pai_runtime).
    exposed_paths: tuple[str, ...] = ()
    #: the control plane's name in its firewall rules (``pai_runtime.firewall.instance_tag`` of its
    #: data directory): the launcher labels its rules for tasks' ports with it, so the control plane
    #: that started them sweeps them, and no other does. "": the backend derives one from its run root.
    firewall_tag: str = ""

    @property
    def switches_users(self) -> bool:
        return self.mode in ("users", "sandbox")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> IsolationPolicy:
        raw = json.loads(text) if isinstance(text, str) else dict(text)
        raw["hidden_paths"] = tuple(raw.get("hidden_paths", ()))
        raw["exposed_paths"] = tuple(raw.get("exposed_paths", ()))
        policy = cls(**raw)
        if policy.mode not in MODES:
            raise ValueError(f"isolation mode {policy.mode!r}: expected one of {', '.join(MODES)}")
        return policy


def auto_mode() -> str:
    """What ``auto`` means on this machine (see module docstring)."""
    if os.geteuid() != 0:
        return "none"
    return "sandbox" if shutil.which("bwrap") else "users"
