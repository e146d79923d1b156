"""Operations: Prometheus metrics, GPU health, alerts, usage reports and event timelines.

Wired into the control plane by three hooks in ``pai_hub/app.py``: :func:`start_monitoring` at the
end of ``PaiHub.start_services`` (its :class:`Monitor` becomes ``Services.monitor``),
:func:`monitoring_routes` in ``routes()``, and :func:`log_function` as tornado's request log (API
latency by handler). The admin guide is docs/operations.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tornado.log import access_log

from ..api.redact import redacted
from ..cluster_config import ClusterConfig
from ..orchestrator.loop import Controller
from .monitor import Monitor, Monitoring

__all__ = ["Monitor", "Monitoring", "log_function", "monitoring_routes", "start_monitoring"]


def start_monitoring(controller: Controller, cluster: ClusterConfig, data_dir: Path,
                     settings: Monitoring) -> Monitor:
    """Start polling and observing a started controller's loop (inside its event loop)."""
    return Monitor(controller, cluster, data_dir, settings).start()


def monitoring_routes() -> list[tuple[str, type]]:
    from .api import routes

    return routes()


def log_function(handler: Any) -> None:
    """tornado's ``log_function``: the request's latency into the metrics (labelled by handler class),
    then the access log line tornado would have written, with tokens in the URI redacted."""
    status = handler.get_status()
    seconds = handler.request.request_time()
    services = handler.application.settings.get("services")
    if services is not None:
        services.monitor.metrics.observe_request(type(handler).__name__, handler.request.method or "", status, seconds)
    if status < 400:
        level = logging.INFO
    elif status < 500:
        level = logging.WARNING
    else:
        level = logging.ERROR
    if access_log.isEnabledFor(level):
        access_log.log(level, "%d %s %s (%s) %.2fms", status, handler.request.method, redacted(handler.request.uri),
                       handler.request.remote_ip, 1000.0 * seconds)
