"""HiveD scheduling for PAI Hub: virtual clusters of cells, buddy allocation, gangs with priorities.

A Python re-creation of OpenPAI's HiveD scheduler from its documented behaviour (see
docs/scheduler.md). :class:`HivedScheduler` implements :class:`pai_hub.scheduler.base.Scheduler`.
"""

from .algorithm import GroupRequest, HivedAlgorithm
from .config import HivedConfig, HivedConfigError, SkuType, check_vc_safety, leaf_cells_for, load_config
from .scheduler import HivedScheduler

__all__ = [
    "GroupRequest",
    "HivedAlgorithm",
    "HivedConfig",
    "HivedConfigError",
    "HivedScheduler",
    "SkuType",
    "check_vc_safety",
    "leaf_cells_for",
    "load_config",
]
