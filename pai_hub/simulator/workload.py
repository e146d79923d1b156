"""What a trace replays: jobs with a submission time, a run time and a gang shape.

The plain CSV format (docs/simulator.md)::

    submit_time,duration,gpus,instances,vc,priority[,user,name]

one job per line: ``instances`` tasks (one gang, placed all together or not at all) of ``gpus``
GPUs each, submitted at ``submit_time`` seconds into virtual cluster ``vc`` with OpenPAI's job
priority class ``priority`` — ``crit`` (120), ``prod`` (100), ``test`` (10) or ``oppo`` (-1,
opportunistic), by name or by number — each task running ``duration`` seconds once placed.
Every error names the line and the column.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CSV_COLUMNS", "PRIORITY_CLASSES", "SimJob", "TraceError", "load_csv", "parse_csv", "priority_class"]

#: OpenPAI's job priority classes (``extras.hivedScheduler.jobPriorityClass``) and their HiveD priorities.
PRIORITY_CLASSES = {"crit": 120, "prod": 100, "test": 10, "oppo": -1}
_CLASS_OF = {v: k for k, v in PRIORITY_CLASSES.items()}


def priority_class(priority: int) -> str:
    """The class of a HiveD priority (one of the four OpenPAI numbers)."""
    return _CLASS_OF[priority]

CSV_COLUMNS = ("submit_time", "duration", "gpus", "instances", "vc", "priority")
CSV_OPTIONAL = ("user", "name")


@dataclass(frozen=True)
class SimJob:
    """One job of a trace: a gang of ``instances`` tasks of ``gpus`` GPUs each."""

    name: str
    user: str
    vc: str
    submit_time: float
    duration: float
    gpus: int
    instances: int = 1
    priority: int = 10  #: HiveD priority of an OpenPAI class: 120, 100, 10 (test, the default) or -1
    cpu: int = 0  #: per task; 0: only GPUs are simulated (HiveD derives no extra cells from CPUs)
    memory_mb: int = 0
    leaf_cell_type: str | None = None

    def __post_init__(self) -> None:
        if self.priority not in _CLASS_OF:
            raise ValueError(f"priority must be one of {sorted(_CLASS_OF)} (OpenPAI's classes), got {self.priority}")

    @property
    def total_gpus(self) -> int:
        return self.gpus * self.instances


class TraceError(ValueError):
    """A trace line that cannot be read; ``line`` is 1-based (the header is line 1)."""

    def __init__(self, source: str, line: int, column: str | None, message: str) -> None:
        self.source, self.line, self.column, self.message = source, line, column, message
        where = f"{source}:{line}" + (f": column {column!r}" if column else "")
        super().__init__(f"{where}: {message}")


def _number(text: str, source: str, line: int, column: str, *, integer: bool, minimum: float) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise TraceError(source, line, column, f"expected {kind}, got {text!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise TraceError(source, line, column, f"must be >= {minimum:g}, got {text!r}")
    return value


def parse_csv(text: str | Iterable[str], source: str = "<csv>") -> list[SimJob]:
    """Read the plain CSV format. Blank lines and lines starting with ``#`` are skipped."""
    lines = io.StringIO(text) if isinstance(text, str) else text
    reader = csv.reader(lines)
    header: list[str] | None = None
    jobs: list[SimJob] = []
    for row in reader:
        line = reader.line_num
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in row]
        if header is None:
            header = cells
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise TraceError(source, line, missing[0], f"missing column; the header must start with "
                                 f"{','.join(CSV_COLUMNS)} (optional: {','.join(CSV_OPTIONAL)})")
            unknown = [c for c in header if c not in CSV_COLUMNS + CSV_OPTIONAL]
            if unknown:
                raise TraceError(source, line, unknown[0], "unknown column")
            continue
        if len(cells) != len(header):
            raise TraceError(source, line, None, f"expected {len(header)} columns, got {len(cells)}")
        v = dict(zip(header, cells, strict=True))
        submit = _number(v["submit_time"], source, line, "submit_time", integer=False, minimum=0)
        duration = _number(v["duration"], source, line, "duration", integer=False, minimum=0)
        gpus = int(_number(v["gpus"], source, line, "gpus", integer=True, minimum=1))
        instances = int(_number(v["instances"], source, line, "instances", integer=True, minimum=1))
        text = v["priority"]
        if text in PRIORITY_CLASSES:
            priority = PRIORITY_CLASSES[text]
        else:
            priority = int(_number(text, source, line, "priority", integer=True, minimum=-1))
            if priority not in _CLASS_OF:
                raise TraceError(source, line, "priority", f"must be a priority class (crit, prod, test, oppo) "
                                 f"or its number (120, 100, 10, -1), got {text!r}")
        if not v["vc"]:
            raise TraceError(source, line, "vc", "must not be empty")
        jobs.append(SimJob(
            name=v.get("name") or f"job-{len(jobs) + 1}", user=v.get("user") or "sim", vc=v["vc"],
            submit_time=submit, duration=duration, gpus=gpus, instances=instances, priority=priority,
        ))
    if header is None:
        raise TraceError(source, 1, None, "empty trace: no header line")
    return jobs


def load_csv(path: str | Path) -> list[SimJob]:
    path = Path(path)
    with path.open(newline="") as f:
        return parse_csv(f, source=str(path))
