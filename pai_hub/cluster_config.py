"""The cluster config in force (HiveD's format): where it is read from, and how a change is applied.

One object for the running server: the API reads the VCs, SKUs and the raw config through it, an
admin's edit or ``POST /cluster/reload`` goes through :meth:`ClusterConfig.apply`, which checks the
new config (VC safety included), switches the scheduler inside a loop turn, syncs the VC groups,
and only then saves the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pai_runtime.atomic import write_atomic

from .blocking import BlockingPool
from .core import NodeInfo
from .orchestrator.loop import Controller
from .scheduler.hived import HivedConfig, HivedScheduler, SkuType, load_config
from .scheduler.local_cluster import local_cluster_config
from .scheduler.requests import ClusterFacts
from .store.users import GroupRepository


class ClusterSource:
    """The first of: the config file (``PaiHub.cluster_config_file`` or <data_dir>/cluster.yaml), the
    ``PaiHub.cluster_config`` trait, one generated for this machine's nodes."""

    def __init__(self, path: Path, inline: dict[str, Any], nodes: Callable[[], list[NodeInfo]]) -> None:
        self.path = path
        self.inline = inline
        self.nodes = nodes
        self.origin = ""  # where the last read came from, for error messages

    def read(self) -> dict[str, Any]:
        """The raw config. Raises ValueError on a file that is not a YAML mapping."""
        if self.path.exists():
            self.origin = str(self.path)
            try:
                raw = yaml.safe_load(self.path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ValueError(f"{self.path}: not valid YAML: {exc}") from None
            if not isinstance(raw, dict):
                raise ValueError(f"{self.path}: must be a mapping with physicalCluster and virtualClusters")
            return raw
        if self.inline:
            self.origin = "PaiHub.cluster_config"
            return dict(self.inline)
        self.origin = "generated for this machine"
        return local_cluster_config(self.nodes())

    def save(self, raw: dict[str, Any]) -> None:
        write_atomic(self.path, yaml.safe_dump(raw, sort_keys=False))


class ClusterConfig:
    """The config the scheduler runs with now; replaced as a whole by :meth:`apply`."""

    def __init__(self, config: HivedConfig, source: ClusterSource, controller: Controller,
                 groups: GroupRepository, blocking: BlockingPool) -> None:
        self.config = config
        self.source = source
        self.controller = controller
        self.groups = groups
        self.blocking = blocking

    @property
    def virtual_clusters(self) -> list[str]:
        return list(self.config.virtual_clusters)

    @property
    def sku_types(self) -> dict[str, SkuType]:
        return self.config.sku_types

    @property
    def raw(self) -> dict[str, Any]:
        """The config as written (what ``PUT /virtual-clusters/{vc}`` edits a copy of)."""
        return self.config.raw

    def read_source(self) -> dict[str, Any]:
        return self.source.read()

    async def apply(self, raw: dict[str, Any]) -> None:
        """Check, switch the scheduler inside a loop turn, sync the VC groups, save the file.
        Raises HivedConfigError, changing nothing, when the config is refused."""
        config = load_config(raw)
        scheduler, facts = HivedScheduler(config), ClusterFacts.from_config(config)
        await self.controller.call(lambda machine, now: machine.replace_scheduler(scheduler, facts))
        self.config = config
        await self.blocking.run(self.groups.sync_virtual_clusters, self.virtual_clusters)
        await self.blocking.run(self.source.save, raw)
