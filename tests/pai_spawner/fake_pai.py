"""A few routes of the PAI API, served in the test's own event loop, that count every request.

Spawner tests need to know *how many* requests reach PAI (one listing per round, not one look per
server and poll), which a real ``pai server`` does not tell; the routes answer in OpenPAI's shapes.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass
class FakeJob:
    state: str = "RUNNING"
    exit_code: int | None = None
    port: int = 31000
    events: list[dict[str, Any]] = field(default_factory=list)


class FakePai:
    def __init__(self) -> None:
        self.jobs: dict[str, FakeJob] = {}  # user~name → job
        self.requests: list[tuple[str, str]] = []  # (method, path?query) in arrival order
        self.submitted: list[dict[str, Any]] = []  # the job documents posted
        self.list_gate: asyncio.Event | None = None  # set: listings wait for it
        self.detail_hook: Any = None  # called with (framework, job) before each detail answer
        self.server: HTTPServer | None = None
        self.url = ""

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))

    def start(self, port: int = 0) -> FakePai:
        fake = self

        class Base(RequestHandler):
            def prepare(self) -> None:
                fake.requests.append((self.request.method or "", self.request.uri or ""))

            def send(self, body: Any, status: int = 200) -> None:
                self.set_status(status)
                self.set_header("Content-Type", "application/json")
                self.finish(json.dumps(body))

            def find(self, framework: str) -> FakeJob | None:
                job = fake.jobs.get(framework)
                if job is None:
                    self.send({"code": "NoJobError", "message": f"no job {framework}"}, 404)
                return job

        class Jobs(Base):
            def post(self) -> None:
                """A submission: the job waits (a test moves it on); the user is the token's
                (``hub-token-of-<user>``, as tests/pai_spawner/spawners.py makes them)."""
                user = self.request.headers.get("Authorization", "").rsplit("hub-token-of-", 1)[-1]
                doc = yaml.safe_load(self.request.body)
                vc = doc["defaults"]["virtualCluster"]
                if vc != "default":
                    self.send({"code": "InvalidProtocolError", "message": f"VC {vc} does not exist"}, 400)
                    return
                fake.jobs[f"{user}~{doc['name']}"] = FakeJob(state="WAITING")
                fake.submitted.append(doc)
                self.send({"message": "submitted"}, 202)

            async def get(self) -> None:
                if fake.list_gate is not None:
                    await fake.list_gate.wait()
                user, keyword = self.get_argument("username", ""), self.get_argument("keyword", "")
                self.send([{"name": fw.split("~", 1)[1], "username": fw.split("~", 1)[0], "state": j.state,
                            "appExitCode": j.exit_code}
                           for fw, j in fake.jobs.items() if fw.startswith(user + "~") and keyword in fw])

        class Job(Base):
            def get(self, framework: str) -> None:
                job = self.find(framework)
                if job is None:
                    return
                if fake.detail_hook is not None:
                    fake.detail_hook(framework, job)
                running = job.state == "RUNNING"
                task = {"taskIndex": 0, "taskState": job.state, "containerIp": "127.0.0.1",
                        "containerPorts": {"jupyter": str(job.port)} if running else {}}
                self.send({"name": framework.split("~", 1)[1],
                           "jobStatus": {"state": job.state, "appExitCode": job.exit_code},
                           "taskRoles": {"notebook": {"taskRoleStatus": {"name": "notebook"}, "taskStatuses": [task]}}})

        class Stop(Base):
            def put(self, framework: str) -> None:
                job = self.find(framework)
                if job is not None:
                    job.state = "STOPPED"
                    self.send({"message": "ok"}, 202)

        class Events(Base):
            async def get(self, framework: str) -> None:
                job = self.find(framework)
                if job is None:
                    return
                self.set_header("Content-Type", "text/event-stream")
                for event in job.events:
                    self.write(f"data: {json.dumps(event)}\n\n")
                    await self.flush()
                self.write(f"event: end\ndata: {json.dumps({'state': job.state})}\n\n")
                self.finish()

        class Me(Base):
            def get(self) -> None:
                self.send({"username": "alice", "virtualCluster": ["default"]})

        app = Application([
            (r"/api/v2/jobs", Jobs),
            (r"/api/v2/jobs/([^/]+)", Job),
            (r"/api/v2/jobs/([^/]+)/executionType", Stop),
            (r"/api/v2/jobs/([^/]+)/events", Events),
            (r"/api/v2/users/me", Me),
        ])
        sockets = bind_sockets(port, "127.0.0.1")
        self.server = HTTPServer(app)
        self.server.add_sockets(sockets)
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
