"""The isolation policy in force, built from the ``PaiHub.isolation*`` settings (issue 16).

The settings say who tasks run as; this module adds what only the running server knows: which
paths a sandbox must hide (the platform's data directory and its own home, where tokens and
credentials live) and which it must show read-only so that a task can still run the platform's
Python, ``pai_runtime`` and NNI (the interpreter's prefixes, the package's root, NNI's
environment). See :mod:`pai_runtime.isolation` for the modes.
"""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from pai_runtime.firewall import instance_tag
from pai_runtime.isolation import MODES, IsolationPolicy, auto_mode

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # holds pai_hub, pai_runtime, pai_client


def resolve_mode(setting: str) -> str:
    """``auto`` → what this machine allows (sandbox as root with bwrap, users as root, else none)."""
    mode = (setting or "auto").lower()
    if mode == "auto":
        return auto_mode()
    if mode not in MODES:
        raise SystemExit(f"PaiHub.isolation: {setting!r} is not one of auto, {', '.join(MODES)}")
    return mode


def build_policy(setting: str, data_dir: Path, *, account_template: str, uid_min: int, uid_max: int,
                 home_root: str, accounts: Mapping[str, str], create_accounts: bool,
                 extra_hidden: Iterable[str] = ()) -> IsolationPolicy:
    """The policy for ``setting`` (auto|none|users|sandbox) on a server whose data is ``data_dir``."""
    if uid_min > uid_max:
        raise SystemExit(f"PaiHub.isolation_uid_min ({uid_min}) is above isolation_uid_max ({uid_max})")
    return IsolationPolicy(
        mode=resolve_mode(setting), account_template=account_template, uid_min=uid_min, uid_max=uid_max,
        home_root=home_root, accounts=dict(accounts), create_accounts=create_accounts,
        hidden_paths=hidden_paths(data_dir, extra_hidden), exposed_paths=exposed_paths(),
        firewall_tag=instance_tag(data_dir))  # the experiments service's tag too: one owner of both


def hidden_paths(data_dir: Path, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The platform's data directory and its user's home (never ``/``: that would hide everything)."""
    out = [str(Path(data_dir).resolve())]
    home = _platform_home()
    if home and home != "/":
        out.append(home)
    out += [str(Path(p).resolve()) for p in extra]
    return tuple(dict.fromkeys(out))


def exposed_paths() -> tuple[str, ...]:
    """What a task needs read-only to run the platform's Python and ``pai_runtime``: both
    interpreter prefixes (a venv's and the installation it points at, resolved), the package's root,
    and NNI's environment when there is one (``PAI_NNI_PYTHON`` or ``build/nni-3.0``)."""
    out = [sys.prefix, sys.base_prefix, str(Path(sys.base_prefix).resolve()),
           str(PACKAGE_ROOT)]
    nni = _nni_python()
    if nni:
        venv = Path(nni).absolute().parents[1]  # <env>/bin/python → <env>
        out += [str(venv), str(Path(nni).resolve().parents[1])]  # and the interpreter it links to
    return tuple(dict.fromkeys(os.path.normpath(p) for p in out))


def describe(policy: IsolationPolicy) -> str:
    """One line for the server's log: who tasks and notebooks run as."""
    if policy.mode == "none":
        me = pwd.getpwuid(os.geteuid()).pw_name
        return (f"isolation none: every task and notebook runs as this server's user {me} (uid {os.geteuid()}) "
                "and can read the platform's files; right for a single-user machine only "
                "(PaiHub.isolation / --isolation users|sandbox for a team)")
    how = "in a bubblewrap sandbox per task" if policy.mode == "sandbox" else "without a sandbox"
    return (f"isolation {policy.mode}: each user's tasks and notebooks run as their own Unix account "
            f"({policy.account_template}, uids {policy.uid_min}-{policy.uid_max}) {how}; hidden from them: "
            f"{', '.join(policy.hidden_paths)}")


def _platform_home() -> str:
    try:
        return str(Path(pwd.getpwuid(os.geteuid()).pw_dir).resolve())
    except KeyError:
        return ""


def _nni_python() -> str | None:
    from pai_hub.experiments.service import nni_python

    return nni_python()
