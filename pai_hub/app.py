"""The PAI Hub control plane as a traitlets Application: store, backend, scheduler, loop, REST API.

Configuration is layered (ARCHITECTURE.md §7): trait defaults < ``pai_config.py`` in the data
directory < ``PAI_*`` environment variables < command-line flags. :meth:`PaiHub.start_services`
builds every part once, in order, and hands them to the web application as one typed
:class:`~pai_hub.services.Services` (``settings["services"]``); nothing reaches into the app.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tornado import web
from traitlets import Bool, CaselessStrEnum, Dict, Float, Integer, List, Unicode, default
from traitlets.config import Application

from . import __version__, datadir, protocol
from .admin import hub_routes
from .api import bulk as bulk_api
from .api import cluster as cluster_api
from .api import debug as debug_api
from .api import groups as group_api
from .api import job_history as history_api
from .api import jobs as job_api
from .api import ssh as ssh_api
from .api import tags as tag_api
from .api import users as user_api
from .api.base import NotFoundHandler
from .api.experiments import experiment_routes
from .api.httpserver import PaiHTTPServer
from .api.hubauth import HubSettings, HubTokenAuth
from .api.marketplace import marketplace_routes
from .api.v1 import v1_routes
from .backends.local import LocalBackend
from .blocking import BlockingPool
from .cluster_config import ClusterConfig, ClusterSource
from .experiments import start_experiments
from .isolation_config import build_policy, describe
from .marketplace import open_marketplace
from .monitoring import Monitoring, log_function, monitoring_routes, start_monitoring
from .orchestrator.loop import Controller
from .orchestrator.machine import Machine
from .orchestrator.records import JobRecord
from .orchestrator.specs import SpecBuilder
from .retention import Retention, RetentionPolicy, start_retention
from .scheduler.hived import HivedConfigError, HivedScheduler, load_config
from .scheduler.requests import ClusterFacts
from .services import ServerSettings, Services
from .store import open_store
from .store.db import Store, sqlite_url
from .store.users import GroupRepository, UserRepository

if TYPE_CHECKING:
    from pai_runtime.isolation import IsolationPolicy

log = logging.getLogger("pai_hub")

ROUTE_PREFIXES = ("/api/v2", "/rest-server/api/v2")
FW = r"([^/]+~[^/]+)"
TASK = FW + r"/attempts/(\d+)/taskRoles/([A-Za-z0-9_]+)/taskIndex/(\d+)/attempts/(\d+)/logs"


#: Routes answering with or without a trailing slash, as OpenPAI's express server does
#: (``/api/v2/users/``, ``/users/{u}/group/``): the REST API's, never the NNI UI's proxy.
SLASH_TOLERANT = (*ROUTE_PREFIXES, "/rest-server/", "/api/", "/marketplace/api", "/metrics")


def slash_tolerant(pattern: str) -> str:
    """``pattern`` also matching its path with a trailing ``/`` (one added ``/?``), for API routes; a
    route whose ``(/.*)`` twin proxies what lies below it (an NNI UI) is left as it is."""
    if not pattern.startswith(SLASH_TOLERANT) or pattern.endswith(("/?", ".*)", "$")):
        return pattern
    return pattern + "/?"


def routes() -> list[tuple[str, type]]:
    table = [
        (r"/jobs", job_api.JobsHandler),
        (r"/jobs/batch", bulk_api.BatchHandler),  # many jobs, one transaction (pai_hub/api/bulk.py)
        (rf"/jobs/{FW}", job_api.JobHandler),
        (rf"/jobs/{FW}/config", job_api.JobConfigHandler),
        (rf"/jobs/{FW}/executionType", job_api.ExecutionTypeHandler),
        (rf"/jobs/{FW}/events", job_api.EventsHandler),
        (rf"/jobs/{FW}/tag", tag_api.TagHandler),
        (rf"/jobs/{FW}/ssh", ssh_api.SshInfoHandler),
        (rf"/jobs/{FW}/job-attempts", history_api.JobAttemptsHandler),
        (rf"/jobs/{FW}/job-attempts/healthz", history_api.HealthzHandler),
        (rf"/jobs/{FW}/job-attempts/(\d+)", history_api.JobAttemptHandler),
        (rf"/jobs/{FW}/attempts/(\d+)", job_api.JobAttemptHandler),
        (rf"/jobs/{FW}/attempts/(\d+)/taskRoles/([A-Za-z0-9_]+)/taskIndex/(\d+)/attempts",
         job_api.TaskAttemptsHandler),
        (rf"/jobs/{FW}/debug", debug_api.DebugHandler),
        (rf"/jobs/{FW}/tasks/([A-Za-z0-9_]+)/(\d+)/terminal", debug_api.TerminalHandler),
        (rf"/jobs/{TASK}", job_api.TaskLogsHandler),
        (rf"/jobs/{TASK}/([A-Za-z0-9_.-]+)", job_api.TaskLogsHandler),
        (r"/info", user_api.InfoHandler),
        (r"/openapi.json", user_api.OpenApiHandler),
        (r"/virtual-clusters", cluster_api.VirtualClustersHandler),
        (r"/virtual-clusters/([A-Za-z0-9_-]+)", cluster_api.VirtualClusterHandler),
        (r"/virtual-clusters/([A-Za-z0-9_-]+)/sku-types", cluster_api.SkuTypesHandler),  # the JS SDK's
        (r"/cluster/sku-types", cluster_api.SkuTypesHandler),
        (r"/cluster/nodes", cluster_api.NodesHandler),
        (r"/cluster/nodes/([^/]+)/health", cluster_api.NodeHealthHandler),
        (r"/cluster/reload", cluster_api.ReloadHandler),
        (r"/?", user_api.V2RootHandler),
        (r"/authn/info", user_api.AuthnInfoHandler),
        (r"/authn/basic/login", user_api.LoginHandler),
        (r"/authn/basic/logout", user_api.LogoutHandler),
        (r"/tokens", user_api.TokensHandler),
        (r"/tokens/application", user_api.ApplicationTokenHandler),
        (r"/tokens/check", user_api.TokenCheckHandler),
        (r"/tokens/([^/]+)", user_api.TokenHandler),
        (r"/users?", user_api.UsersHandler),
        (r"/users?/([^/]+)", user_api.UserHandler),
        (r"/users?/([^/]+)/grouplist", group_api.UserGroupListHandler),
        (r"/users?/([^/]+)/group", group_api.UserGroupHandler),
        (r"/groups?", group_api.GroupsHandler),
        (r"/groups?/([A-Za-z0-9_]+)", group_api.GroupHandler),
        (r"/groups?/([A-Za-z0-9_]+)/userlist", group_api.GroupUsersHandler),
    ]
    out: list[tuple[str, type]] = []
    for prefix in ROUTE_PREFIXES:
        out += [(prefix + path, handler) for path, handler in table]
    out += v1_routes()  # /api/v1 and /rest-server/api/v1: what OpenPAI's clients call (pai_hub/api/v1.py)
    out += monitoring_routes()  # /metrics, alerts, usage, timelines (pai_hub/monitoring)
    out += marketplace_routes()  # /marketplace/api/... (pai_hub/api/marketplace.py)
    out += experiment_routes()  # /api/v2/experiments: NNI experiments (pai_hub/experiments)
    proxied = {pattern.removesuffix("(/.*)") for pattern, _ in out if pattern.endswith("(/.*)")}
    out = [(pattern if pattern in proxied else slash_tolerant(pattern), handler) for pattern, handler in out]
    out += hub_routes(out)  # under JupyterHub: the API again below /services/<name>/, and the hub pages
    return out


class PaiHub(Application):
    """``pai server``: the standalone control plane with the local backend."""

    name = "pai-hub"
    version = __version__
    description = "PAI Hub control plane"

    ip = Unicode("127.0.0.1", help="Address to listen on.").tag(config=True)
    port = Integer(9186, help="Port to listen on (OpenPAI's REST server port).").tag(config=True)
    data_dir = Unicode(help="Where the database, task directories and logs live.").tag(config=True)
    db_url = Unicode("", help="SQLAlchemy URL of the store; empty = SQLite in the data directory.").tag(config=True)
    simulated_gpus = Integer(0, help="GPUs to declare on a machine without any (labelled simulated).").tag(
        config=True)
    node_cpu = Integer(0, help="CPUs the local node offers to jobs; 0 = the machine's count.").tag(config=True)
    node_memory_mb = Integer(0, help="Memory (MB) the local node offers; 0 = the machine's.").tag(config=True)
    backend = Unicode("local", help="Where tasks run: 'local' (this machine), or a backend registered in the "
                      "pai_hub.backends entry point group, e.g. 'slurm' or 'kubernetes'.").tag(config=True)
    backend_config = Dict(help="Keyword arguments for a non-local backend (see docs/slurm.md, "
                          "docs/kubernetes.md).").tag(config=True)
    blocking_threads = Integer(2, help="Threads that run the API's synchronous work (store queries, password "
                               "hashing) off the event loop. More helps a remote database's round trips; each "
                               "competes with the loop for the GIL.").tag(config=True)
    stop_grace = Float(10.0, help="Seconds between SIGTERM and SIGKILL when stopping a task.").tag(config=True)
    max_job_bytes = Integer(1 << 20, help="Largest job protocol accepted, in bytes.").tag(config=True)
    max_job_nodes = Integer(50_000, help="Most YAML/JSON nodes one document may have after alias expansion "
                            "(also bounds the time one document may take to read).").tag(config=True)
    max_job_depth = Integer(64, help="Deepest nesting of one document's mappings and sequences.").tag(config=True)
    max_task_roles = Integer(100, help="Most task roles in one job.").tag(config=True)
    max_instances_per_role = Integer(1_000, help="Most instances of one task role.").tag(config=True)
    max_tasks_per_job = Integer(10_000, help="Most tasks of one job (the sum of its roles' instances).").tag(
        config=True)
    max_rendered_chars = Integer(4 << 20, help="Most characters the <% %> templates of one job may render "
                                 "to, all together.").tag(config=True)
    max_streams_per_user = Integer(16, help="Most open event streams, debug terminals and streamed log reads "
                                   "one user may hold at once; the next is a 429.").tag(config=True)
    max_array_size = Integer(10_000, help="Most jobs one request may submit: the elements of a job array "
                             "(pai job submit --array) or the documents of a batch (POST /jobs/batch).").tag(config=True)
    max_batch_bytes = Integer(64 << 20, help="Largest body of a batch submission (POST /jobs/batch), in "
                              "bytes.").tag(config=True)
    cluster_config = Dict(help="The cluster and its virtual clusters in HiveD's format (physicalCluster with "
                          "skuTypes, cellTypes, physicalCells; virtualClusters). Empty: cluster_config_file, "
                          "else <data_dir>/cluster.yaml, else one generated for this machine.").tag(config=True)
    cluster_config_file = Unicode("", help="A YAML file with the cluster config (HiveD's format); reloaded by "
                                  "POST /api/v2/cluster/reload.").tag(config=True)
    admin_user = Unicode("admin", help="The first administrator, created on first start.").tag(config=True)
    debug_reservation_minutes = Float(0.0, help="How long a failed job's task is kept for debugging when the job "
                                      "does not say (extras.debugReservation.minutes); 0: not kept.").tag(config=True)
    debug_reservation_max_minutes = Float(120.0, help="The longest debug reservation a job may ask for; its "
                                          "GPUs count against the VC meanwhile.").tag(config=True)
    max_platform_retries = Integer(10, help="Retries of a job failing for transient (platform) reasons, at "
                                   "most; they do not count against jobRetryCount.").tag(config=True)
    exit_spec_file = Unicode("", help="The failure rules (OpenPAI's exit spec format) tasks are classified by; "
                             "edits apply to the next failure. Empty: the built-in rules.").tag(config=True)
    marketplace_review_public = Bool(False, help="Public marketplace items by non-admins wait for an admin's "
                                     "approval before others see them (pai_hub/marketplace).").tag(config=True)
    # -- retention of finished tasks' directories and logs (docs/admin-guide.md, "Retention")
    retention_compact_after = Float(3600.0, help="Seconds after a task ended before its directory is folded into "
                                    "the task archive (logs kept, readable as before); negative: never.").tag(config=True)
    retention_expire_after_days = Float(0.0, help="Days after a task ended before its logs and files are deleted "
                                        "(a tombstone says why); 0: never.").tag(config=True)
    retention_max_log_bytes = Integer(8 << 20, help="Bytes kept of each log at compaction (head and tail, a "
                                      "marker between); 0: all.").tag(config=True)
    retention_interval = Float(300.0, help="Seconds between retention sweeps; 0: retention off.").tag(config=True)
    # -- who users' tasks and notebooks run as (docs/admin-guide.md, "Security model"; issue 16)
    isolation = CaselessStrEnum(["auto", "none", "users", "sandbox"], "auto", help="Who users' tasks and "
                                "notebooks run as. 'none': this server's own Unix user (a single-user machine); "
                                "'users': each PAI user's own Unix account; 'sandbox': that account inside a "
                                "bubblewrap sandbox (private /tmp, the platform's files not mounted); 'auto': "
                                "sandbox when the server runs as root and bwrap is installed, users as root "
                                "without bwrap, else none. Env PAI_ISOLATION, flag --isolation.").tag(config=True)
    isolation_account_template = Unicode("pai-{username}", help="The Unix account of a PAI user ({username}: the "
                                         "PAI name made Unix-safe).").tag(config=True)
    isolation_uid_min = Integer(40000, help="Lowest uid (and gid) given to accounts created on first use.").tag(
        config=True)
    isolation_uid_max = Integer(49999, help="Highest uid (and gid) given to accounts created on first use.").tag(
        config=True)
    isolation_home_root = Unicode("/home", help="Where created accounts' homes are made (0700, owned by the "
                                  "account); a task's and a notebook's HOME.").tag(config=True)
    isolation_accounts = Dict(help="PAI user -> an existing Unix account to run that user's tasks as (used as is, "
                              "never created), e.g. {'alice': 'alice'}.").tag(config=True)
    isolation_create_accounts = Bool(True, help="Create a missing account on a user's first task (useradd); off: "
                                     "a task of a user without an account fails, saying so.").tag(config=True)
    isolation_hidden_paths = List(Unicode(), help="More paths no task may see besides the data directory and "
                                  "this server's home (e.g. a hub directory kept elsewhere).").tag(config=True)

    # -- as a JupyterHub-managed service (pai_hub/hub, pai_hub/api/hubauth.py); the hub sets the env
    hub_api_url = Unicode(help="JupyterHub's API URL; set: hub API tokens are accepted. Default "
                          "$JUPYTERHUB_API_URL.").tag(config=True)
    hub_api_token = Unicode(help="This service's hub API token (reads users' admin flag and groups). Default "
                            "$JUPYTERHUB_API_TOKEN.").tag(config=True)
    hub_service_name = Unicode(help="This service's name in the hub; hub tokens must carry "
                               "access:services!service=<name>. Default $JUPYTERHUB_SERVICE_NAME.").tag(config=True)
    hub_token_cache_seconds = Float(30.0, help="How long the hub's answer about a token is reused.").tag(config=True)

    @default("hub_api_url")
    def _default_hub_api_url(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "")

    @default("hub_api_token")
    def _default_hub_api_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @default("hub_service_name")
    def _default_hub_service_name(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_NAME", "")

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return os.environ.get("PAI_DATA_DIR", str(Path.home() / ".pai-hub"))

    _ENV = {"PAI_BACKEND": ("backend", str), "PAI_PORT": ("port", int), "PAI_IP": ("ip", str), "PAI_DB_URL": ("db_url", str),
            "PAI_SIMULATED_GPUS": ("simulated_gpus", int), "PAI_NODE_CPU": ("node_cpu", int),
            "PAI_STOP_GRACE": ("stop_grace", float), "PAI_ISOLATION": ("isolation", str)}

    def load_layers(self, overrides: dict[str, Any]) -> None:
        """pai_config.py in the data directory, then PAI_* variables, then explicit overrides.

        The data directory is checked (made) private first: ``pai_config.py`` is code this server runs,
        and one that others could write would run as the platform's user (:mod:`pai_hub.datadir`)."""
        data_dir = overrides.get("data_dir") or self.data_dir
        datadir.prepare(data_dir)
        config_file = Path(data_dir) / "pai_config.py"
        if config_file.exists():
            self.load_config_file(config_file.name, path=str(config_file.parent))
        for var, (trait, cast) in self._ENV.items():
            if var in os.environ:
                try:
                    setattr(self, trait, cast(os.environ[var]))
                except ValueError:
                    raise SystemExit(f"environment variable {var}={os.environ[var]!r}: expected {cast.__name__}") from None
        for trait, value in overrides.items():
            if value is not None:
                setattr(self, trait, value)

    # -- wiring ---------------------------------------------------------------------------------
    services: Services | None = None  # set by start_services
    retention: Retention | None = None  # set by start_services (None: off, or a backend without task dirs)

    @property
    def controller(self) -> Controller:
        assert self.services is not None, "start_services() first"
        return self.services.controller

    @property
    def store(self) -> Store:
        assert self.services is not None, "start_services() first"
        return self.services.store

    @property
    def virtual_clusters(self) -> list[str]:
        """The VCs in force; before the server starts (``pai user`` commands), just ``default``."""
        return self.services.cluster.virtual_clusters if self.services is not None else ["default"]

    async def start_services(self) -> web.Application:
        """Build every part of the server, in order, into one :class:`Services`; start the loop."""
        policy = self.isolation_policy()
        # private umask, the directory created private or refused when others can read it (issue 16)
        data = datadir.prepare(self.data_dir, traversable=policy.switches_users)
        self.policy = policy
        log.info("%s", describe(policy))
        blocking = BlockingPool(self.blocking_threads)
        store = open_store(self.db_url or sqlite_url(data), secrets_key=data / "secrets.key")
        users = UserRepository(store)
        backend = self._make_backend(data)
        await backend.open()  # some backends learn their nodes when they open (Kubernetes, Slurm)
        nodes = backend.nodes()
        path = Path(self.cluster_config_file) if self.cluster_config_file else data / "cluster.yaml"
        source = ClusterSource(path, dict(self.cluster_config), backend.nodes)
        try:
            config = load_config(source.read())
        except (HivedConfigError, ValueError) as exc:
            raise SystemExit(f"cluster config ({source.origin}): {exc}") from None
        virtual_clusters = list(config.virtual_clusters)
        users.ensure_groups(virtual_clusters)
        groups = GroupRepository(store, users)
        groups.sync_virtual_clusters(virtual_clusters)
        self.admin_token = self._bootstrap_admin(users, data)
        market = open_marketplace(store, groups, self.marketplace_review_public)  # examples on first start
        from pai_runtime.ports import hashed_ports

        specs = SpecBuilder(data / "checkpoints", self.exit_spec_file or None)
        machine = Machine(HivedScheduler(config), nodes, specs, hashed_ports,
                          stop_grace=self.stop_grace, cluster_facts=ClusterFacts.from_config(config),
                          debug_default_minutes=self.debug_reservation_minutes,
                          debug_max_minutes=self.debug_reservation_max_minutes,
                          max_platform_retries=self.max_platform_retries)
        controller = Controller(store, backend, machine, self._plan_of)
        await controller.start(backend_open=True)
        self.retention = start_retention(backend, RetentionPolicy(
            compact_after=self.retention_compact_after, expire_after=self.retention_expire_after_days * 86400,
            max_log_bytes=self.retention_max_log_bytes, interval=self.retention_interval), controller)
        cluster = ClusterConfig(config, source, controller, groups, blocking)
        hub_auth = None
        if self.hub_api_url:  # a JupyterHub-managed service: hub API tokens are accepted too
            hub_auth = HubTokenAuth(HubSettings(self.hub_api_url, self.hub_api_token, self.hub_service_name,
                                                self.hub_token_cache_seconds),
                                    users, groups, lambda: cluster.virtual_clusters, blocking)
        self.services = Services(
            settings=ServerSettings(ip=self.ip, port=self.port, data_dir=data, max_job_bytes=self.max_job_bytes,
                                    max_array_size=self.max_array_size, max_batch_bytes=self.max_batch_bytes,
                                    isolation=policy, limits=self.protocol_limits(),
                                    max_streams_per_user=self.max_streams_per_user),
            store=store, users=users, groups=groups, controller=controller, cluster=cluster, market=market,
            # metrics, GPU health, alerts (pai_hub/monitoring)
            monitor=start_monitoring(controller, cluster, data, Monitoring(config=self.config)),
            # NNI experiments whose trials are PAI jobs (pai_hub/experiments)
            experiments=start_experiments(data, self.port, users, controller, blocking, isolation=policy),
            blocking=blocking, hub_auth=hub_auth,
        )
        return web.Application(routes(), services=self.services, default_handler_class=NotFoundHandler,
                               log_function=log_function)  # API latency by handler (pai_hub/monitoring)

    policy: IsolationPolicy | None = None  # set by start_services

    def protocol_limits(self) -> protocol.Limits:
        """Bounds on every document users send (pai_hub/protocol/limits.py), from the settings."""
        return protocol.Limits(max_bytes=max(4 * self.max_job_bytes, 4 << 20), max_nodes=self.max_job_nodes,
                               max_depth=self.max_job_depth, max_task_roles=self.max_task_roles,
                               max_instances=self.max_instances_per_role, max_total_tasks=self.max_tasks_per_job,
                               max_rendered_chars=self.max_rendered_chars)

    def isolation_policy(self) -> IsolationPolicy:
        """The isolation settings in force (``auto`` resolved for this machine), with the paths a
        sandbox hides (the data directory, this server's home) and shows read-only (Python, the code)."""
        return build_policy(self.isolation, Path(self.data_dir), account_template=self.isolation_account_template,
                            uid_min=self.isolation_uid_min, uid_max=self.isolation_uid_max,
                            home_root=self.isolation_home_root, accounts=self.isolation_accounts,
                            create_accounts=self.isolation_create_accounts,
                            extra_hidden=self.isolation_hidden_paths)

    def _make_backend(self, data: Path) -> Any:
        """The local backend, or one found by name in the ``pai_hub.backends`` entry points. Either
        gets the isolation policy when its constructor takes one (``isolation=``)."""
        if self.backend == "local":
            extra = {"isolation": self.policy} if _accepts(LocalBackend, "isolation") else {}
            return LocalBackend(data / "run", simulated_gpus=self.simulated_gpus or None,
                                cpu=self.node_cpu or None, memory_mb=self.node_memory_mb or None, **extra)
        from importlib.metadata import entry_points

        found = {ep.name: ep for ep in entry_points(group="pai_hub.backends")}
        if self.backend not in found:
            raise SystemExit(f"PaiHub.backend: no backend {self.backend!r}; installed: {', '.join(sorted(found))}")
        cls = found[self.backend].load()
        kwargs = dict(self.backend_config)
        if _accepts(cls, "run_root"):
            kwargs.setdefault("run_root", data / "run")
        if _accepts(cls, "isolation") and self.policy is not None:
            kwargs.setdefault("isolation", self.policy)
        try:
            if not self.backend_config and hasattr(cls, "from_env"):
                return cls.from_env(**kwargs)  # e.g. Kubernetes: PAI_K8S_* as the Helm chart sets them
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"PaiHub.backend_config for {self.backend}: {exc}") from None

    def _plan_of(self, job: JobRecord) -> Any:
        doc = dict(job.protocol)
        if job.secrets:
            doc["secrets"] = job.secrets
        # accepted already: re-rendered without today's limits, so lowering one never breaks a stored job
        return protocol.render(protocol.load_dict(doc, protocol.NO_LIMITS), username=job.username,
                               limits=protocol.NO_LIMITS)

    def _bootstrap_admin(self, users: UserRepository, data: Path) -> str | None:
        """On first start: an admin user and a user token without expiry, kept in ``admin-token``
        (0600). A user token, not an application token: OpenPAI's application tokens may not manage
        users, groups or tokens, and this one is the admin's way in."""
        token_file = data / "admin-token"
        if users.get(self.admin_user) is None:
            users.create(self.admin_user, secrets.token_urlsafe(12), admin=True)
            token = users.create_token(self.admin_user, name="bootstrap", application=False)
            fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
        token = token_file.read_text().strip() if token_file.exists() else None
        if token and users.make_user_token(token):  # printed as an application token by earlier versions
            log.info("the bootstrap admin token in %s is now a user token (application tokens may not manage "
                     "users, groups or tokens)", token_file)
        return token

    async def serve(self) -> None:
        app = await self.start_services()
        # tornado's server whose accept loop backs off when descriptors run out (pai_hub/api/httpserver.py)
        server = PaiHTTPServer(app, max_body_size=max(self.max_job_bytes * 4, 4 << 20), xheaders=False)
        server.listen(self.port, address=self.ip)
        url = f"http://{self.ip}:{self.port}"
        print(f"PAI Hub {__version__} listening on {url}/api/v2", flush=True)
        if self.policy is not None:
            print(describe(self.policy), flush=True)  # who users' tasks run as, and what it means
        if self.admin_token:  # to whoever started the server; kept only in <data>/admin-token (0600)
            print(f"admin token ({self.admin_user}): {self.admin_token}", flush=True)
            print(f"  export PAI_URL={url} PAI_TOKEN={self.admin_token}", flush=True)
        services = self.services
        assert services is not None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        failed = asyncio.ensure_future(services.controller.wait_failed())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([failed, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        server.stop()
        if self.retention is not None:
            await self.retention.close()
        await services.monitor.close()
        await services.controller.close()
        services.blocking.close()
        services.store.close()
        if failed.done():  # fail-stop: exit non-zero so that JupyterHub (or systemd) restarts the service
            raise SystemExit(f"pai-hub: stopped after an internal error: {failed.result()!r}")
        failed.cancel()


def _accepts(cls: Any, parameter: str) -> bool:
    """Whether ``cls(...)`` takes the keyword ``parameter``."""
    try:
        return parameter in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
