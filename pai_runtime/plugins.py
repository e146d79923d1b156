"""Runtime plugins: prerequisites' callbacks and plugin behaviour, turned into one bash script.

A task spec's ``plugins`` is a list of invocations, in order (built by
``pai_hub.protocol.prerequisites.plugin_invocations``)::

    {"plugin": "cmd", "name": "install-git", "failurePolicy": "fail" | "ignore",
     "parameters": {...}, "callbacks": [{"event": "containerStart", "commands": ["..."]}]}

Each invocation is given to its **executor**, found by plugin name in the entry-point group
``pai_hub.runtime_plugins`` (built-in fallbacks: ``cmd``, ``ssh``, ``tensorboard``). An executor is a
callable ``executor(invocation, context) -> Fragments``: bash scripts for the events
``containerStart``, ``containerExit`` and ``taskSucceeds``, plus variables to export to the task.

:func:`runtime_script` writes the task's ``runtime.sh``: start scripts of every invocation in order,
then the user command, then, in reverse order, ``taskSucceeds`` (only if the command exited 0) and
``containerExit`` scripts — after a failure and after a stop too. Each script runs in a child
``bash -e`` with its output in ``runtime.log``; a failing start script fails the task (code 240,
``PrerequisiteCallbackFailed``) when the invocation's ``failurePolicy`` is ``fail`` (the default) and
is logged and skipped when it is ``ignore``. The task's exit code is the user command's.

A stop signals the task's whole process group (as a container's processes all get it), so the command
and any running callback get SIGTERM directly; the script then skips whatever has not started and
gives each exit script at most ``PAI_EXIT_CALLBACK_GRACE`` seconds (default 10) before killing it. The
backend's own stop grace (SIGKILL to the whole task) bounds everything. Children run inside a small
wrapper that records their exit status in a file: bash's ``wait`` can lose a child's status when a
trapped signal interrupts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pai_runtime.env import convert_name
from pai_runtime.exitcodes import EXIT_PREREQUISITE_FAILED
from pai_runtime.render import render_command
from pai_runtime.spec import TaskSpec
from pai_runtime.supervisor import PREREQUISITE_FAILED_FILE, RUNTIME_SCRIPT

ENTRY_POINT_GROUP = "pai_hub.runtime_plugins"
PLUGIN_PREFIX = "com.microsoft.pai.runtimeplugin."
DEFAULT_EXIT_CALLBACK_GRACE = 10.0
GRACE_ENV = "PAI_EXIT_CALLBACK_GRACE"

START, EXIT, SUCCEEDS = "containerStart", "containerExit", "taskSucceeds"
#: Callback event names as written in jobs → the runtime's three moments.
EVENTS = {"containerStart": START, "taskStarts": START, "containerExit": EXIT, "taskSucceeds": SUCCEEDS}


@dataclass
class PluginContext:
    """What an executor may use besides its invocation."""

    spec: TaskSpec
    env: Mapping[str, str]  # the task's environment (PAI_* included)
    task_dir: str
    work_dir: str
    log_dir: str
    index: int  # position of the invocation in spec.plugins
    #: the job's own directory, shared by all its tasks on this machine and owned by the task's account
    #: (made by the supervisor when it switches users, or by the backend beforehand, see
    #: :func:`pai_runtime.supervisor.ensure_job_dir`); empty when there is none.
    job_dir: str = ""


@dataclass
class Fragments:
    """What an invocation contributes: bash scripts per moment and variables for the whole task."""

    start: list[str] = field(default_factory=list)
    exit: list[str] = field(default_factory=list)
    succeeds: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def add(self, event: str, script: str) -> None:
        moment = EVENTS.get(event, event)
        {START: self.start, EXIT: self.exit, SUCCEEDS: self.succeeds}[moment].append(script)


Executor = Callable[[Mapping[str, Any], PluginContext], Fragments]


def plugin_name(name: str) -> str:
    """``com.microsoft.pai.runtimeplugin.cmd`` → ``cmd``."""
    return name[len(PLUGIN_PREFIX):] if name.startswith(PLUGIN_PREFIX) else name


def callback_fragments(invocation: Mapping[str, Any], fragments: Fragments | None = None) -> Fragments:
    """The invocation's ``callbacks`` as fragments (commands of one callback form one script)."""
    fragments = fragments or Fragments()
    for callback in invocation.get("callbacks") or []:
        commands = [str(c) for c in callback.get("commands") or []]
        if commands and callback.get("event") in EVENTS:
            fragments.add(callback["event"], "\n".join(commands))
    return fragments


# --------------------------------------------------------------------------- built-in executors


def cmd_plugin(invocation: Mapping[str, Any], ctx: PluginContext) -> Fragments:
    """``cmd``: ``callbacks`` (#5145 / OpenPAI), or ``preCommands`` (at start) and ``postCommands``
    (after the command succeeded, as OpenPAI's cmd plugin)."""
    params = invocation.get("parameters") or {}
    fragments = callback_fragments(invocation)
    if not invocation.get("callbacks"):
        callback_fragments({"callbacks": params.get("callbacks") or []}, fragments)
    pre = [str(c) for c in params.get("preCommands") or []]
    post = [str(c) for c in params.get("postCommands") or []]
    if pre:
        fragments.start.append("\n".join(pre))
    if post:
        fragments.succeeds.append("\n".join(post))
    return fragments


def _q(value: Any) -> str:
    return shlex.quote(str(value))


def job_ssh_dir(ctx: PluginContext) -> str:
    """Where the job's key pair is kept when the spec does not carry one, so that every task of the
    job finds the same one: ``<job dir>/ssh-key`` when the task runs as its user's account (the job
    directory is that account's: the ``<run_root>/tasks`` directory is root's and hidden in a
    sandbox), else beside the task attempt directories (``<run_root>/job-ssh/<md5 of the framework
    name>``)."""
    if ctx.job_dir:
        return os.path.join(ctx.job_dir, "ssh-key")
    root = os.path.dirname(os.path.dirname(ctx.task_dir))
    return os.path.join(root, "job-ssh", hashlib.md5(ctx.spec.framework_name.encode()).hexdigest())


def ssh_plugin(invocation: Mapping[str, Any], ctx: PluginContext) -> Fragments:
    """``ssh``: a per-job key pair, ``authorized_keys`` (job key + ``userssh.value``), an ssh client
    config naming every task of the job ``<role>-<index>``, and ``sshd`` on the task's ssh port.

    Parameters: ``jobssh`` (default true), ``userssh: {type, value}``, and ``jobSSH: {publicKey,
    privateKey}`` when the control plane generated the job's key pair (otherwise the first task of
    the job on this node generates one with ``ssh-keygen``). Without ``sshd`` on the node the task
    runs anyway and ``runtime.log`` says why there is no ssh access.
    """
    params = invocation.get("parameters") or {}
    ssh_dir = os.path.join(ctx.task_dir, "ssh")
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    jobssh = params.get("jobssh", True) is not False
    keys = params.get("jobSSH") or {}
    key_dir = job_ssh_dir(ctx)
    identity = os.path.join(ssh_dir, "id_job")
    if keys.get("privateKey") and keys.get("publicKey"):
        _write(identity, str(keys["privateKey"]).rstrip("\n") + "\n", 0o600)
        _write(identity + ".pub", str(keys["publicKey"]).rstrip("\n") + "\n", 0o644)
        key_dir = ""
    user_key = ""
    userssh = params.get("userssh") or {}
    if isinstance(userssh, dict) and userssh.get("value"):
        user_key = str(userssh["value"]).strip()
    port = ctx.env.get("PAI_CONTAINER_SSH_PORT", "")
    config_lines = []
    for peer in ctx.spec.peers:
        fc = convert_name(peer.role)
        ip = ctx.env.get(f"PAI_HOST_IP_{fc}_{peer.index}")
        peer_port = ctx.env.get(f"PAI_{fc}_{peer.index}_ssh_PORT", "").split(",")[0]
        if ip and peer_port:
            config_lines += [f"Host {peer.role}-{peer.index}", f"  HostName {ip}", f"  Port {peer_port}",
                             f"  IdentityFile {identity}", "  StrictHostKeyChecking no",
                             "  UserKnownHostsFile /dev/null", "  LogLevel ERROR"]
    _write(os.path.join(ssh_dir, "config"), "\n".join(config_lines) + "\n", 0o644)

    lines = [f"cd {_q(ssh_dir)}", "say() { echo \"ssh plugin: $*\"; }", ": > authorized_keys",
             "chmod 600 authorized_keys"]
    if jobssh:
        if key_dir:
            lines += [
                f"K={_q(key_dir)}",
                'if [ ! -f "$K/id_job" ]; then',
                "  if command -v ssh-keygen >/dev/null 2>&1; then",
                '    mkdir -p "$(dirname "$K")"; T=$(mktemp -d "$K.XXXXXX")',
                f'    ssh-keygen -q -t ed25519 -N "" -C {_q("pai-job " + ctx.spec.framework_name)} -f "$T/id_job"',
                '    mv -T "$T" "$K" 2>/dev/null || rm -rf "$T"',
                "  else say 'ssh-keygen is not installed on this node: no job key pair'; fi",
                "fi",
                'if [ -f "$K/id_job" ]; then cp "$K/id_job" id_job; cp "$K/id_job.pub" id_job.pub; fi',
            ]
        lines += ["[ -f id_job.pub ] && cat id_job.pub >> authorized_keys", "chmod 600 id_job 2>/dev/null || true"]
    if user_key:
        lines.append(f"echo {_q(user_key)} >> authorized_keys")
    lines += [
        "SSHD=$(command -v sshd 2>/dev/null || true)",
        '[ -z "$SSHD" ] && [ -x /usr/sbin/sshd ] && SSHD=/usr/sbin/sshd',
        'if [ -z "$SSHD" ]; then',
        "  say 'sshd is not installed on this node (looked in PATH and /usr/sbin): no ssh access to this"
        " task; the task runs without it'",
        "  exit 0",
        "fi",
        f"PORT={_q(port)}",
        "if [ -z \"$PORT\" ]; then say 'the task has no ssh port: sshd not started'; exit 0; fi",
        '[ -f host_key ] || ssh-keygen -q -t ed25519 -N "" -f host_key',
        "cat > sshd_config <<EOF",
        "Port $PORT",
        f"HostKey {ssh_dir}/host_key",
        f"AuthorizedKeysFile {ssh_dir}/authorized_keys",
        f"PidFile {ssh_dir}/sshd.pid",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "PermitUserEnvironment yes",
        "StrictModes no",
        "UsePAM no",
        "EOF",
        # the task's environment for ssh sessions (OpenPAI dumps env into ~/.ssh/environment)
        'env | grep -E "^(PAI_|FC_|CUDA_|NVIDIA_)" > environment || true',
        '"$SSHD" -f sshd_config -D -e &',
        "say \"sshd started on port $PORT (pid $!); from other tasks of the job: ssh -F $PAI_SSH_CONFIG"
        " <role>-<index>\"",
    ]
    fragments = Fragments(start=["\n".join(lines)])
    fragments.exit.append(f"[ -f {_q(ssh_dir)}/sshd.pid ] && kill $(cat {_q(ssh_dir)}/sshd.pid) 2>/dev/null; true")
    fragments.env["PAI_SSH_CONFIG"] = os.path.join(ssh_dir, "config")
    fragments.env["PAI_SSH_DIR"] = ssh_dir
    return callback_fragments(invocation, fragments)


def tensorboard_plugin(invocation: Mapping[str, Any], ctx: PluginContext) -> Fragments:
    """``tensorboard``: TensorBoard on ``port`` (default: the task's ``tensorboard`` port, else its
    ``http`` port) over ``logdir`` (a path, or ``{name: path}``; default ``<work dir>/tensorboard``).
    As in OpenPAI it runs only in task 0 of the job's first task role. Without TensorBoard installed
    the task runs anyway and ``runtime.log`` says so."""
    params = invocation.get("parameters") or {}
    first_role = next(iter(ctx.spec.task_roles), ctx.spec.task_role)
    if ctx.spec.task_role != first_role or ctx.spec.task_index != 0:
        return callback_fragments(invocation)
    port = params.get("port") or ctx.env.get("PAI_CONTAINER_HOST_tensorboard_PORT_LIST", "").split(",")[0] \
        or ctx.env.get("PAI_CURRENT_CONTAINER_PORT", "")
    logdir = params.get("logdir") or {"default": os.path.join(ctx.work_dir, "tensorboard")}
    if isinstance(logdir, dict):
        paths = {str(k): str(v) for k, v in logdir.items()}
    else:
        paths = {"default": str(logdir)}
    if len(paths) == 1:
        args = f"--logdir {_q(next(iter(paths.values())))}"
    else:
        args = "--logdir_spec " + _q(",".join(f"{k}:{v}" for k, v in paths.items()))
    script = "\n".join([
        "say() { echo \"tensorboard plugin: $*\"; }",
        f"PORT={_q(port)}",
        "if [ -z \"$PORT\" ]; then say 'no port for TensorBoard (give parameters.port or a tensorboard/http"
        " port): not started'; exit 0; fi",
        "if command -v tensorboard >/dev/null 2>&1; then TB=tensorboard",
        "elif python3 -c 'import tensorboard' >/dev/null 2>&1; then TB='python3 -m tensorboard.main'",
        "else say 'TensorBoard is not installed on this node (pip install tensorboard): not started; the"
        " task runs without it'; exit 0; fi",
        "mkdir -p " + " ".join(_q(p) for p in paths.values()),
        f"$TB {args} --port \"$PORT\" --bind_all &",
        "say \"TensorBoard started on port $PORT (pid $!)\"",
    ])
    return callback_fragments(invocation, Fragments(start=[script]))


BUILTIN_PLUGINS: dict[str, Executor] = {"cmd": cmd_plugin, "ssh": ssh_plugin, "tensorboard": tensorboard_plugin}
_registry: dict[str, Executor] | None = None


def plugin_registry() -> dict[str, Executor]:
    """Executors by name: the built-ins, overridden and extended by the ``pai_hub.runtime_plugins``
    entry points (loaded once per process, on the first task that has plugins)."""
    global _registry
    if _registry is None:
        registry = dict(BUILTIN_PLUGINS)
        try:
            from importlib.metadata import entry_points

            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    registry[ep.name] = ep.load()
                except Exception:
                    continue  # a broken plugin package must not break the others
        except Exception:
            pass
        _registry = registry
    return _registry


def _write(path: str, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- runtime.sh

_PRELUDE = r"""#!/bin/bash
# Generated by pai_runtime for task attempt %(task_id)s: prerequisites' callbacks around the command.
# Run by hand from the task directory: bash runtime.sh
exec 3>>%(runtime_log)s
__pai_log() { printf '[%%(%%Y-%%m-%%d %%H:%%M:%%S)T] [openpai-runtime] [%%s] %%s\n' -1 "$1" "$2" >&3; }
__pai_status=%(status_file)s
__pai_grace=%(grace)d
__pai_stopping=0
__pai_timedout=0
__pai_child=
# A stop signals the whole process group (the command and any running callback get it directly).
__pai_on_stop() {
  if [ "$__pai_stopping" = 0 ]; then
    __pai_stopping=1
    __pai_log INFO "stop requested: what has not started is skipped; each exit callback gets ${__pai_grace}s"
  fi
}
trap __pai_on_stop TERM INT HUP
trap '__pai_timedout=1' USR1
# Children run inside a wrapper that survives the stop signal long enough to record their status:
# bash's own wait may lose a child's status when a trapped signal interrupts it.
__pai_spawn() {  # __pai_spawn FLAGS SCRIPT
  rm -f "$__pai_status"
  ( trap ':' TERM INT HUP; trap - QUIT USR1; /bin/bash $1 -c "$2"; echo $? > "$__pai_status" ) &
  __pai_child=$!
}
__pai_kill_tree() {
  local c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do __pai_kill_tree "$c"; done
  kill -KILL "$1" 2>/dev/null
}
# __pai_reap [bounded]: wait for __pai_child; its status in __pai_rc (137 if it was killed). When
# bounded and stopping, give up after the grace period and kill what is left of it.
__pai_reap() {
  local dog=
  __pai_timedout=0
  if [ -n "$1" ] && [ "$__pai_stopping" = 1 ]; then
    ( trap 'exit 0' TERM; sleep "$__pai_grace" & wait $!; kill -0 "$__pai_child" 2>/dev/null && kill -USR1 $$ ) &
    dog=$!
  fi
  wait "$__pai_child"
  while [ "$__pai_timedout" = 0 ] && kill -0 "$__pai_child" 2>/dev/null; do wait "$__pai_child"; done
  __pai_rc=137
  if [ "$__pai_timedout" = 1 ]; then
    __pai_kill_tree "$__pai_child"
    __pai_log WARN "exit callback still running after ${__pai_grace}s: killed"
  elif [ -s "$__pai_status" ]; then
    read -r __pai_rc < "$__pai_status"
  fi
  if [ -n "$dog" ]; then kill -TERM "$dog" 2>/dev/null; fi
  __pai_child=
}
__pai_run() {  # __pai_run SCRIPT [bounded]: a callback in bash -e, output into runtime.log
  __pai_spawn -e "$1" >&3 2>&3
  __pai_reap "$2"
  return "$__pai_rc"
}
__pai_failed=
__pai_code=0
"""

_USER = r"""
if [ -n "$__pai_failed" ]; then
  __pai_code=%(failed_code)d
elif [ "$__pai_stopping" = 1 ]; then
  __pai_code=143
else
  __pai_log INFO "USER COMMAND START"
  __pai_spawn "" %(command)s
  __pai_reap
  __pai_code=$__pai_rc
  __pai_log INFO "USER COMMAND END"
fi
"""


def _grace() -> int:
    try:
        value = float(os.environ.get(GRACE_ENV, DEFAULT_EXIT_CALLBACK_GRACE))
    except ValueError:
        value = DEFAULT_EXIT_CALLBACK_GRACE
    return max(0, int(value + 0.999))


def _label(invocation: Mapping[str, Any], name: str, plugin: str) -> str:
    kind = "runtime plugin" if invocation.get("source") == "extras" else "prerequisite"
    return f"{kind} {name!r} (plugin {plugin})"


def _fail_script(message: str) -> str:
    return f"echo {_q(message)} >&2\nexit 1"


def runtime_script(spec: TaskSpec, env: dict[str, str], task_dir: str, work_dir: str, log_dir: str,
                   command: str, job_dir: str = "") -> str:
    """The text of ``runtime.sh`` for ``spec`` (whose ``plugins`` is not empty). ``env`` is the task's
    environment: variables that executors add (``Fragments.env``) are put into it. ``job_dir``: see
    :attr:`PluginContext.job_dir`."""
    registry = plugin_registry()
    prepared: list[tuple[Mapping[str, Any], Fragments]] = []
    for i, invocation in enumerate(spec.plugins):
        name = plugin_name(str(invocation.get("plugin") or "cmd"))
        executor = registry.get(name)
        if executor is None:
            known = ", ".join(sorted(registry))
            fragments = Fragments(start=[_fail_script(f"unknown runtime plugin {name!r} (known: {known})")])
        else:
            try:
                fragments = executor(invocation, PluginContext(spec, env, task_dir, work_dir, log_dir, i, job_dir))
            except Exception as exc:  # a plugin that cannot prepare fails like a failing callback
                fragments = Fragments(start=[_fail_script(
                    f"runtime plugin {name!r} could not prepare: {type(exc).__name__}: {exc}")])
        env.update(fragments.env)
        prepared.append((invocation, fragments))

    out = [_PRELUDE % {"task_id": spec.task_id, "runtime_log": _q(os.path.join(log_dir, "runtime.log")),
                       "status_file": _q(os.path.join(task_dir, ".callback.status")), "grace": _grace()}]
    marker = os.path.join(task_dir, PREREQUISITE_FAILED_FILE)
    for i, (invocation, fragments) in enumerate(prepared):
        name = str(invocation.get("name") or invocation.get("plugin") or f"plugin {i}")
        plugin = plugin_name(str(invocation.get("plugin") or "cmd"))
        label = _label(invocation, name, plugin)
        policy = "ignore" if invocation.get("failurePolicy") == "ignore" else "fail"
        out.append(f"__pai_started_{i}=0")
        out.append('if [ -z "$__pai_failed" ] && [ "$__pai_stopping" = 0 ]; then')
        out.append(f"  __pai_started_{i}=1")
        for script in fragments.start:
            script = render_command(script, spec.secrets)
            out.append('  if [ -z "$__pai_failed" ] && [ "$__pai_stopping" = 0 ]; then')
            out.append(f"    __pai_log INFO {_q(label + ': containerStart callback')}")
            out.append(f"    if ! __pai_run {_q(script)}; then")
            if policy == "fail":
                out.append(f'      __pai_log ERROR {_q(label + ": containerStart callback failed with exit code ")}'
                           f'"$__pai_rc"{_q("; failurePolicy is fail: the task fails (exit code ")}'
                           f'{EXIT_PREREQUISITE_FAILED}{_q(") without running its command")}')
                out.append(f"      __pai_failed={_q(name)}; __pai_started_{i}=0")
                out.append("      printf '{\"name\": %s, \"plugin\": %s, \"event\": \"containerStart\", \"exitCode\": %s}\\n' "
                           f"{_q(json.dumps(name))} {_q(json.dumps(plugin))} \"$__pai_rc\" > {_q(marker)}")
            else:
                out.append(f'      __pai_log WARN {_q(label + ": containerStart callback failed with exit code ")}'
                           f'"$__pai_rc"{_q("; failurePolicy is ignore: continuing")}')
            out.append("    fi")
            out.append("  fi")
        out.append("fi")
    out.append(_USER % {"failed_code": EXIT_PREREQUISITE_FAILED, "command": _q(command)})
    for i in reversed(range(len(prepared))):
        invocation, fragments = prepared[i]
        name = str(invocation.get("name") or invocation.get("plugin") or f"plugin {i}")
        plugin = plugin_name(str(invocation.get("plugin") or "cmd"))
        label = _label(invocation, name, plugin)
        if not fragments.exit and not fragments.succeeds:
            continue
        out.append(f'if [ "$__pai_started_{i}" = 1 ]; then')
        for script in fragments.succeeds:
            out.append('  if [ "$__pai_code" = 0 ] && [ "$__pai_stopping" = 0 ]; then')
            out.append(f"    __pai_log INFO {_q(label + ': taskSucceeds callback')}")
            out.append(f"    __pai_run {_q(render_command(script, spec.secrets))} || "
                       f"__pai_log WARN {_q(label + ': taskSucceeds callback failed with exit code ')}\"$__pai_rc\"")
            out.append("  fi")
        for script in fragments.exit:
            out.append(f"  __pai_log INFO {_q(label + ': containerExit callback')}")
            out.append(f"  __pai_run {_q(render_command(script, spec.secrets))} bounded || "
                       f"__pai_log WARN {_q(label + ': containerExit callback failed with exit code ')}\"$__pai_rc\"")
        out.append("fi")
    out.append('exit "$__pai_code"\n')
    return "\n".join(out)


def write_runtime_script(spec: TaskSpec, env: dict[str, str], task_dir: str, work_dir: str, log_dir: str,
                         command: str, job_dir: str = "") -> str:
    """Write ``<task_dir>/runtime.sh`` (mode 0600: it may hold secrets); returns its path."""
    path = os.path.join(task_dir, RUNTIME_SCRIPT)
    _write(path, runtime_script(spec, env, task_dir, work_dir, log_dir, command, job_dir), 0o600)
    return path
