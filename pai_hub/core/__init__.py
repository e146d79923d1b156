"""Types the pure core and the backends share (ARCHITECTURE.md §10).

The scheduler and the state machine describe nodes and task launches; backends offer the one and
carry out the other. Both sides import these from here, so the core never imports a backend.
"""

from .launch import TaskLaunch
from .nodes import GpuInfo, NodeInfo

__all__ = ["GpuInfo", "NodeInfo", "TaskLaunch"]
