"""Placement of gangs on nodes. Pure: no I/O, time passed in, deterministic.

:class:`~.base.Scheduler` is the contract the orchestrator (and, through the controller's read
model, the API) relies on; :class:`~.hived.HivedScheduler` is the one the service uses, and
:class:`~.gang.GangScheduler` a single-pool gang placer (all tasks of a job placed together, or none).
"""

from .base import Decisions, GangRequest, Placement, PodPlacement, PodRequest, Scheduler
from .gang import GangScheduler

__all__ = ["Decisions", "GangRequest", "GangScheduler", "Placement", "PodPlacement", "PodRequest", "Scheduler"]
