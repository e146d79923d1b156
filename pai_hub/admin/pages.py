"""The hub pages: my home (notebooks, jobs, experiments, quota) for everyone; VCs, nodes and GPUs,
and usage for admins.

Pages are clients of the REST API, like OpenPAI's web portal: a page handler logs the browser in
through Hub OAuth (``HubOAuthenticated``), then calls this same control plane's API over loopback
through the one client (``pai_client``, shared per event loop: :mod:`.access`) with the user's own
OAuth token, which the API accepts as a hub token (``api/hubauth.py``). So a page shows exactly
what the API lets that user see, and an admin page is 403 for a non-admin.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import yaml
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado import template, web

from pai_client import AsyncPaiClient, PaiError
from pai_client.shared import as_user

from ..services import Services

TEMPLATES = template.Loader(str(Path(__file__).with_name("templates")))
ACTIVE = ("WAITING", "RUNNING", "STOPPING")
NOTEBOOK_PREFIX = "jupyter-"


class PageHandler(HubOAuthenticated, web.RequestHandler):
    """Base of every page: Hub OAuth login, the API as the logged-in user (``self.pai``), rendering
    in the hub's look."""

    admin_only = False
    pai: AsyncPaiClient

    def initialize(self) -> None:
        settings = self.application.settings
        if "cookie_secret" not in settings:
            # HubOAuth keeps the user's token in a signed cookie: a secret stable across restarts,
            # derived from this service's hub token (which only the hub and this service know)
            key = os.environ.get("JUPYTERHUB_API_TOKEN", "") or os.urandom(32).hex()
            settings["cookie_secret"] = hmac.new(key.encode(), b"pai-hub pages cookie", hashlib.sha256).hexdigest()

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")

    @property
    def services(self) -> Services:
        return self.application.settings["services"]

    @property
    def prefix(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/pai/")

    @property
    def hub_prefix(self) -> str:
        return os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/"

    async def prepare(self) -> None:
        self.me: dict[str, Any] = {}
        if self.current_user is None:
            if self.request.method in ("GET", "HEAD"):
                self.redirect(self.get_login_url())
                return
            raise web.HTTPError(403)
        self.pai = as_user(self.services.settings.loopback_url, self.hub_auth.get_token(self) or "")
        try:
            self.me = await self.pai.user("me")
        except PaiError as exc:
            raise web.HTTPError(403, f"the PAI service does not accept you: {exc.message}") from None
        if self.admin_only and not self.me.get("admin"):
            raise web.HTTPError(403, "this page is for administrators")

    # -- rendering -------------------------------------------------------------------------------
    def page(self, name: str, **ns: Any) -> None:
        self.finish(TEMPLATES.load(name).generate(
            prefix=self.prefix, hub=self.hub_prefix, me=self.me, user=self.current_user,
            xsrf_form_html=self.xsrf_form_html, msg=self.get_argument("msg", ""),
            error=self.get_argument("error", ""), fmt_time=fmt_time, quote=quote, **ns))

    def back(self, msg: str = "", error: str = "") -> None:
        args = {k: v for k, v in (("msg", msg), ("error", error)) if v}
        self.redirect(self.request.path + ("?" + urlencode(args) if args else ""))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(TEMPLATES.load("error.html").generate(
            prefix=self.prefix, hub=self.hub_prefix, me=getattr(self, "me", {}) or {},
            user=getattr(self, "_hub_auth_user_cache", None), status=status_code, message=message,
            xsrf_form_html=lambda: "", msg="", error="", fmt_time=fmt_time, quote=quote))


def fmt_time(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


class HomeHandler(PageHandler):
    """Every user: my notebooks, my jobs (filters), my experiments, the quota left in my VCs."""

    async def get(self) -> None:
        filters = {k: self.get_argument(k, "") for k in ("state", "vc", "keyword")}
        jobs = await self.pai.jobs(username=self.me["username"], limit=500, **filters)
        notebooks = await self._notebooks()
        experiments = await self.pai.experiments()
        vcs = await self.pai.virtual_clusters()
        mine = set(self.me.get("virtualCluster") or [])
        quota = {name: vc for name, vc in vcs.items() if name in mine}
        self.page("home.html", jobs=jobs, filters=filters, notebooks=notebooks, experiments=experiments,
                  quota=quota, my_vcs=sorted(mine))

    async def _notebooks(self) -> list[dict[str, Any]]:
        """My notebook jobs (``extras.paiHub.type: notebook``) that are waiting or running."""
        active = await self.pai.jobs(username=self.me["username"], state=ACTIVE, limit=100)
        out = []
        for job in active:
            if not job["name"].startswith(NOTEBOOK_PREFIX) or len(out) >= 20:
                continue
            try:
                doc = yaml.safe_load(await self.pai.config(f"{job['username']}~{job['name']}"))
            except (PaiError, yaml.YAMLError):
                continue
            hub = ((doc or {}).get("extras") or {}).get("paiHub") or {}
            if hub.get("type") != "notebook":
                continue
            server = hub.get("server", "")
            url = f"{self.hub_prefix.rsplit('hub/', 1)[0]}user/{quote(job['username'])}/{quote(server)}"
            out.append({**job, "server": server or "(default)", "url": url.rstrip("/") + "/",
                        "profile": hub.get("profile", "")})
        return out


class VirtualClustersHandler(PageHandler):
    """Admins: each VC's capacity, use and free cells per SKU, queue and running jobs; quotas and the
    groups granting VCs, edited through the API (which refuses what would break VC safety)."""

    admin_only = True

    async def get(self) -> None:
        vcs = await self.pai.virtual_clusters()
        self.page("vcs.html", vcs=vcs, groups=await self.pai.groups(), vc_names=sorted(vcs))

    async def post(self) -> None:
        action = self.get_body_argument("action")
        try:
            if action == "quota":
                vc = self.get_body_argument("vc")
                cells: dict[str, int] = {}
                for key in self.request.body_arguments:
                    if key.startswith("cell:"):
                        value = self.get_body_argument(key).strip()
                        if value:
                            cells[key[5:]] = int(value)
                new_cell, new_value = self.get_body_argument("new_cell", "").strip(), \
                    self.get_body_argument("new_value", "").strip()
                if new_cell and new_value:
                    cells[new_cell] = int(new_value)
                await self.pai.set_virtual_cluster(vc, cells)
                self.back(msg=f"quota of {vc} updated")
            elif action == "group":
                group = self.get_body_argument("group")
                chosen = self.get_body_arguments("vcs")
                await self.pai.update_group(group, virtualClusters=chosen)
                self.back(msg=f"group {group} now grants: {', '.join(chosen) or 'nothing'}")
            else:
                raise web.HTTPError(400, f"unknown action {action!r}")
        except ValueError:
            self.back(error="quotas must be whole numbers")
        except PaiError as exc:
            self.back(error=f"refused ({exc.status}): {exc.message}")


class NodesHandler(PageHandler):
    """Admins: nodes and GPUs (health, allocation, the job on each GPU); mark a node bad or good."""

    admin_only = True

    async def get(self) -> None:
        self.page("nodes.html", nodes=await self.pai.nodes())

    async def post(self) -> None:
        node = self.get_body_argument("node")
        healthy = self.get_body_argument("healthy") == "true"
        try:
            await self.pai.set_node_health(node, healthy)
            self.back(msg=f"node {node} marked {'good' if healthy else 'bad'}")
        except PaiError as exc:
            self.back(error=f"refused ({exc.status}): {exc.message}")


class UsageHandler(PageHandler):
    """Admins: usage by user, from the job list: jobs, running and waiting, GPUs and tasks in use,
    GPU-hours (GPUs × time since launch, until completion)."""

    admin_only = True

    async def get(self) -> None:
        jobs = await self.pai.jobs(limit=50000)
        users = await self.pai.users()
        self.page("usage.html", rows=usage_by_user(jobs, [u["username"] for u in users]))


def usage_by_user(jobs: list[dict[str, Any]], usernames: list[str], now_ms: float | None = None) -> list[dict]:
    now_ms = now_ms if now_ms is not None else time.time() * 1000
    rows: dict[str, dict[str, Any]] = {u: {"username": u, "jobs": 0, "running": 0, "waiting": 0, "gpus": 0,
                                           "tasks": 0, "gpu_hours": 0.0} for u in usernames}
    for j in jobs:
        r = rows.setdefault(j["username"], {"username": j["username"], "jobs": 0, "running": 0, "waiting": 0,
                                            "gpus": 0, "tasks": 0, "gpu_hours": 0.0})
        r["jobs"] += 1
        if j["state"] == "RUNNING":
            r["running"] += 1
            r["gpus"] += j["totalGpuNumber"]
            r["tasks"] += j["totalTaskNumber"]
        elif j["state"] == "WAITING":
            r["waiting"] += 1
        if j.get("launchedTime") is not None and j["state"] != "WAITING":
            end = j.get("completedTime") or now_ms
            r["gpu_hours"] += j["totalGpuNumber"] * max(0.0, end - j["launchedTime"]) / 3_600_000
    return sorted(rows.values(), key=lambda r: (-r["gpus"], -r["gpu_hours"], r["username"]))


class CallbackHandler(HubOAuthCallbackHandler):
    def initialize(self) -> None:
        PageHandler.initialize(self)  # type: ignore[arg-type]


def page_routes() -> list[tuple[str, type]]:
    return [
        (r"/?", HomeHandler),
        (r"/admin/?", VirtualClustersHandler),
        (r"/admin/virtual-clusters", VirtualClustersHandler),
        (r"/admin/nodes", NodesHandler),
        (r"/admin/usage", UsageHandler),
        (r"/oauth_callback", CallbackHandler),
    ]
