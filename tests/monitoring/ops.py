"""Helpers: a `pai server` with fast monitoring, a webhook receiver (tornado), a Prometheus server."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from tornado import web

from tests.server import Server, free_port, make_private


def ops_server(root: Path, gpus: int = 4, rules: str | None = None, webhook: str | None = None,
               readings: dict | None = None) -> Server:
    """A server polling every 0.2 s, with optional alert rules, webhook and simulated GPU readings."""
    data = root / "data"
    data.mkdir(parents=True)
    config = "c.Monitoring.interval = 0.2\n"
    if webhook:
        config += f"c.Monitoring.webhook_url = {webhook!r}\nc.Monitoring.webhook_timeout = 2.0\n"
    (data / "pai_config.py").write_text(config)
    if rules is not None:
        (data / "alert-rules.yaml").write_text(rules)
    if readings is not None:
        write_readings(data, readings)
    make_private(data)  # the server refuses a data directory others can read
    return Server(data, args=("--simulated-gpus", str(gpus), "--node-cpu", "16")).start()


def write_readings(data_dir: Path, readings: dict) -> None:
    tmp = data_dir / "simulated-gpus.json.tmp"
    tmp.write_text(json.dumps(readings))
    tmp.replace(data_dir / "simulated-gpus.json")


def until(fn: Any, timeout: float = 15, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


class WebhookReceiver:
    """A tornado server on 127.0.0.1 in a thread, keeping every JSON body POSTed to /hook."""

    def __init__(self) -> None:
        self.port = free_port()
        self.payloads: list[dict] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("webhook receiver did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _main(self) -> None:
        receiver = self

        class Hook(web.RequestHandler):
            def post(self) -> None:
                receiver.payloads.append(json.loads(self.request.body))
                self.finish("ok")

        server = web.Application([(r"/hook", Hook)]).listen(self.port, address="127.0.0.1")
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        server.stop()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


class Prometheus:
    """A real Prometheus (Debian's `prometheus`) on a free 127.0.0.1 port, scraping one target."""

    def __init__(self, root: Path, config: dict, rules_text: str | None = None) -> None:
        self.root = root
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        if rules_text is not None:
            (root / "pai-hub-alerts.yml").write_text(rules_text)
        (root / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = open(root / "prometheus.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [shutil.which("prometheus") or "prometheus", f"--config.file={root / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--web.enable-lifecycle"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> dict:
        r = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=5)
        return r.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
