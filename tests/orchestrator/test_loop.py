"""The loop's promise to readers: the API shows only what the store already holds.

The machine changes within a turn and the store catches up while the commit runs on the writer
thread; a client that read a job's final state in that window and then asked for its events found
no final event (and a crash then would have taken back what it was shown). Found by CI, in the
kill -9 restart test.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
from tornado import httpserver

from pai_hub.app import PaiHub
from pai_hub.orchestrator import loop as loop_module
from pai_hub.orchestrator.records import TERMINAL
from tests.server import job_yaml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_job_is_shown_final_only_once_its_final_event_is_stored(tmp_path, monkeypatch):
    real_persist = loop_module.job_store.persist
    final_commit_started = threading.Event()
    release = threading.Event()

    def gated_persist(store, fx):
        # hold back the commit that ends the job, as a slow disk or a busy machine would
        if any(j.state in TERMINAL for j in fx.jobs.values()):
            final_commit_started.set()
            release.wait(30)
        real_persist(store, fx)

    monkeypatch.setattr(loop_module.job_store, "persist", gated_persist)

    async def scenario() -> None:
        app = PaiHub(data_dir=str(tmp_path / "data"), node_cpu=4)
        web_app = await app.start_services()
        server = httpserver.HTTPServer(web_app)
        port = _free_port()
        server.listen(port, address="127.0.0.1")
        headers = {"Authorization": f"Bearer {app.admin_token}"}
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers,
                                         timeout=60) as c:
                r = await c.post("/api/v2/jobs", content=job_yaml("quick", ["true"]),
                                 headers={"Content-Type": "text/yaml"})
                assert r.status_code == 202, r.text
                await asyncio.get_running_loop().run_in_executor(None, final_commit_started.wait, 30)
                names = app.controller.machine.names  # ended: it left memory with its final turn
                assert "admin~quick" in names and names.get("admin~quick") is None

                detail = asyncio.create_task(c.get("/api/v2/jobs/admin~quick"))
                await asyncio.sleep(0.5)  # deliberate: proves the read does NOT answer while the commit is held
                assert not detail.done(), "the detail answered before the job's end was committed"
                release.set()
                r = await detail
                assert r.json()["jobStatus"]["state"] == "SUCCEEDED"
                events = (await c.get("/api/v2/jobs/admin~quick/events")).json()["data"]
                assert [e["reason"] for e in events if e["reason"] == "JobSucceeded"] == ["JobSucceeded"]
        finally:
            release.set()
            server.stop()
            await app.controller.close()
            app.store.close()

    asyncio.run(scenario())
