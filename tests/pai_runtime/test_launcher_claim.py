"""A task attempt is started by one launcher only, however many are asked (found by benchmarks.crash:
after a restart the earlier launcher may still hold an unread start of a task the new one starts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pai_runtime.launcher import CLAIM_FILE, claim


def test_the_first_claim_wins_and_the_second_is_refused(tmp_path: Path) -> None:
    task = tmp_path / "t"
    task.mkdir()
    assert claim(str(task))
    assert not claim(str(task))  # another launcher (the same process here) asks again: refused
    pid, _, start = (task / CLAIM_FILE).read_text().partition(" ")
    assert int(pid) == os.getpid() and start


def test_a_claim_held_by_a_live_launcher_is_refused_even_without_pid_json(tmp_path: Path) -> None:
    task = tmp_path / "t"
    task.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        start = Path(f"/proc/{holder.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        (task / CLAIM_FILE).write_text(f"{holder.pid} {start}")
        assert not claim(str(task))
    finally:
        holder.communicate(b"")


def test_a_claim_whose_launcher_died_before_starting_is_taken_over_once(tmp_path: Path) -> None:
    task = tmp_path / "t"
    task.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (task / CLAIM_FILE).write_text(f"{dead.pid} 1")
    assert claim(str(task))  # nobody started it: this launcher takes it over
    assert not claim(str(task))  # and holds it now
    assert (task / CLAIM_FILE).read_text().startswith(f"{os.getpid()} ")


def test_a_dead_claim_of_a_task_that_did_start_is_not_taken_over(tmp_path: Path) -> None:
    task = tmp_path / "t"
    task.mkdir()
    (task / CLAIM_FILE).write_text("999999999 1")
    (task / "pid.json").write_text("{}")
    assert not claim(str(task))
