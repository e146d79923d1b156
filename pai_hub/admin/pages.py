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

from ..api.redact import redacted
from ..services import Services

TEMPLATES = template.Loader(str(Path(__file__).with_name("templates")))
ACTIVE = ("WAITING", "RUNNING", "STOPPING")
NOTEBOOK_PREFIX = "jupyter-"


class PageHandler(HubOAuthenticated, web.RequestHandler):
    """Base of every page: Hub OAuth login, the API as the logged-in user (``self.pai``), rendering
    in the hub's look."""

    admin_only = False
    pai: AsyncPaiClient

    def _request_summary(self) -> str:
        """tornado's summary of the request in its warning and exception lines, tokens redacted (the
        OAuth callback's ``?code=``/``?state=`` are one-use; ``?token=`` may not be)."""
        return f"{self.request.method} {redacted(self.request.uri or '')} ({self.request.remote_ip})"

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


#: Jobs per page of the home page's list.
PAGE_SIZE = 50


def page_offset(text: str, page_size: int = PAGE_SIZE) -> int:
    """The ``offset`` query argument as a whole page's start (a bad one reads as the first page)."""
    try:
        offset = int(text or 0)
    except ValueError:
        return 0
    return max(0, offset - offset % page_size)


class HomeHandler(PageHandler):
    """Every user: my notebooks, my jobs (filters; a page at a time: the server filters, counts and
    pages with its indexes, so the page costs the same with ten jobs or a million), my experiments,
    the quota left in my VCs."""

    async def get(self) -> None:
        filters = {k: self.get_argument(k, "") for k in ("state", "vc", "keyword")}
        offset = page_offset(self.get_argument("offset", "0"))
        listing = await self.pai.jobs(username=self.me["username"], offset=offset, limit=PAGE_SIZE,
                                      withTotalCount="true", **filters)
        total, jobs = listing["totalCount"], listing["data"]
        if not jobs and offset and total:  # past the end (the list shrank): the last page
            offset = page_offset(str(total - 1))
            listing = await self.pai.jobs(username=self.me["username"], offset=offset, limit=PAGE_SIZE,
                                          withTotalCount="true", **filters)
            total, jobs = listing["totalCount"], listing["data"]
        notebooks = await self._notebooks()
        experiments = await self.pai.experiments()
        vcs = await self.pai.virtual_clusters()
        mine = set(self.me.get("virtualCluster") or [])
        quota = {name: vc for name, vc in vcs.items() if name in mine}
        self.page("home.html", jobs=jobs, filters=filters, notebooks=notebooks, experiments=experiments,
                  quota=quota, my_vcs=sorted(mine), paging=self._paging(filters, offset, len(jobs), total))

    def _paging(self, filters: dict[str, str], offset: int, shown: int, total: int) -> dict[str, Any]:
        """What the pager shows: "1–50 of 120" and the links to the previous and next pages (which
        keep the filters)."""
        def link(to: int) -> str:
            args = {k: v for k, v in filters.items() if v}
            if to:
                args["offset"] = str(to)
            return self.prefix + ("?" + urlencode(args) if args else "") + "#pai-jobs"

        return {"first": offset + 1 if shown else 0, "last": offset + shown, "total": total,
                "prev": link(max(0, offset - PAGE_SIZE)) if offset else None,
                "next": link(offset + PAGE_SIZE) if offset + shown < total else None}

    async def _notebooks(self) -> list[dict[str, Any]]:
        """My notebook jobs (``extras.paiHub.type: notebook``) that are waiting or running."""
        active = await self.pai.jobs(username=self.me["username"], state=ACTIVE, keyword=NOTEBOOK_PREFIX, limit=100)
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


#: Live jobs read per request by the usage page (it pages until a short page).
USAGE_CHUNK = 1000
DEFAULT_USAGE_DAYS = 30


class UsageHandler(PageHandler):
    """Admins: usage by user without loading the job history. What is in use now (running and
    waiting jobs, their GPUs and tasks) comes from the live jobs only (``state=RUNNING,WAITING``),
    paged in bounded chunks; GPU-hours over the window (``?days=``, default 30) come from the
    server's usage report (``GET /api/v2/usage?by=user``), which adds them up in the store."""

    admin_only = True

    async def get(self) -> None:
        try:
            days = max(1, min(366, int(self.get_argument("days", str(DEFAULT_USAGE_DAYS)))))
        except ValueError:
            days = DEFAULT_USAGE_DAYS
        until = time.time()
        report = await self.pai.usage(since=until - days * 86400, until=until, by="user")
        live = await self.live_jobs()
        users = await self.pai.users()
        self.page("usage.html", rows=usage_by_user(live, report, [u["username"] for u in users]), days=days,
                  since=report.get("since", ""), until=report.get("until", ""))

    async def live_jobs(self) -> list[dict[str, Any]]:
        """Every running or waiting job, ``USAGE_CHUNK`` per request (live jobs only: ended ones,
        however many, are never read)."""
        out: list[dict[str, Any]] = []
        while True:
            chunk = await self.pai.jobs(state=("RUNNING", "WAITING"), offset=len(out), limit=USAGE_CHUNK)
            out += chunk
            if len(chunk) < USAGE_CHUNK:
                return out


def usage_by_user(live: list[dict[str, Any]], report: dict[str, Any], usernames: list[str]) -> list[dict]:
    """One row per user: running and waiting jobs, GPUs and tasks in use (from ``live``, the running
    and waiting jobs), and GPU-hours and the jobs and tasks that used GPUs in the window (from the
    usage report's rows, ``key`` = username)."""
    def row(name: str) -> dict[str, Any]:
        return {"username": name, "running": 0, "waiting": 0, "gpus": 0, "tasks": 0, "gpu_hours": 0.0,
                "window_jobs": 0, "window_tasks": 0}

    rows = {u: row(u) for u in usernames}
    for j in live:
        r = rows.setdefault(j["username"], row(j["username"]))
        if j["state"] == "RUNNING":
            r["running"] += 1
            r["gpus"] += j["totalGpuNumber"]
            r["tasks"] += j["totalTaskNumber"]
        elif j["state"] == "WAITING":
            r["waiting"] += 1
    for used in report.get("rows") or []:
        r = rows.setdefault(used["key"], row(used["key"]))
        r["gpu_hours"] += float(used["gpuHours"])
        r["window_jobs"] += int(used["jobs"])
        r["window_tasks"] += int(used["tasks"])
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
