"""Local backend isolation with real Unix accounts, real bubblewrap sandboxes and real processes.

One scenario per isolation mode, run once per module: user B starts a task that stays alive after
writing into its work directory and its home; then a task of user A and a debug shell of A (driven
through its PTY) probe B's files, B's processes and the platform's data directory. Every probe is its
own test. In mode ``sandbox`` each must be denied; in mode ``none`` (how the local backend ran before
isolation existed) the same probes succeed, which is what makes these tests fail on that code.

GPU devices: there are no real ones here, so the sandbox's /dev is checked with stand-in device
files in tests/pai_runtime/test_sandbox.py (it calls the same ``pai_runtime.sandbox.prepare``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from pai_hub.backends.base import TaskExit, TaskLaunch, TaskRunning
from pai_hub.backends.local import LocalBackend
from pai_runtime import accounts
from pai_runtime.accounts import Account, ensure_account
from pai_runtime.exitcodes import EXIT_RUNTIME_FAILURE
from pai_runtime.isolation import IsolationPolicy
from pai_runtime.spec import TaskPeer, TaskRoleInfo, TaskSpec
from tests.requirements import require_tool
from tests.terminal import terminal_output
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
CANARY_NAME = "PLATFORM_ONLY_CANARY"

#: What A tries, in bash: name and command. Paths are filled in per scenario.
PROBES = {
    "read B's work file": "cat {b_work}/bwork.txt",
    "write B's work dir": "touch {b_work}/from-a",
    "list B's task dir": "ls {b_task}",
    "read B's spec.json": "cat {b_task}/spec.json",
    "read B's runtime.log": "cat {b_task}/runtime.log",
    "read B's home": "cat {b_home}/bfile",
    "write B's home": "touch {b_home}/from-a",
    "list the data dir": "ls -a {data}/ | grep -e admin-token -e sqlite -e secret",
    "read the database": "cat {data}/pai.sqlite",
    "read the admin token": "cat {data}/admin-token",
    "read the hub secret": "cat {data}/jupyterhub_cookie_secret",
    "write the data dir": "touch {data}/from-a",
    "signal B's process": "kill -0 {b_pid}",
    "see B's processes": "ps -eo uid= | grep -qw {b_uid}",
}


def probe_script(paths: dict[str, str]) -> str:
    lines = ['t() { if bash -c "$2" >/dev/null 2>&1; then echo "PROBE[$1]=allowed"; '
             'else echo "PROBE[$1]=denied"; fi; }']
    for i, (_, command) in enumerate(PROBES.items()):
        lines.append(f"t {i} {_quote(command.format(**paths))}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def parse_probes(output: str) -> dict[str, str]:
    names = list(PROBES)
    return {names[int(i)]: verdict for i, verdict in re.findall(r"PROBE\[(\d+)\]=(\w+)", output)}


def make_spec(task_id: str, user: str, command: str, *, memory_mb: int = 4096, **extra: object) -> dict:
    spec = TaskSpec(
        task_id=task_id, task_uid=f"uid-{task_id}", framework_name=f"{user}~job", username=user,
        job_name="job", virtual_cluster="default", task_role="main", task_index=0,
        job_attempt_id=0, task_attempt_id=0, command=command, gpus=[], work_dir="", log_dir="",
        task_roles={"main": TaskRoleInfo(instances=1, cpu=1, memory_mb=memory_mb, gpu=0)},
        peers=[TaskPeer("main", 0, None)],
    )
    data = spec.to_json_dict()
    data.update(extra)
    return data


def launch(task_id: str, user: str, command: str, **kw: object) -> TaskLaunch:
    return TaskLaunch(task_id=task_id, node="local", gpus=(), spec=make_spec(task_id, user, command, **kw))


async def wait_exit(backend: LocalBackend, task_id: str, timeout: float = 60) -> TaskExit:
    async def consume() -> TaskExit:
        async for event in backend.events():
            if isinstance(event, TaskExit) and event.task_id == task_id:
                return event
        raise AssertionError("events ended")

    return await asyncio.wait_for(consume(), timeout)


def processes_of(uid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info["uids"]
        if uids is not None and uids.real == uid:
            found.append(proc)
    return found


@dataclass
class World:
    """The platform's files and two users, shared by one module's scenarios."""

    root: Path
    data: Path
    policy: IsolationPolicy
    a: str
    b: str
    made: list[str] = field(default_factory=list)

    def account(self, user: str) -> Account:
        return ensure_account(self.policy, user)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if os.geteuid() != 0:
        pytest.fail("isolation tests need root (CI runs them as root)", pytrace=False)
    require_tool("bwrap", "apt-get install bubblewrap")
    require_tool("setpriv", "apt-get install util-linux")
    require_tool("useradd", "apt-get install passwd")
    root = tmp_path_factory.mktemp("iso")
    data = root / "platform"
    data.mkdir(mode=0o700)
    for name, text in (("admin-token", "ADMIN-TOKEN-123"), ("pai.sqlite", "SQLite format 3"),
                       ("jupyterhub_cookie_secret", "COOKIE-SECRET")):
        (data / name).write_text(text)
        (data / name).chmod(0o600)
    home = root / "home"
    home.mkdir(mode=0o755)
    policy = IsolationPolicy(
        mode="sandbox", account_template="pait-{username}", uid_min=47000, uid_max=47999,
        home_root=str(home), hidden_paths=(str(data),),
        exposed_paths=(sys.prefix, sys.base_prefix, str(REPO)))
    w = World(root, data, policy, a=f"a{secrets.token_hex(3)}", b=f"b{secrets.token_hex(3)}")
    w.made += [accounts.unix_account_name(policy, u) for u in (w.a, w.b)]
    os.environ[CANARY_NAME] = "leaked"
    try:
        yield w
    finally:
        os.environ.pop(CANARY_NAME, None)
        for name in w.made:
            for proc in processes_of(_uid(name)):
                proc.kill()
            subprocess.run(["userdel", name], capture_output=True)
            subprocess.run(["groupdel", name], capture_output=True)
        accounts._cache.clear()


def _uid(name: str) -> int:
    try:
        import pwd

        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return -1


@dataclass
class Outcome:
    task: dict[str, str]
    shell: dict[str, str]
    task_output: str
    shell_output: str
    env: dict[str, str]
    b_left: list[int]
    b_stop: TaskExit | None
    adopted: object


async def scenario(w: World, mode: str) -> Outcome:
    """B's task runs; A's task and A's debug shell probe; B's task is adopted by a new backend and
    stopped."""
    run_root = w.data / f"run-{mode}"
    isolation = w.policy if mode == "sandbox" else None
    b_acc = w.account(w.b)
    w.account(w.a)
    b_home = b_acc.home
    # In mode none B's task runs as root and has no home of its own: it writes into B's account home.
    backend = LocalBackend(run_root, simulated_gpus=0, isolation=isolation)
    await backend.open()
    b_id, a_id = f"b-{mode}", f"a-{mode}"
    b_task = backend.task_dir(b_id)
    try:
        await backend.start(launch(b_id, w.b, f"echo bwork > bwork.txt; echo bsecret > {b_home}/bfile; "
                                   "touch ready; exec sleep 120"))
        wait_for(lambda: (b_task / "work" / "ready").exists(), 30, "B's task never got ready")
        b_pid = int(_pid_json(b_task)["taskPid"])
        if isolation:  # the task's own process, inside the sandbox: B's sleep
            b_pid = wait_for(lambda: [p.pid for p in processes_of(b_acc.uid)], 10)[0]
        paths = {"b_work": str(b_task / "work"), "b_task": str(b_task), "b_home": b_home,
                 "data": str(w.data), "b_pid": str(b_pid), "b_uid": str(b_acc.uid if isolation else 0)}
        script = probe_script(paths)
        await backend.start(launch(a_id, w.a, script + "env > env.txt; id -u > id.txt"))
        a_exit = await wait_exit(backend, a_id)
        assert a_exit.exit_code == 0, backend.read_log(a_id, "all")
        task_output = backend.read_log(a_id, "stdout").decode()
        env_text = (backend.task_dir(a_id) / "work" / "env.txt").read_text()
        env = dict(line.split("=", 1) for line in env_text.splitlines() if "=" in line)
        env["__id"] = (backend.task_dir(a_id) / "work" / "id.txt").read_text().strip()
        terminal = backend.exec_shell(a_id)
        shell_output = await asyncio.to_thread(terminal_output, terminal,
                                               script + 'echo "SHELL[$(id -u)][$HOME]"; exit\n', 60)
    except BaseException:
        await backend.close()
        raise
    await backend.close()
    # A new control plane adopts B's running task, and its stop ends every process of it.
    again = LocalBackend(run_root, simulated_gpus=0, isolation=isolation)
    await again.open()
    try:
        adopted = await again.adopt([b_id])
        await again.stop(b_id, grace=1.0)
        b_stop = await wait_exit(again, b_id, 30)
    finally:
        await again.close()
    b_left = []
    if isolation:
        wait_for(lambda: not processes_of(b_acc.uid), 10, "B's processes outlived its stop")
        b_left = [p.pid for p in processes_of(b_acc.uid)]
    else:
        wait_for(lambda: not psutil.pid_exists(b_pid) or psutil.Process(b_pid).status() == "zombie", 10)
    return Outcome(parse_probes(task_output), parse_probes(shell_output), task_output, shell_output, env,
                   b_left, b_stop, adopted)


def _pid_json(task_dir: Path) -> dict:
    import json

    return wait_for(lambda: json.loads((task_dir / "pid.json").read_text())
                    if (task_dir / "pid.json").exists() else None, 10)


@pytest.fixture(scope="module")
def sandboxed(world: World) -> Outcome:
    return asyncio.run(scenario(world, "sandbox"))


@pytest.fixture(scope="module")
def unisolated(world: World) -> Outcome:
    return asyncio.run(scenario(world, "none"))


@pytest.mark.parametrize("probe", list(PROBES))
def test_a_task_of_a_is_denied(sandboxed: Outcome, probe: str) -> None:
    assert sandboxed.task.get(probe) == "denied", sandboxed.task_output


@pytest.mark.parametrize("probe", list(PROBES))
def test_a_debug_shell_of_a_is_denied(sandboxed: Outcome, probe: str) -> None:
    assert sandboxed.shell.get(probe) == "denied", sandboxed.shell_output


@pytest.mark.parametrize("probe", list(PROBES))
def test_without_isolation_the_same_probe_succeeds(unisolated: Outcome, probe: str) -> None:
    """The probes are real: run as the platform's user (mode none), each of them gets through."""
    assert unisolated.task.get(probe) == "allowed", unisolated.task_output
    assert unisolated.shell.get(probe) == "allowed", unisolated.shell_output


def test_the_task_runs_as_its_users_account_with_its_home(world: World, sandboxed: Outcome) -> None:
    a = world.account(world.a)
    assert sandboxed.env["__id"] == str(a.uid)
    assert sandboxed.env["HOME"] == a.home
    assert sandboxed.env["USER"] == a.name
    assert sandboxed.env["PATH"].split(":")[0] == os.path.dirname(sys.executable)


def test_no_platform_variable_reaches_the_task(sandboxed: Outcome, unisolated: Outcome) -> None:
    assert CANARY_NAME not in sandboxed.env
    assert unisolated.env.get(CANARY_NAME) == "leaked"  # how it was: the platform's environment
    assert ".cargo" not in sandboxed.env["PATH"]


def test_the_debug_shell_starts_clean_as_the_tasks_account(world: World, sandboxed: Outcome,
                                                          unisolated: Outcome) -> None:
    a = world.account(world.a)
    assert "No such file or directory" not in sandboxed.shell_output, sandboxed.shell_output
    assert f"SHELL[{a.uid}][{a.home}]" in sandboxed.shell_output, sandboxed.shell_output
    assert f"SHELL[0][{os.environ.get('HOME')}]" in unisolated.shell_output  # how it was: root


def test_users_mode_reaches_its_own_task_dir_without_a_sandbox(world: World) -> None:
    """Mode users: no bind mounts, so the tasks directory must be passable (0711) for the account to
    append to its runtime.log by path (RUNTIME_LOG_PIPE); the run root's parents are too."""
    users = IsolationPolicy(**{**world.policy.__dict__, "mode": "users"})
    base = Path(tempfile.mkdtemp(prefix="pai-users-", dir="/tmp"))
    base.chmod(0o755)

    async def main() -> tuple[TaskExit, str, str]:
        backend = LocalBackend(base / "run", simulated_gpus=0, isolation=users)
        await backend.open()
        try:
            await backend.start(launch("u", world.a, 'id -u; echo from-task >> "$RUNTIME_LOG_PIPE"; '
                                       'cat ../spec.json 2>/dev/null || echo spec-closed; ls .. || true'))
            event = await wait_exit(backend, "u")
            return event, backend.read_log("u", "stdout").decode(), backend.read_log("u", "runtime.log").decode()
        finally:
            await backend.close()
            shutil.rmtree(base, ignore_errors=True)

    event, stdout, runtime_log = asyncio.run(main())
    assert event.exit_code == 0, stdout
    assert stdout.split()[:2] == [str(world.account(world.a).uid), "spec-closed"], stdout
    assert "from-task" in runtime_log


def test_the_stopped_task_was_adopted_and_left_nothing(sandboxed: Outcome) -> None:
    assert [type(e) for e in sandboxed.adopted] == [TaskRunning]  # type: ignore[attr-defined]
    assert sandboxed.b_stop is not None and sandboxed.b_stop.exit_code != 0
    assert sandboxed.b_left == []


def test_task_files_are_closed_to_others(world: World, sandboxed: Outcome) -> None:
    task = world.data / "run-sandbox" / "tasks" / "b-sandbox"
    b = world.account(world.b)
    assert oct(task.stat().st_mode & 0o777) == oct(0o711) and task.stat().st_uid == 0
    for name in ("spec.json", "pid.json", "exit.json", "claim"):
        st = (task / name).stat()
        assert (st.st_uid, st.st_mode & 0o077) == (0, 0), name
    st = (task / "work").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (b.uid, 0o700)
    st = (task / "runtime.log").stat()
    assert (st.st_uid, st.st_mode & 0o077) == (b.uid, 0)


def test_memory_limit_is_enforced(world: World) -> None:
    grab = f"{sys.executable} -c 'b = bytearray(600 << 20); b[-1] = 1; print(len(b))'"

    async def main() -> tuple[TaskExit, TaskExit, str]:
        backend = LocalBackend(world.data / "run-mem", simulated_gpus=0, isolation=world.policy)
        await backend.open()
        try:
            await backend.start(launch("small", world.a, grab, memory_mb=2048))
            small = await wait_exit(backend, "small")
            await backend.start(launch("big", world.a, grab, memory_mb=300))
            big = await wait_exit(backend, "big")
            return small, big, backend.read_log("big", "runtime.log").decode()
        finally:
            await backend.close()

    small, big, runtime_log = asyncio.run(main())
    assert small.exit_code == 0
    assert big.exit_code != 0
    assert "memory limit by" in runtime_log


def test_an_account_error_fails_the_task_with_its_reason(world: World) -> None:
    policy = IsolationPolicy(**{**world.policy.__dict__, "accounts": {"ghost": "pait-no-such-user"}})

    async def main() -> tuple[TaskExit, str]:
        backend = LocalBackend(world.data / "run-ghost", simulated_gpus=0, isolation=policy)
        await backend.open()
        try:
            await backend.start(launch("g", "ghost", "echo never"))
            return await wait_exit(backend, "g"), backend.read_log("g", "runtime.log").decode()
        finally:
            await backend.close()

    event, runtime_log = asyncio.run(main())
    assert event.exit_code == EXIT_RUNTIME_FAILURE
    assert "pait-no-such-user" in (event.record or {}).get("error", ""), event
    assert "pait-no-such-user" in runtime_log


def test_callbacks_run_as_the_user_and_logs_never_show_secrets(world: World) -> None:
    plugin = {"plugin": "cmd", "name": "prep", "failurePolicy": "fail", "parameters": {},
              "callbacks": [{"event": "containerStart",
                             "commands": ["id -u > cb.txt; test '<% $secrets.pw %>' = s3cr3t-pw"]}]}

    async def main() -> tuple[TaskExit, Path, str]:
        backend = LocalBackend(world.data / "run-cb", simulated_gpus=0, isolation=world.policy)
        await backend.open()
        try:
            await backend.start(launch("cb", world.a, "test '<% $secrets.pw %>' = s3cr3t-pw",
                                       plugins=[plugin], secrets={"pw": "s3cr3t-pw"}))
            event = await wait_exit(backend, "cb")
            return event, backend.task_dir("cb"), backend.read_log("cb", "all").decode()
        finally:
            await backend.close()

    event, task, all_log = asyncio.run(main())
    assert event.exit_code == 0, all_log
    assert (task / "work" / "cb.txt").read_text().strip() == str(world.account(world.a).uid)
    for name in ("runtime.log", "stdout", "stderr"):
        if (task / name).exists():
            assert b"s3cr3t-pw" not in (task / name).read_bytes(), name


def test_a_jobs_tasks_share_one_ssh_key_pair_in_a_job_dir_their_account_owns(world: World) -> None:
    """The ssh plugin's job key pair is made by the first task and found by the others: in a job
    directory the supervisor made for the account (``<run_root>/tasks`` is root's and, in a sandbox,
    not even the same directory in two tasks)."""
    ssh = {"plugin": "ssh", "name": "ssh", "failurePolicy": "fail", "parameters": {"jobssh": True}}
    require_tool("ssh-keygen", "apt-get install openssh-client")
    show = 'cat "$PAI_SSH_DIR/id_job.pub"; id -u'

    async def main() -> tuple[dict[str, TaskExit], dict[str, str]]:
        backend = LocalBackend(world.data / "run-ssh", simulated_gpus=0, isolation=world.policy)
        await backend.open()
        try:
            exits: dict[str, TaskExit] = {}
            for tid, index in (("ssh-0", 0), ("ssh-1", 1)):
                spec = make_spec(tid, world.a, show, plugins=[ssh])
                spec.update(task_index=index, peers=[{"role": "main", "index": i, "ip": None} for i in (0, 1)])
                await backend.start(TaskLaunch(task_id=tid, node="local", gpus=(), spec=spec))
                exits[tid] = await wait_exit(backend, tid)
            return exits, {t: backend.read_log(t, "all").decode() for t in exits}
        finally:
            await backend.close()

    exits, logs = asyncio.run(main())
    a = world.account(world.a)
    assert all(e.exit_code == 0 for e in exits.values()), logs
    keys = {t: log.splitlines()[0] for t, log in logs.items()}
    assert keys["ssh-0"].startswith("ssh-ed25519 ") and keys["ssh-0"] == keys["ssh-1"], logs
    assert all(log.splitlines()[-1] == str(a.uid) for log in logs.values()), logs
    jobs = world.data / "run-ssh" / "jobs"
    assert (jobs.stat().st_uid, jobs.stat().st_mode & 0o777) == (0, 0o711)
    [job_dir] = list(jobs.iterdir())
    st = job_dir.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (a.uid, 0o700)
    assert (job_dir / "ssh-key" / "id_job.pub").read_text().strip() == keys["ssh-0"]


def test_signals_in_the_sandbox_are_recorded_as_signals(world: World) -> None:
    """bwrap turns its command's death by signal N into exit code 128+N; the waiter in the sandbox
    reports the real status: a task that kills itself, one stopped by the platform (SIGTERM reaches
    the command, not bwrap), and one whose TERM trap cleans up within the stop's grace."""
    trap = "trap 'sleep 0.5; echo cleaned > cleaned; exit 0' TERM; touch ready; sleep 60 & wait"

    async def main() -> dict[str, TaskExit]:
        backend = LocalBackend(world.data / "run-sig", simulated_gpus=0, isolation=world.policy)
        await backend.open()
        try:
            got = {}
            await backend.start(launch("self", world.a, "echo before; kill -9 $$"))
            got["self"] = await wait_exit(backend, "self")
            await backend.start(launch("exit137", world.a, "exit 137"))
            got["exit137"] = await wait_exit(backend, "exit137")
            for tid, command in (("stopped", "touch ready; sleep 60"), ("trapped", trap)):
                await backend.start(launch(tid, world.a, command))
                ready = backend.task_dir(tid) / "work" / "ready"
                await asyncio.to_thread(wait_for, ready.exists, 30, f"{tid} never got ready")
                await backend.stop(tid, grace=10.0)
                got[tid] = await wait_exit(backend, tid, 30)
            return got
        finally:
            await backend.close()

    got = asyncio.run(main())
    records = {tid: event.record or {} for tid, event in got.items()}
    assert (got["self"].exit_code, records["self"].get("signal")) == (137, 9), records["self"]
    assert (got["exit137"].exit_code, records["exit137"].get("signal")) == (137, None), records["exit137"]
    assert (got["stopped"].exit_code, records["stopped"].get("signal")) == (143, 15), records["stopped"]
    assert (got["trapped"].exit_code, records["trapped"].get("signal")) == (0, None), records["trapped"]
    cleaned = world.data / "run-sig" / "tasks" / "trapped" / "work" / "cleaned"
    assert cleaned.read_text() == "cleaned\n"


# -- tasks' declared ports (issue 16, Network) ----------------------------------------------------------

#: Run by a task: connect to the port on 127.0.0.1 and on ::1, print what happened to each.
CONNECT = ("import socket, sys\n"
           "for host in ('127.0.0.1', '::1'):\n"
           "    try:\n"
           "        socket.create_connection((host, int(sys.argv[1])), timeout=10).close(); print(host, 'open')\n"
           "    except OSError as exc:\n"
           "        print(host, type(exc).__name__)\n")


def _system_python() -> str:
    """The system's python3: an account without a sandbox may not enter the project's (under /root)."""
    found = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if found is None:
        pytest.fail("no system python3 (apt-get install python3): tasks of other accounts run it", pytrace=False)
    return found


def _connect_command(port: int) -> str:
    return f"{_system_python()} -c {_quote(CONNECT)} {port}"


def _connects(output: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in output.splitlines() if line.startswith(("127.0.0.1 ", "::1 ")))


@dataclass
class PortsOutcome:
    port: int
    guarded_while_running: dict[str, list[int]]
    other_user: dict[str, str]
    same_user: dict[str, str]
    platform: bool
    guarded_after: dict[str, list[int]]
    b_exit: TaskExit
    b_runtime_log: str


async def ports_scenario(w: World, isolation: IsolationPolicy | None, run_name: str,
                         run_root: Path | None = None) -> PortsOutcome:
    """B's task serves on its declared http port (dual-stack); A's task, B's second task and the
    platform connect to it on 127.0.0.1 and ::1; then B's task is stopped."""
    from pai_runtime.firewall import TASK_CHAIN, ServiceFirewall
    from pai_runtime.ports import hashed_ports

    w.account(w.a)
    w.account(w.b)
    backend = LocalBackend(run_root or w.data / run_name, simulated_gpus=0, isolation=isolation)
    firewall = ServiceFirewall.for_instance(backend.isolation.firewall_tag or "0", TASK_CHAIN)
    await backend.open()
    b_id = f"serve-{run_name}"
    roles = {"main": {"instances": 1, "cpu": 1, "memory_mb": 4096, "gpu": 0, "ports": {"http": 1}}}
    port = hashed_ports(f"uid-{b_id}", "http", 1)[0]
    serve = f'exec {_system_python()} -m http.server --bind :: "$PAI_CONTAINER_HOST_http_PORT_LIST"'
    try:
        await backend.start(launch(b_id, w.b, serve, task_roles=roles))

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()  # the platform: root
                return True
            except OSError:
                return False

        await asyncio.to_thread(wait_for, listening, 30, "B's server never listened on its port")
        guarded = firewall.guarded_ports() if isolation else {}
        platform = listening()  # while the rule is in place
        outputs = {}
        for tid, user in (("probe-a", w.a), ("probe-b2", w.b)):
            tid = f"{tid}-{run_name}"
            await backend.start(launch(tid, user, _connect_command(port)))
            event = await wait_exit(backend, tid)
            assert event.exit_code == 0, backend.read_log(tid, "all")
            outputs[user] = _connects(backend.read_log(tid, "stdout").decode())
        await backend.stop(b_id, grace=2.0)
        b_exit = await wait_exit(backend, b_id, 30)
        after = firewall.guarded_ports() if isolation else {}
        return PortsOutcome(port, guarded, outputs[w.a], outputs[w.b], platform, after, b_exit,
                            backend.read_log(b_id, "runtime.log").decode())
    finally:
        await backend.close()


@pytest.fixture(scope="module")
def ports_sandboxed(world: World) -> PortsOutcome:
    require_tool("iptables", "apt-get install iptables")
    require_tool("ip6tables", "apt-get install iptables")
    return asyncio.run(ports_scenario(world, world.policy, "ports-sandbox"))


@pytest.fixture(scope="module")
def ports_users(world: World) -> PortsOutcome:
    require_tool("iptables", "apt-get install iptables")
    users = IsolationPolicy(**{**world.policy.__dict__, "mode": "users"})
    base = Path(tempfile.mkdtemp(prefix="pai-ports-", dir="/tmp"))
    base.chmod(0o755)  # without a sandbox the account reaches its work directory by path
    try:
        return asyncio.run(ports_scenario(world, users, "ports-users", base / "run"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def ports_unisolated(world: World) -> PortsOutcome:
    return asyncio.run(ports_scenario(world, None, "ports-none"))


def test_another_users_task_is_refused_a_tasks_declared_port(ports_sandboxed: PortsOutcome) -> None:
    assert ports_sandboxed.other_user == {"127.0.0.1": "ConnectionRefusedError", "::1": "ConnectionRefusedError"}


def test_the_same_users_other_task_and_the_platform_reach_it(ports_sandboxed: PortsOutcome) -> None:
    assert ports_sandboxed.same_user == {"127.0.0.1": "open", "::1": "open"}
    assert ports_sandboxed.platform is True


def test_the_ports_rule_lives_exactly_as_long_as_the_task(ports_sandboxed: PortsOutcome) -> None:
    from pai_runtime.taskports import service_name

    service = service_name("serve-ports-sandbox")
    assert ports_sandboxed.guarded_while_running.get(service) == [ports_sandboxed.port]
    assert service not in ports_sandboxed.guarded_after
    assert ports_sandboxed.b_exit.exit_code != 0  # stopped
    assert "not protected" not in ports_sandboxed.b_runtime_log


def test_without_isolation_another_users_task_reaches_the_port(ports_unisolated: PortsOutcome) -> None:
    """How it was: the port is anyone's (so the refusal above is the rule's doing)."""
    assert ports_unisolated.other_user == {"127.0.0.1": "open", "::1": "open"}


def test_mode_users_closes_the_port_too(ports_users: PortsOutcome) -> None:
    assert ports_users.other_user == {"127.0.0.1": "ConnectionRefusedError", "::1": "ConnectionRefusedError"}
    assert ports_users.same_user == {"127.0.0.1": "open", "::1": "open"}
    assert ports_users.platform is True


def test_ports_iptables_cannot_close_are_said_never_silently_open(world: World, tmp_path: Path) -> None:
    """The launcher's guard with iptables missing: the task is not failed for it, its runtime.log says
    so, and the launcher's log says it once."""
    from pai_runtime.firewall import ServiceFirewall
    from pai_runtime.taskports import NOTE, TaskPortGuard

    said: list[str] = []
    broken = ServiceFirewall("0123456789ab", iptables=str(tmp_path / "no-iptables"))
    guard = TaskPortGuard(dataclasses.replace(world.policy, firewall_tag="0123456789ab"), broken, said.append)
    for tid in ("t1", "t2"):
        (tmp_path / tid).mkdir()
        spec = make_spec(tid, world.b, "true", task_roles={
            "main": {"instances": 1, "cpu": 1, "memory_mb": 512, "gpu": 0, "ports": {"http": 1, "ssh": 1}}})
        spec["log_dir"] = str(tmp_path / tid)
        guard.guard(str(tmp_path / tid), spec)
        guard.release(tid)
        log = (tmp_path / tid / "runtime.log").read_text()
        assert f"{NOTE}: " in log and "not installed" in log, log
    assert len(said) == 1 and NOTE in said[0], said
    (tmp_path / "t3").mkdir()  # no ports: nothing to protect, nothing said
    guard.guard(str(tmp_path / "t3"), {**make_spec("t3", world.b, "true"), "log_dir": str(tmp_path / "t3")})
    assert not (tmp_path / "t3" / "runtime.log").exists()
    untagged = TaskPortGuard(dataclasses.replace(world.policy, firewall_tag=""), say=said.append)
    (tmp_path / "t4").mkdir()
    untagged.guard(str(tmp_path / "t4"), {**spec, "task_id": "t4", "log_dir": str(tmp_path / "t4")})
    assert "firewall_tag is unusable" in (tmp_path / "t4" / "runtime.log").read_text()


def test_open_sweeps_the_port_rules_of_tasks_no_longer_live(world: World) -> None:
    """A launcher that died cannot release its tasks' rules: the next backend's open removes the rules
    of ended tasks, keeps those of live ones, and touches no other control plane's or chain's."""
    import json

    from pai_runtime.firewall import TASK_CHAIN, ServiceFirewall
    from pai_runtime.procinfo import proc_start_time
    from pai_runtime.taskports import service_name

    require_tool("iptables", "apt-get install iptables")
    require_tool("ip6tables", "apt-get install iptables")
    run_root = world.data / "run-sweep"
    tag = "5eed00000001"
    policy = dataclasses.replace(world.policy, firewall_tag=tag)
    mine = ServiceFirewall.for_instance(tag, TASK_CHAIN)
    other = ServiceFirewall.for_instance("5eed00000002", TASK_CHAIN)
    services = ServiceFirewall.for_instance(tag)  # the experiments' chain, same control plane
    me = {"supervisorPid": os.getpid(), "supervisorStart": proc_start_time(os.getpid())}
    dead = {"supervisorPid": 2**22 + 3, "supervisorStart": 1}
    try:
        for tid, pids, ended in (("live", me, False), ("ended", me, True), ("crashed", dead, False),
                                 ("starting", None, False)):
            task = run_root / "tasks" / tid
            task.mkdir(parents=True)
            if pids is not None:
                (task / "pid.json").write_text(json.dumps(pids))
            else:  # claimed by a live launcher, no pid.json yet
                (task / "claim").write_text(f"{os.getpid()} {proc_start_time(os.getpid())}")
            if ended:
                (task / "exit.json").write_text("{}")
            mine.guard(service_name(tid), [46001], [world.account(world.a).uid])
        mine.guard(service_name("unknown"), [46002], [])  # no task directory at all
        other.guard(service_name("ended"), [46003], [])
        services.guard("experiment-x", [46004], [])

        async def main() -> None:
            backend = LocalBackend(run_root, simulated_gpus=0, isolation=policy)
            await backend.open()
            await backend.close()

        asyncio.run(main())
        kept = {service_name(t) for t in ("live", "starting")}
        assert set(mine.guarded_ports()) == kept
        assert mine.ip6tables and set(mine.guarded_ports(mine.ip6tables)) == kept  # IPv6 swept alike
        assert set(other.guarded_ports()) == {service_name("ended")}
        assert set(services.guarded_ports()) == {"experiment-x"}
    finally:
        for fw in (mine, other, services):
            fw.sweep()


def test_task_ports_are_its_own_declared_and_its_tensorboards() -> None:
    """Which ports the launcher closes: the task's own peer entry (another task's are not its to
    close), else the ports hashed from its uid as its environment has them, and a tensorboard
    plugin's explicit port."""
    from pai_runtime.env import build_env
    from pai_runtime.spec import TaskSpec
    from pai_runtime.taskports import service_name, task_ports

    roles = {"main": {"instances": 2, "cpu": 1, "memory_mb": 512, "gpu": 0, "ports": {"http": 1, "tb": 2}}}
    spec = make_spec("p", "u", "true", task_roles=roles)
    hashed = TaskSpec.from_json_dict(spec)
    env = build_env(hashed)
    from_env = {int(p) for k, v in env.items() if re.fullmatch(r"PAI_CONTAINER_HOST_\w+_PORT_LIST", k)
                for p in v.split(",")}
    assert task_ports(hashed) == sorted(from_env) and len(from_env) == 3
    spec["peers"] = [{"role": "main", "index": 0, "ip": "127.0.0.1", "ports": {"http": [31000]}},
                     {"role": "main", "index": 1, "ip": "127.0.0.1", "ports": {"http": [31001]}}]
    spec["plugins"] = [{"plugin": "tensorboard", "name": "tb", "parameters": {"port": 31500}},
                       {"plugin": "cmd", "name": "c", "parameters": {"port": 31600}}]
    assert task_ports(TaskSpec.from_json_dict(spec)) == [31000, 31500]
    assert service_name("j.0.main.0.0") == "task-j.0.main.0.0"
    long = service_name("x" * 300)
    assert long.startswith("task-h") and len(long) < 64
