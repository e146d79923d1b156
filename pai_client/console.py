"""What the ``pai`` CLI and the ``%pai`` magics print the same way: one table printer, one
``logs`` (a task's log once, or followed until the job ends), one reader of ``ROLE/INDEX``."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

JOB_COLUMNS = ("NAME", "USER", "STATE", "VC", "TASKS", "GPUS", "RETRIES")


def print_table(rows: Sequence[Sequence[str]], file: TextIO | None = None) -> None:
    """Rows of text as columns two spaces apart, the first row the header; trailing blanks cut."""
    out = file or sys.stdout
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(), file=out)


def job_rows(jobs: Iterable[dict[str, Any]]) -> list[tuple[str, ...]]:
    """``pai job list`` / ``%pai jobs --text``: a table of job summaries (OpenPAI's fields)."""
    return [JOB_COLUMNS, *((j["name"], j["username"], j["state"], j["virtualCluster"], str(j["totalTaskNumber"]),
                            str(j["totalGpuNumber"]), str(j["retries"])) for j in jobs)]


def parse_task(value: str | None) -> tuple[str | None, int]:
    """``ROLE/INDEX`` (``ROLE`` alone: index 0; nothing: ``(None, 0)``, the first task).
    Raises ``ValueError`` with a one-line message."""
    if not value:
        return None, 0
    role, _, idx = value.partition("/")
    try:
        return role, int(idx or 0)
    except ValueError:
        raise ValueError(f"--task {value!r}: expected ROLE/INDEX, e.g. worker/0") from None


def write_logs(client: Any, name: str, role: str | None = None, index: int = 0, log: str = "all",
               follow: bool = False, out: TextIO | None = None) -> None:
    """A task's log on ``out``: what there is now, or (``follow``) everything as it is written
    until the job ends. ``client`` is a :class:`~pai_client.PaiClient`."""
    out = out or sys.stdout
    if not follow:
        out.write(client.log(name, role, index, log)[0])
        return
    for chunk in client.follow(name, role, index, log):
        out.write(chunk)
        out.flush()
