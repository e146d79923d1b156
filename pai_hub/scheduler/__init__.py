"""Placement of gangs on nodes. Pure: no I/O, time passed in, deterministic.

:class:`~.base.Scheduler` is the contract the orchestrator relies on; :class:`~.gang.GangScheduler`
is the single-machine implementation (all tasks of a job placed together, or none).
"""

from .base import Decisions, GangRequest, Placement, PodPlacement, PodRequest, Scheduler
from .gang import GangScheduler

__all__ = ["Decisions", "GangRequest", "GangScheduler", "Placement", "PodPlacement", "PodRequest", "Scheduler"]
