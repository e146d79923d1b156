"""1,000 short jobs from 8 clients while the control plane is killed with SIGKILL 100 times.

The control plane (``python -m pai_hub.cli server``) runs as a child process on a fixed port and
data directory. At seeded random moments it is killed with SIGKILL and started again on the same
data directory (one restart in ten is killed again within its usual start-up time, interrupting the
recovery itself); its tasks outlive it (the launcher and the tasks are in their own sessions). Clients
(``AsyncPaiClient``) retry a submission the server did not answer; a 409 on a retry is a
submission whose first answer was lost, i.e. acknowledged once. Every task appends
``<name> <job attempt> <task attempt>`` to one shared file, so a task started twice shows up.

Reported: jobs acknowledged, lost (acknowledged, unknown at the end), duplicated (two records for
one name), run twice (one job attempt and task attempt started twice), stuck (not final within the
settle timeout), jobs the platform retried (a new attempt after a lost task is legitimate), and the
time from starting the control plane again to its first answered ``GET /api/v2/jobs?limit=1``.

    python -m benchmarks.crash [--jobs 1000] [--clients 8] [--kills 100] [--seed 20240101]
                               [--mean-uptime 1.0] [--startup-kill-fraction 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.local_server import ISOLATION, terminate
from pai_client import AsyncPaiClient, PaiError

FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
#: HTTP statuses of a server that is down or going down: the request is sent again.
RETRYABLE = frozenset({0, 502, 503, 504})
RETRY_PAUSE_S = 0.05
NAME_PREFIX = "crash-"

JOB = """protocolVersion: 2
name: {name}
type: job
prerequisites:
  - {{name: image, type: dockerimage, uri: "ubuntu:22.04"}}
taskRoles:
  main:
    instances: 1
    dockerImage: image
    resourcePerInstance: {{cpu: 1, memoryMB: 64, gpu: 0}}
    commands:
      - {record}
      - sleep {sleep}
"""


@dataclass
class Settings:
    """What one run does; the defaults are the issue's figures."""

    jobs: int = 1000
    clients: int = 8
    kills: int = 100
    seed: int = 20240101
    #: mean seconds the control plane serves between a restart and the next kill (uniform 0..2×)
    mean_uptime_s: float = 1.0
    #: each task sleeps uniform 0..this after recording its start, so kills land while tasks run
    max_task_s: float = 1.5
    #: the share of restarts killed again within the usual start-up time
    startup_kill_fraction: float = 0.1
    settle_timeout_s: float = 120.0
    node_cpu: int = 32
    base_dir: str = "build"
    #: keep the data directory, logs and runs file afterwards (to investigate a finding)
    keep: bool = False


@dataclass
class Tally:
    """What the clients and the killer saw while the chaos ran."""

    accepted: set[str] = field(default_factory=set)  # 202
    conflict_on_retry: set[str] = field(default_factory=set)  # 409 after a lost answer: stored once
    conflict_first_try: set[str] = field(default_factory=set)  # 409 with no earlier try: a real duplicate
    rejected: dict[str, str] = field(default_factory=dict)  # any other refusal
    resent: int = 0  # submissions sent again after no answer
    restart_to_serving_s: list[float] = field(default_factory=list)
    unexpected_exits: int = 0  # the control plane ended without being killed
    kills: int = 0
    kills_while_starting: int = 0  # killed again within its usual start-up time
    failed_starts: list[str] = field(default_factory=list)  # the log of each start that ended by itself

    @property
    def acknowledged(self) -> set[str]:
        return self.accepted | self.conflict_on_retry


# -- the control plane ---------------------------------------------------------------------------


def port_outside_ephemeral_range(rng: random.Random) -> int:
    """A free port below the kernel's range for outgoing connections. While the control plane is
    down, any client (ours included) may get its port as the local end of a connection, and the
    restart could then not bind it; a real install's fixed port (9186) is below that range too."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(100):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class ControlPlaneExited(RuntimeError):
    """The control plane ended on its own while starting; ``log`` is what it wrote this time."""

    def __init__(self, returncode: int | None, log: str) -> None:
        super().__init__(f"the control plane exited with {returncode}:\n{log}")
        self.returncode, self.log = returncode, log


class ControlPlane:
    """``pai server`` on one port and data directory, started again after every kill."""

    def __init__(self, workdir: Path, node_cpu: int) -> None:
        self.data_dir = workdir / "data"
        self.log_path = workdir / "server.log"
        self.port = port_outside_ephemeral_range(random.Random())
        self.node_cpu = node_cpu
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.log_offset = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def start(self) -> None:
        """Start the process (its own session, like a service manager would); returns at once."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAI_")}
        with open(self.log_path, "ab") as log:
            self.log_offset = log.tell()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pai_hub.cli", "server", "--ip", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", str(self.data_dir), "--node-cpu", str(self.node_cpu), "--isolation", ISOLATION],
                stdout=subprocess.DEVNULL, stderr=log, env=env, start_new_session=True,
            )
        self.started_at = time.perf_counter()

    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM and wait: the end of the run."""
        if self.proc is not None:
            terminate(self.proc, force=self.kill)

    def latest_log(self, lines: int = 20) -> str:
        """The last lines the latest start wrote."""
        with open(self.log_path, "rb") as log:
            log.seek(self.log_offset)
            return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])

    async def until_serving(self, timeout: float = 60.0) -> float:
        """Seconds from :meth:`start` to the first answered, authenticated ``GET /api/v2/jobs?limit=1``."""
        deadline = self.started_at + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as http:
            while time.perf_counter() < deadline:
                if self.exited():
                    raise ControlPlaneExited(self.proc and self.proc.returncode, self.latest_log())
                try:
                    headers = {"Authorization": f"Bearer {self.token}"}
                    if (await http.get("/api/v2/jobs", params={"limit": 1}, headers=headers)).status_code == 200:
                        return time.perf_counter() - self.started_at
                except (httpx.HTTPError, OSError):
                    pass  # not listening yet, or no admin token written yet
                await asyncio.sleep(0.01)
        raise RuntimeError(f"the control plane was not serving {timeout:g} s after its start; see {self.log_path}")


# -- the load -------------------------------------------------------------------------------------


def job_text(name: str, runs_file: Path, sleep_s: float) -> str:
    """A job that records each start of its task (name, job attempt, task attempt), then sleeps."""
    record = f'echo "{name} $FC_FRAMEWORK_ATTEMPT_ID $FC_TASK_ATTEMPT_ID" >> {runs_file}'
    return JOB.format(name=name, record=json.dumps(record), sleep=f"{sleep_s:.2f}")


async def submit_until_answered(client: AsyncPaiClient, name: str, text: str, tally: Tally) -> None:
    """Send one submission until the server answers it; record how it was acknowledged."""
    tries = 0
    while True:
        tries += 1
        try:
            await client.submit(text)
        except PaiError as exc:
            if exc.status in RETRYABLE:
                tally.resent += 1
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            if exc.status == 409:
                (tally.conflict_on_retry if tries > 1 else tally.conflict_first_try).add(name)
            else:
                tally.rejected[name] = str(exc)
            return
        tally.accepted.add(name)
        return


async def submitter(plane: ControlPlane, names: Iterable[str], texts: dict[str, str], pause_s: float,
                    rng: random.Random, tally: Tally) -> None:
    """One client: submissions one after another, paced so that they spread over the kills."""
    async with AsyncPaiClient(plane.url, plane.token, timeout=10.0) as client:
        for name in names:
            await submit_until_answered(client, name, texts[name], tally)
            await asyncio.sleep(rng.uniform(0.5, 1.5) * pause_s)


async def killer(plane: ControlPlane, settings: Settings, rng: random.Random, tally: Tally) -> None:
    """Kill the control plane at random moments and start it again on the same data directory."""
    kills_left = settings.kills
    while kills_left:
        await asyncio.sleep(rng.uniform(0.0, 2.0 * settings.mean_uptime_s))
        if plane.exited():
            tally.unexpected_exits += 1
        plane.kill()
        kills_left -= 1
        while kills_left and rng.random() < settings.startup_kill_fraction:
            await kill_while_starting(plane, rng, tally)
            kills_left -= 1
        await restart(plane, tally)
    tally.kills = settings.kills


async def kill_while_starting(plane: ControlPlane, rng: random.Random, tally: Tally) -> None:
    """Start the control plane and kill it again within its usual start-up time: a recovery (store
    reload, task adoption, the first turn) interrupted part-way."""
    usual = percentile(tally.restart_to_serving_s, 0.5) if tally.restart_to_serving_s else 1.0
    plane.start()
    await asyncio.sleep(rng.uniform(0.0, usual))
    plane.kill()
    tally.kills_while_starting += 1


async def restart(plane: ControlPlane, tally: Tally, tries: int = 3) -> None:
    """Start the control plane until it serves; the time counts from the first start. A start that
    ends by itself (it could not recover its data directory) is recorded and tried again."""
    first_start = time.perf_counter()
    for _ in range(tries):
        plane.start()
        try:
            await plane.until_serving()
        except ControlPlaneExited as exc:
            tally.failed_starts.append(exc.log)
            continue
        tally.restart_to_serving_s.append(time.perf_counter() - first_start)
        return
    raise RuntimeError(f"the control plane did not start {tries} times in a row: {tally.failed_starts[-1]}")


# -- the verdict ----------------------------------------------------------------------------------


async def all_jobs(client: AsyncPaiClient, page: int = 500) -> list[dict]:
    """Every job summary, page by page (OpenPAI's offset/limit)."""
    found: list[dict] = []
    while True:
        batch = await client.jobs(username="admin", offset=len(found), limit=page, order="jobName,ASC")
        found.extend(batch)
        if len(batch) < page:
            return found


async def settle(client: AsyncPaiClient, acknowledged: set[str], timeout: float) -> list[dict]:
    """Job summaries once every acknowledged job is final, or when ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        summaries = await all_jobs(client)
        final = {s["name"] for s in summaries if s["state"] in FINAL_STATES}
        if acknowledged <= final or time.monotonic() > deadline:
            return summaries
        await asyncio.sleep(0.5)


async def retry_causes(client: AsyncPaiClient, retried: list[dict], runs: Counter[tuple[str, str, str]],
                       most: int = 20) -> dict[str, dict]:
    """Why the platform retried a job: how its first attempt ended, and the starts its tasks recorded."""
    causes = {}
    for summary in retried[:most]:
        name = f"{summary['username']}~{summary['name']}"
        answer = await client.task_attempts(name, 0, "main", 0)
        attempts = answer["attempts"] if isinstance(answer, dict) else answer  # OpenPAI's TaskStatus
        causes[summary["name"]] = {
            "first_attempt_tasks": [f"attempt {t['attemptId']}: exit {t['containerExitCode']} "
                                    f"({t['containerExitDiagnostics']})" for t in attempts],
            "starts": sorted(" ".join(run) for run in runs if run[0] == summary["name"]),
        }
    return causes


def read_runs(runs_file: Path) -> Counter[tuple[str, str, str]]:
    """How many times each (job, job attempt, task attempt) started."""
    if not runs_file.exists():
        return Counter()
    return Counter(tuple(line.split()) for line in runs_file.read_text().splitlines() if line.strip())


def verdict(tally: Tally, summaries: list[dict], runs: Counter[tuple[str, str, str]], jobs: int) -> dict:
    """The figures: what was acknowledged, and what became of it."""
    ours = [s for s in summaries if s["name"].startswith(NAME_PREFIX)]
    records = Counter(s["name"] for s in ours)
    by_name = {s["name"]: s for s in ours}
    acknowledged = tally.acknowledged
    started = {run[0] for run in runs}
    return {
        "jobs": jobs,
        "acknowledged": len(acknowledged),
        "acknowledged_by_409_on_retry": len(tally.conflict_on_retry),
        "unacknowledged": jobs - len(acknowledged),
        "rejected": tally.rejected,
        "conflict_on_first_try": len(tally.conflict_first_try),
        "lost": len(acknowledged - set(records)),
        "duplicated": sum(1 for n in records.values() if n > 1) + len(tally.conflict_first_try),
        "run_twice": sum(1 for n in runs.values() if n > 1),
        "stuck": sum(1 for name in acknowledged & set(by_name) if by_name[name]["state"] not in FINAL_STATES),
        "unknown_jobs": len(set(records) - acknowledged),
        "succeeded_never_started": sum(1 for name, s in by_name.items()
                                       if s["state"] == "SUCCEEDED" and name not in started),
        "retried_by_platform": sum(1 for s in ours if s["retries"]),
        # a new job or task attempt after a lost task: legitimate, counted apart from "run twice"
        "started_in_several_attempts": sum(1 for n in Counter(run[0] for run in runs).values() if n > 1),
        "final_states": dict(Counter(s["state"] for s in ours)),
        "resent_submissions": tally.resent,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def restart_figures(tally: Tally) -> dict:
    times = tally.restart_to_serving_s
    return {
        "kills": tally.kills,
        "kills_while_starting": tally.kills_while_starting,
        "restarts_measured": len(times),
        "unexpected_exits": tally.unexpected_exits,
        "failed_starts": len(tally.failed_starts),
        "failed_start_logs": tally.failed_starts,
        "restart_to_serving_s_p50": round(percentile(times, 0.50), 3),
        "restart_to_serving_s_p99": round(percentile(times, 0.99), 3),
        "restart_to_serving_s_max": round(max(times), 3) if times else float("nan"),
    }


# -- clean-up -------------------------------------------------------------------------------------


def processes_mentioning(marker: str) -> list[int]:
    """This user's processes whose command line or environment mention ``marker`` (a path of the
    run): the control plane, its launchers and the tasks, which all live in their own sessions."""
    needle, found = marker.encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            if needle in (entry / "cmdline").read_bytes() or needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def kill_leftovers(marker: str, timeout: float = 10.0) -> tuple[int, list[int]]:
    """SIGKILL every process group of the run: how many processes were found at first, and the pids
    still there after ``timeout`` (none, we hope)."""
    found = len(processes_mentioning(marker))
    own_group = os.getpgid(0)
    deadline = time.monotonic() + timeout
    while (pids := processes_mentioning(marker)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                group = os.getpgid(pid)
                if group != own_group:
                    os.killpg(group, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.1)
    return found, processes_mentioning(marker)


# -- the run --------------------------------------------------------------------------------------


async def chaos(plane: ControlPlane, settings: Settings, runs_file: Path) -> dict:
    """Submit from every client while the killer works, then wait for the jobs to end and judge."""
    rng = random.Random(settings.seed)
    names = [f"{NAME_PREFIX}{i}" for i in range(settings.jobs)]
    texts = {name: job_text(name, runs_file, rng.uniform(0.0, settings.max_task_s)) for name in names}
    # the clients together submit at jobs / (kills × mean uptime) while the server is up
    pause_s = settings.clients * settings.kills * settings.mean_uptime_s / max(1, settings.jobs)
    tally = Tally()
    started = time.perf_counter()
    await asyncio.gather(
        killer(plane, settings, random.Random(rng.random()), tally),
        *(submitter(plane, names[c::settings.clients], texts, pause_s, random.Random(rng.random()), tally)
          for c in range(settings.clients)),
    )
    chaos_s = time.perf_counter() - started
    async with AsyncPaiClient(plane.url, plane.token, timeout=30.0) as client:
        summaries = await settle(client, tally.acknowledged, settings.settle_timeout_s)
        settle_s = time.perf_counter() - started - chaos_s
        runs = read_runs(runs_file)
        retried = await retry_causes(client, [s for s in summaries if s["retries"]], runs)
    return {**verdict(tally, summaries, runs, settings.jobs), **restart_figures(tally),
            "chaos_s": round(chaos_s, 1), "settle_s": round(settle_s, 1), "retried_jobs": retried}


def run(settings: Settings) -> dict:
    """One whole run in a throw-away directory; every process it started is gone when it returns."""
    Path(settings.base_dir).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="pai-crash-", dir=settings.base_dir)).resolve()
    plane = ControlPlane(workdir, settings.node_cpu)
    try:
        plane.start()
        asyncio.run(plane.until_serving())
        result = asyncio.run(chaos(plane, settings, workdir / "runs.txt"))
    except BaseException:
        print(f"benchmarks.crash: failed; its data directory and logs are kept in {workdir}", file=sys.stderr)
        raise
    finally:
        plane.stop()
        found, left = kill_leftovers(str(workdir))
    if settings.keep:
        result["kept"] = str(workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    result["processes_found_after_stop"] = found
    result["processes_left"] = left
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "platform": platform.platform()}
    result["settings"] = {"jobs": settings.jobs, "clients": settings.clients, "kills": settings.kills,
                          "seed": settings.seed, "mean_uptime_s": settings.mean_uptime_s,
                          "startup_kill_fraction": settings.startup_kill_fraction}
    return result


def parse(argv: list[str] | None) -> Settings:
    defaults = Settings()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=defaults.jobs)
    ap.add_argument("--clients", type=int, default=defaults.clients)
    ap.add_argument("--kills", type=int, default=defaults.kills)
    ap.add_argument("--seed", type=int, default=defaults.seed)
    ap.add_argument("--mean-uptime", type=float, default=defaults.mean_uptime_s,
                    help="mean seconds between serving again and the next kill")
    ap.add_argument("--startup-kill-fraction", type=float, default=defaults.startup_kill_fraction,
                    help="the share of restarts killed again within the usual start-up time")
    ap.add_argument("--settle-timeout", type=float, default=defaults.settle_timeout_s,
                    help="seconds after the last kill within which every job must be final")
    ap.add_argument("--node-cpu", type=int, default=defaults.node_cpu)
    ap.add_argument("--base-dir", default=defaults.base_dir,
                    help="where the throw-away data directory goes (like a real install's, not /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory, logs and runs file")
    a = ap.parse_args(argv)
    return Settings(jobs=a.jobs, clients=a.clients, kills=a.kills, seed=a.seed, mean_uptime_s=a.mean_uptime,
                    startup_kill_fraction=a.startup_kill_fraction,
                    settle_timeout_s=a.settle_timeout, node_cpu=a.node_cpu, base_dir=a.base_dir, keep=a.keep)


def main(argv: list[str] | None = None) -> dict:
    result = run(parse(argv))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
