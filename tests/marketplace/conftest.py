"""One real ``pai server`` for the marketplace API tests, with users in the roles of the matrix:
``alice`` (the author), ``bob`` (in alice's group ``team``), ``carol`` (another user), the admin."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from tests.server import Server

MARKET = "/marketplace/api"


def job_template(name: str, command: str, header: str = "") -> str:
    """The text of a one-worker template (python:3.11, 1 CPU, 256 MB, no GPU) that runs ``command``,
    as an author would publish it; ``header`` adds top-level lines such as ``parameters:``."""
    return f"""protocolVersion: 2
name: {name}
type: job
{header}prerequisites:
  - {{name: image, type: dockerimage, uri: python:3.11}}
taskRoles:
  worker:
    instances: 1
    dockerImage: image
    resourcePerInstance: {{cpu: 1, memoryMB: 256, gpu: 0}}
    commands:
      - {command}
"""


@dataclass
class Market:
    server: Server
    tokens: dict[str, str]

    def client(self, who: str | None) -> httpx.Client:
        """A client acting as ``who`` (``None``: anonymous, no Authorization header)."""
        if who is None:
            return httpx.Client(base_url=self.server.url, timeout=30)
        return self.server.client(self.tokens[who])

    def publish(self, who: str, **body) -> httpx.Response:
        with self.client(who) as c:
            return c.post(f"{MARKET}/items", json=body)


def start_market(tmp_path_factory, config: str = "") -> tuple[Server, Market]:
    srv = Server(tmp_path_factory.mktemp("market") / "data", args=("--simulated-gpus", "0", "--node-cpu", "8"))
    srv.data_dir.mkdir(parents=True, mode=0o700)  # the server refuses a data directory others can read
    if config:
        (srv.data_dir / "pai_config.py").write_text(config)
        (srv.data_dir / "pai_config.py").chmod(0o600)
    srv.start()
    tokens = {"admin": srv.admin_token}
    for name in ("alice", "bob", "carol"):
        tokens[name] = srv.add_user(name)
    with srv.client() as c:
        assert c.post("/api/v2/groups", json={"groupname": "team"}).status_code == 201
        for name in ("alice", "bob"):
            assert c.put(f"/api/v2/users/{name}/group", json={"groupname": "team"}).status_code == 201
    return srv, Market(srv, tokens)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    srv, m = start_market(tmp_path_factory)
    yield m
    srv.stop()
    srv.kill_tasks()
