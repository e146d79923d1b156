"""A debug shell asked for right after a task was handed to its launcher waits for the task's
spec.json instead of refusing (the task is already reported running then; on a busy machine the
launcher may not have written the file yet — seen as a 409 in the terminal tests under load)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from pai_hub.backends.local import LocalBackend
from tests.backends.test_local import launch, run

pytestmark = pytest.mark.timeout(60)


def test_a_shell_waits_for_a_task_its_launcher_has_not_written_yet(tmp_path: Path) -> None:
    async def scenario() -> None:
        b = LocalBackend(tmp_path / "run")
        await b.open()
        launcher = b._launcher.pid
        os.kill(launcher, signal.SIGSTOP)  # the launcher is slow: the start is handed over, not done
        try:
            await b.start(launch("slow", "sleep 30"))
            assert not (tmp_path / "run" / "tasks" / "slow" / "spec.json").exists()
            shell = asyncio.get_running_loop().run_in_executor(None, b.exec_shell, "slow")
            await asyncio.sleep(0.3)  # the shell is asked for while the launcher is still stopped
            assert not shell.done(), "the shell was refused before the launcher could write the task"
            os.kill(launcher, signal.SIGCONT)
            terminal = await asyncio.wait_for(shell, 10)
            terminal.kill(signal.SIGKILL)
        finally:
            os.kill(launcher, signal.SIGCONT)
            await b.stop("slow", 0)
            await b.close()

    run(scenario())
