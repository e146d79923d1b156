"""What a backend offers the scheduler: nodes, their capacity and their GPUs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInfo:
    """One GPU of a node. ``simulated`` GPUs are declared in config on machines without any."""

    index: int
    uuid: str
    model: str
    memory_mb: int
    simulated: bool = False


@dataclass(frozen=True)
class NodeInfo:
    """What a backend offers the scheduler: one node's name, address and capacity."""

    name: str
    ip: str
    cpu: int
    memory_mb: int
    gpus: tuple[GpuInfo, ...] = ()
