"""An earlier launcher that ends (its last task done, after a control-plane restart) must not end
the tasks the current launcher is still launching: found by ``benchmarks.crash`` (jobs retried as
lost while their first attempt ran)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from pai_hub.backends.base import TaskRunning
from pai_hub.backends.local import LocalBackend
from tests.backends.test_local import exits, launch, run

pytestmark = pytest.mark.timeout(60)


def test_an_earlier_launcher_ending_leaves_tasks_being_launched_alone(tmp_path: Path) -> None:
    root = tmp_path / "run"

    async def first_life() -> int:
        a = LocalBackend(root)
        await a.open()
        await a.start(launch("old", "sleep 0.5"))
        while not (root / "tasks" / "old" / "pid.json").exists():
            await asyncio.sleep(0.01)
        pid = a._launcher.pid
        await a.close()  # like a killed control plane: the launcher lives on until its task ends
        return pid

    earlier_launcher = run(first_life())

    async def second_life() -> None:
        b = LocalBackend(root)
        await b.open()
        try:
            (adopted,) = await b.adopt(["old"])
            assert isinstance(adopted, TaskRunning)
            current = b._launcher.pid
            os.kill(current, signal.SIGSTOP)  # "new" is handed over but not yet started when ...
            try:
                await b.start(launch("new", "true"))
                b._on_supervisor_exit(earlier_launcher)  # ... the earlier launcher is seen ending
            finally:
                os.kill(current, signal.SIGCONT)
            got = await exits(b, {"old", "new"})
        finally:
            await b.close()
        assert got["new"].exit_code == 0, got["new"]
        assert got["old"].exit_code == 0, got["old"]

    run(second_life())
