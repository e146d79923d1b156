"""Routes of pai_hub/monitoring: /metrics, alerts, usage reports and timelines.

- ``GET /metrics``: Prometheus exposition. Job names and usernames appear in its labels, so it is
  not public: the scrape token (``<data_dir>/metrics-token`` or ``c.Monitoring.metrics_token``) or
  an admin's API token, as ``Authorization: Bearer``.
- ``GET /api/v2/alerts`` (OpenPAI #59): alerts in Alertmanager's shape; a non-admin sees only those
  about their own jobs (labels ``job_name`` and ``username``).
- ``GET /api/v2/usage``: GPU-hours by user, VC, SKU or job; admins all, users their own; JSON or CSV.
- ``GET /api/v2/jobs/{user~job}/timeline``: a job's transitions and per-task phases; JSON or CSV.
- ``GET /api/v2/cluster/timeline``: the same for every job in a window (admins).
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..api.base import BaseHandler
from ..api.errors import bad_params, unauthorized
from ..api.jobs import JobAccess
from . import timeline, usage
from .monitor import Monitor

FW = r"([^/]+~[^/]+)"
DEFAULT_USAGE_DAYS = 30


class MonitoringAccess(BaseHandler):
    @property
    def monitor(self) -> Monitor:
        return self.services.monitor

    def send_csv(self, text: str, filename: str) -> None:
        self.set_header("Content-Type", "text/csv; charset=UTF-8")
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.finish(text)

    def fmt(self) -> str:
        value = self.get_argument("format", "json")
        if value not in ("json", "csv"):
            raise bad_params("format: json or csv")
        return value

    def window(self, default_days: float | None) -> tuple[float | None, float | None]:
        now = time.time()
        try:
            until = usage.parse_time(self.get_argument("until", None), now)
            since_default = None if default_days is None else until - default_days * 86400
            since_t = usage.parse_time(self.get_argument("since", None), since_default)
        except ValueError as exc:
            raise bad_params(f"since/until: epoch seconds, epoch milliseconds or ISO 8601 ({exc})") from None
        if since_t is not None and since_t >= until:
            raise bad_params("since must be before until")
        return since_t, until


class MetricsHandler(MonitoringAccess):
    public = True

    async def prepare(self) -> None:
        self.scraper = False
        self.principal = None
        if self.monitor.scrape_allowed(self.request.headers.get("Authorization", "")):
            self.scraper = True
            return
        await super().prepare()  # otherwise, the API's authentication (an admin's token)

    def get(self) -> None:
        mon = self.monitor
        if not self.scraper:
            if self.principal is None:
                raise unauthorized("/metrics needs the scrape token (<data_dir>/metrics-token) or an admin's token "
                                   "as Authorization: Bearer")
            self.require_admin()
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(mon.metrics.registry))


class AlertsHandler(MonitoringAccess):
    def get(self) -> None:
        state = self.get_argument("state", "firing")
        if state not in ("firing", "resolved", "all"):
            raise bad_params("state: firing, resolved or all")
        alerts = self.monitor.engine.alerts(state)
        if not self.me.admin:
            alerts = [a for a in alerts if a.labels.get("job_name") and a.labels.get("username") == self.me.username]
        self.send([a.view() for a in alerts])


class UsageHandler(MonitoringAccess):
    async def get(self) -> None:
        by = self.get_argument("by", "user")
        if by not in usage.GROUPS:
            raise bad_params(f"by: one of {', '.join(usage.GROUPS)}")
        fmt = self.fmt()
        since, until = self.window(DEFAULT_USAGE_DAYS)
        assert since is not None and until is not None
        who = self.get_argument("username", None) if self.me.admin else self.me.username
        rows = await self.blocking(usage.task_rows, self.services.store, since, until, who)
        skus = usage.node_skus(self.cluster.sku_types, self.controller.cluster_status()["nodes"])
        rep = usage.report(rows, since, until, by, sku_of=skus.get)
        if who is not None:
            rep["username"] = who
        if fmt == "csv":
            self.send_csv(usage.to_csv(rep), f"pai-usage-by-{by}.csv")
        else:
            self.send(rep)


class JobTimelineHandler(JobAccess, MonitoringAccess):
    async def get(self, framework_name: str) -> None:
        job = await self.find_job(framework_name)
        fmt = self.fmt()
        view = self.get_argument("view", "events")
        if view not in ("events", "tasks"):
            raise bad_params("view: events or tasks")
        data = await self.blocking(timeline.job_timeline, self.services.store, job.id)
        if fmt == "csv":
            columns = timeline.EVENT_COLUMNS if view == "events" else timeline.TASK_COLUMNS
            self.send_csv(timeline.to_csv(data[view], columns), f"{job.username}-{job.name}-timeline-{view}.csv")
        else:
            self.send(data)


class ClusterTimelineHandler(MonitoringAccess):
    async def get(self) -> None:
        self.require_admin()
        fmt = self.fmt()
        view = self.get_argument("view", "tasks")
        if view not in ("events", "tasks"):
            raise bad_params("view: events or tasks")
        since, until = self.window(None)
        rows = await self.blocking(timeline.cluster_timeline, self.services.store, since, until, view)
        if fmt == "csv":
            columns = timeline.EVENT_COLUMNS if view == "events" else timeline.TASK_COLUMNS
            self.send_csv(timeline.to_csv(rows, columns), f"pai-timeline-{view}.csv")
        else:
            self.send({"view": view, "since": timeline._iso(since), "until": timeline._iso(until),
                       "totalCount": len(rows), "data": rows})


def routes() -> list[tuple[str, type]]:
    from ..app import ROUTE_PREFIXES

    table = [
        (r"/alerts", AlertsHandler),
        (r"/usage", UsageHandler),
        (rf"/jobs/{FW}/timeline", JobTimelineHandler),
        (r"/cluster/timeline", ClusterTimelineHandler),
    ]
    out: list[tuple[str, type]] = [(r"/metrics", MetricsHandler)]
    for prefix in ROUTE_PREFIXES:
        out += [(prefix + path, handler) for path, handler in table]
    return out
