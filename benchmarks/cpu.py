"""CPU seconds of the benchmarked server and of its launcher, from ``/proc``: what a job costs the
control plane is the figure to compare on a shared machine, where jobs/s moves with the neighbours'
load but CPU per job hardly does."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (its reaped children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15)


def launcher_pid(server_pid: int) -> int | None:
    """The local backend's launcher (``python -m pai_runtime.launcher``) among the server's children."""
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"pai_runtime.launcher" in cmdline:
                return int(child)
    return None


@dataclass
class CpuMeter:
    """CPU spent between :meth:`start` and :meth:`stop` by the server, its launcher and this
    process (the load generator)."""

    server_pid: int
    launcher: int | None = None
    _start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    _spent: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def _read(self) -> tuple[float, float, float]:
        launcher = cpu_seconds(self.launcher) if self.launcher else 0.0
        return cpu_seconds(self.server_pid), launcher, time.process_time()

    def start(self) -> None:
        self.launcher = launcher_pid(self.server_pid)
        self._start = self._read()

    def stop(self) -> None:
        now = self._read()
        self._spent = tuple(b - a for a, b in zip(self._start, now, strict=True))  # type: ignore[assignment]

    def per_job_ms(self, jobs: int) -> dict[str, float]:
        """Milliseconds of CPU per job: control plane, launcher, load generator."""
        server, launcher, generator = self._spent
        return {"control_plane_cpu_ms_per_job": round(server * 1000 / jobs, 3),
                "launcher_cpu_ms_per_job": round(launcher * 1000 / jobs, 3) if self.launcher else float("nan"),
                "load_generator_cpu_ms_per_job": round(generator * 1000 / jobs, 3)}
