"""How user code is started under an isolation policy: the argv prefix and the environment.

This is the one place that turns (policy, account, task paths, GPUs, memory) into what runs in front
of ``bash``. Task launches (:mod:`pai_runtime.supervisor`) and debug shells
(``pai_hub.backends.taskdir``) both call :func:`prepare`, so a shell sees exactly what its task sees.

``users``: ``setpriv`` switches to the account (real and effective ids, groups, no capabilities,
``PR_SET_NO_NEW_PRIVS``). ``sandbox``: ``bwrap`` first builds a view of the file system, then
``setpriv`` switches: the root file system read-only, a fresh ``/dev`` with only the task's GPUs,
private ``/tmp``, ``/dev/shm``, PID, IPC and UTS namespaces, the policy's hidden paths replaced by
empty ``tmpfs``, other users' homes gone, and only the task directory and the user's own home
writable. ``bwrap`` applies mounts in order, so they are sorted parents first: a path bound back
under a hidden one (the Python installation under ``/root``) appears after its parent is hidden.

Neither ``--die-with-parent`` nor ``--new-session``: tasks outlive the launcher, and a stop is a
``killpg`` of the group ``posix_spawn`` made, which must reach everything, inside the PID namespace
too (when its PID 1 dies the kernel kills the rest).

The tools in front (``bwrap``, ``setpriv``, ``prlimit``) run as root, so they get a fixed minimal
environment; the user's (which a job's ``env`` may fill with ``LD_PRELOAD``) is applied by
``env -i`` only after the switch.

Memory (``memoryMB``) is enforced: cgroup v2 ``memory.max`` in a cgroup per task where the cgroup v2
hierarchy is writable, else ``RLIMIT_AS`` (not for GPU tasks: CUDA reserves far more address space
than it uses, so an address-space limit would break it; their memory is then not enforced). CPU share: cgroup v2 ``cpu.weight``, else not enforced. The
reasons for a fallback are returned in :attr:`Prepared.notes` for the task's ``runtime.log``.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pai_runtime.accounts import Account
from pai_runtime.isolation import IsolationPolicy

STANDARD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
#: Platform variables a task may keep: the locale and the time zone.
KEPT_NAMES = ("LANG", "LC_ALL", "LANGUAGE", "TZ")
#: GPU nodes every CUDA process needs besides its own /dev/nvidiaN.
NVIDIA_SHARED_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "nvidia-caps")
CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_PARENT = "pai-tasks"
TOOLS_ENV = {"PATH": ":".join(STANDARD_PATH), "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class TaskPlace:
    """What the sandbox must know of one task (or of the task a debug shell is for)."""

    task_id: str
    task_dir: str
    work_dir: str
    gpus: Sequence[int] = ()
    memory_mb: int = 0
    cpu: int = 0
    #: more directories the task writes (its log directory, its checkpoint directory).
    writable: Sequence[str] = ()


@dataclass
class Prepared:
    """The argv prefix (absolute paths, before ``bash ...``), the environment to spawn it with, and
    what to note once in the task's runtime.log."""

    prefix: list[str]
    spawn_env: dict[str, str]
    notes: list[str] = field(default_factory=list)
    #: the task's cgroup directory (to remove when the task has ended), if one was made.
    cgroup: str | None = None


def _tool(name: str) -> str:
    found = shutil.which(name, path=TOOLS_ENV["PATH"])
    if found is None:
        raise RuntimeError(f"isolation needs `{name}`, which is not installed")
    return found


def user_path() -> str:
    """PATH for user code: the Python that runs the platform first (``python``, ``jupyter``), then
    the standard directories."""
    dirs = [os.path.dirname(sys.executable), *STANDARD_PATH]
    return ":".join(dict.fromkeys(d for d in dirs if d))


def user_environ(account: Account, platform_env: Mapping[str, str] | None = None, *,
                 term: str | None = None) -> dict[str, str]:
    """The clean environment user code starts from: nothing of the platform's but its locale."""
    platform_env = os.environ if platform_env is None else platform_env
    env = {k: platform_env[k] for k in KEPT_NAMES if k in platform_env}
    env.update(PATH=user_path(), HOME=account.home, USER=account.name, LOGNAME=account.name,
               SHELL="/bin/bash")
    if term:
        env["TERM"] = term
    return env


def _switch(account: Account, mapped: bool) -> list[str]:
    groups = "--init-groups" if mapped else "--clear-groups"
    return [_tool("setpriv"), f"--reuid={account.uid}", f"--regid={account.gid}", groups,
            "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]


def _with_env(env: Mapping[str, str]) -> list[str]:
    """``env -i K=V ...``: the user's environment, applied after the switch."""
    pairs = [f"{k}={v}" for k, v in env.items() if k and "=" not in k and "\0" not in k + v
             and not k.startswith("-")]
    return [_tool("env"), "-i", *pairs]


def _closed_ancestor(path: str) -> str | None:
    """The highest ancestor of ``path`` that others may not traverse (``/root``, mode 0700)."""
    parts = os.path.abspath(path).split("/")[1:]
    current = ""
    for part in parts[:-1]:
        current += "/" + part
        try:
            mode = os.stat(current).st_mode
        except OSError:
            return None
        if not mode & stat.S_IXOTH:
            return current
    return None


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


def gpu_nodes(gpus: Sequence[int], dev_dir: str = "/dev") -> list[str]:
    """The device nodes the task may use (names under ``dev_dir``), those that exist."""
    names = [f"nvidia{int(g)}" for g in gpus] + list(NVIDIA_SHARED_NODES)
    return [n for n in names if os.path.exists(os.path.join(dev_dir, n))]


def bwrap_args(policy: IsolationPolicy, account: Account, place: TaskPlace, *,
               dev_dir: str = "/dev") -> list[str]:
    """bwrap and its options for ``place`` (``dev_dir`` replaces ``/dev`` as the source of device
    nodes: tests give a directory of stand-ins)."""
    args = [_tool("bwrap"), "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "pai-task",
            "--ro-bind", "/", "/", "--dev", "/dev"]
    for name in gpu_nodes(place.gpus, dev_dir):
        args += ["--dev-bind", os.path.join(dev_dir, name), f"/dev/{name}"]
    args += ["--proc", "/proc", "--perms", "1777", "--tmpfs", "/dev/shm"]
    # (path, kind): kind is tmpfs (hide), ro (expose read-only) or rw (writable).
    mounts: dict[str, str] = {"/tmp": "tmpfs", "/home": "tmpfs", policy.home_root: "tmpfs"}
    for hidden in policy.hidden_paths:
        mounts[os.path.abspath(hidden)] = "tmpfs"
    exposed = [os.path.abspath(p) for p in policy.exposed_paths if os.path.exists(p)]
    for path in exposed:
        closed = _closed_ancestor(path)
        if closed is not None:
            mounts.setdefault(closed, "tmpfs")
    for path in exposed:
        mounts[path] = "ro"
    for path in (account.home, place.task_dir, place.work_dir, *place.writable):
        if path and os.path.isdir(path):
            mounts[os.path.abspath(path)] = "rw"
    # bwrap makes the missing parents of a mount point inside a tmpfs with mode 0700: make them
    # first, traversable (/root/.pyenv above the Python installation, /tmp/... above the task).
    hiding = [p for p, kind in mounts.items() if kind == "tmpfs"]
    for path in [p for p, kind in mounts.items() if kind != "tmpfs"]:
        parent = os.path.dirname(path)
        while parent != "/" and any(parent.startswith(t + "/") for t in hiding):
            mounts.setdefault(parent, "dir")
            parent = os.path.dirname(parent)
    for path in sorted(mounts, key=_depth):  # parents first; stable within one depth
        kind = mounts[path]
        if kind == "dir":
            args += ["--perms", "0755", "--dir", path]
        elif kind == "tmpfs":
            args += ["--perms", "1777", "--tmpfs", path] if path == "/tmp" else ["--tmpfs", path]
        elif kind == "ro":
            args += ["--ro-bind", path, path]
        else:
            args += ["--bind", path, path]
    args += ["--chdir", place.work_dir, "--"]
    return args


def _cgroup_v2_writable() -> bool:
    return os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers") and os.access(CGROUP_ROOT, os.W_OK)


def _make_cgroup(place: TaskPlace) -> str:
    """A cgroup for the task with memory.max and cpu.weight; raises OSError when it cannot."""
    parent = f"{CGROUP_ROOT}/{CGROUP_PARENT}"
    os.makedirs(parent, exist_ok=True)
    with open(f"{CGROUP_ROOT}/cgroup.subtree_control", "w") as f:
        f.write("+memory +cpu")
    with open(f"{parent}/cgroup.subtree_control", "w") as f:
        f.write("+memory +cpu")
    path = f"{parent}/{place.task_id}"
    os.makedirs(path, exist_ok=True)
    if place.memory_mb > 0:
        with open(f"{path}/memory.max", "w") as f:
            f.write(str(place.memory_mb << 20))
        with open(f"{path}/memory.swap.max", "w") as f:
            f.write("0")
    if place.cpu > 0:
        with open(f"{path}/cpu.weight", "w") as f:
            f.write(str(max(1, min(10000, place.cpu * 100))))
    return path


def remove_cgroup(path: str | None) -> None:
    """Remove a task's cgroup once its processes are gone (best effort)."""
    if path:
        try:
            os.rmdir(path)
        except OSError:
            pass


def _limits(place: TaskPlace) -> tuple[list[str], list[str], list[str], str | None]:
    """(outer prefix run as root before the sandbox, inner prefix after the switch, notes, cgroup)."""
    if place.memory_mb <= 0 and place.cpu <= 0:
        return [], [], [], None
    if _cgroup_v2_writable():
        try:
            path = _make_cgroup(place)
        except OSError as exc:
            reason = f"cgroup v2 not usable ({exc})"
        else:
            enter = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
            return [_tool("sh"), "-c", enter, path], [], [], path
    else:
        reason = "cgroup v2 not available"
    notes = [f"CPU share not enforced: {reason}"] if place.cpu > 0 else []
    if place.memory_mb <= 0:
        return [], [], notes, None
    if place.gpus:
        # CUDA reserves far more address space than it uses: an RLIMIT_AS of memoryMB makes it fail.
        notes.insert(0, f"memory limit not enforced: {reason}, and RLIMIT_AS would break CUDA in a GPU task")
        return [], [], notes, None
    notes.insert(0, f"memory limit by RLIMIT_AS ({place.memory_mb} MB of address space): {reason}")
    return [], [_tool("prlimit"), f"--as={place.memory_mb << 20}", "--"], notes, None


def prepare(policy: IsolationPolicy, account: Account, place: TaskPlace, user_env: Mapping[str, str], *,
            mapped: bool = False, dev_dir: str = "/dev") -> Prepared:
    """What to spawn in front of ``bash ...`` for ``place`` under ``policy`` (mode users or sandbox).

    ``user_env`` is the complete environment user code gets (see :func:`user_environ`, then the job's
    env and the PAI_* variables); ``mapped``: the account is an existing one mapped by the policy (it
    keeps its supplementary groups)."""
    if not policy.switches_users:
        raise ValueError(f"isolation mode {policy.mode!r} does not switch users")
    outer, inner, notes, cgroup = _limits(place)
    prefix = list(outer)
    if policy.mode == "sandbox":
        prefix += bwrap_args(policy, account, place, dev_dir=dev_dir)
    prefix += _switch(account, mapped)
    prefix += inner
    prefix += _with_env(user_env)
    spawn_env = dict(TOOLS_ENV)
    if "FC_POD_UID" in user_env:  # the backend recognises an orphaned task's process by it
        spawn_env["FC_POD_UID"] = user_env["FC_POD_UID"]
    return Prepared(prefix, spawn_env, notes, cgroup)
