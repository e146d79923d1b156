"""The running control plane's parts, built once at start-up and handed to every handler and page.

``PaiHub.start_services`` (``pai_hub/app.py``) builds one :class:`Services` and passes it in the
tornado settings (``settings["services"]``); handlers read it through typed properties of
:class:`pai_hub.api.base.BaseHandler` (``self.users``, ``self.controller``, ``self.market``...),
the way JupyterHub's ``BaseHandler`` exposes ``self.users`` and ``self.db``. Subsystems are built
from the pieces they need, never from the application object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pai_runtime.isolation import IsolationPolicy

from .protocol.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:  # only types: every piece is built by pai_hub/app.py
    from .api.hubauth import HubTokenAuth
    from .blocking import BlockingPool
    from .cluster_config import ClusterConfig
    from .experiments.service import ExperimentService
    from .marketplace.repository import MarketRepository
    from .monitoring.monitor import Monitor
    from .orchestrator.loop import Controller
    from .store.db import Store
    from .store.users import GroupRepository, UserRepository


@dataclass(frozen=True)
class ServerSettings:
    """The configuration values handlers and pages need (from ``PaiHub``'s traits)."""

    ip: str
    port: int
    data_dir: Path
    max_job_bytes: int
    #: Most jobs one request may submit (a job array's elements or a batch's documents).
    max_array_size: int = 10_000
    #: Largest body of a batch submission (``POST /jobs/batch``), in bytes.
    max_batch_bytes: int = 64 << 20
    #: Who users' code runs as (None: the platform's user, as mode none); removing a user retires
    #: their Unix account when it switches users.
    isolation: IsolationPolicy | None = None
    #: Bounds on every document users send (job protocols, experiment requests, marketplace items).
    limits: Limits = DEFAULT_LIMITS
    #: Most event streams, debug terminals and streamed log reads one user may hold open at once
    #: (pai_hub/api/streams.py); the next is answered 429.
    max_streams_per_user: int = 16

    @property
    def loopback_url(self) -> str:
        """This server's API as a process on the same machine reaches it (the hub pages' client)."""
        host = self.ip if self.ip not in ("", "0.0.0.0") else "127.0.0.1"
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class Services:
    """Everything the API, the hub pages, monitoring and experiments use of the running server."""

    settings: ServerSettings
    store: Store
    users: UserRepository
    groups: GroupRepository
    controller: Controller
    cluster: ClusterConfig
    market: MarketRepository
    monitor: Monitor
    experiments: ExperimentService
    blocking: BlockingPool
    #: hub API tokens on the PAI API; None unless the server runs as a JupyterHub service
    hub_auth: HubTokenAuth | None = None
