"""Nothing blocks the event loop: password hashing and store calls run off it (pai_hub/blocking.py).

A real server watches its own loop (``Monitoring.loop_lag_interval``: a timer every 5 ms) while 20
logins (argon2, slow on purpose) and 200 marketplace calls (SQLAlchemy) are in flight together.
Between two wake-ups, the loop's thread may not spend 50 ms of CPU beyond the 5 ms it slept
(``pai_event_loop_held_seconds``): that is work holding the loop. The wall-clock lag
(``pai_event_loop_lag_seconds``) is reported too, but not asserted: on a shared CI machine it
also counts the time the OS gave other processes.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.server import Server

USERS = 20
MARKET_CALLS = 200
MAX_LAG = 0.05
CONNECTIONS = 20  # the client's connection pool: requests beyond it queue in the client, all in flight


def histogram(server: Server, name: str) -> tuple[float, float]:
    """(wake-ups measured, wake-ups whose ``name`` was at most MAX_LAG) so far, from /metrics."""
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {server.admin_token}"},
                     timeout=30).text
    count = within = None
    for line in text.splitlines():
        if line.startswith(f"{name}_count "):
            count = float(line.split()[-1])
        elif line.startswith(f'{name}_bucket{{le="{MAX_LAG}"}} '):
            within = float(line.split()[-1])
    assert count is not None and within is not None, f"the server exports no {name}"
    return count, within


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)  # the server refuses a data directory others may read
    (data / "pai_config.py").write_text("c.Monitoring.loop_lag_interval = 0.005\n")
    (data / "pai_config.py").chmod(0o600)
    srv = Server(data).start()
    yield srv
    srv.stop()


async def _load(server: Server) -> None:
    async def login(i: int) -> None:
        r = await c.post("/api/v2/authn/basic/login", json={"username": f"user{i}", "password": "secret-pw"})
        assert r.status_code == 200, r.text

    async def browse(i: int) -> None:
        path = "/marketplace/api/items" if i % 2 else f"/marketplace/api/items/shared-{i % 5}"
        r = await c.get(path, headers={"Authorization": f"Bearer {server.admin_token}"})
        assert r.status_code == 200, r.text

    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as c:
        await asyncio.gather(*[login(i) for i in range(USERS)], *[browse(i) for i in range(MARKET_CALLS)])


def test_logins_and_marketplace_calls_leave_the_loop_free(server):
    with server.client() as c:
        for i in range(USERS):
            r = c.post("/api/v2/users", json={"username": f"user{i}", "password": "secret-pw"})
            assert r.status_code == 201, r.text
        for i in range(5):
            r = c.post("/marketplace/api/items", json={"name": f"shared-{i}", "type": "data", "isPublic": True,
                                                       "protocol": "uri: [https://example.com/data.tgz]\n"})
            assert r.status_code == 201, r.text
    before = {name: histogram(server, name) for name in ("pai_event_loop_held_seconds", "pai_event_loop_lag_seconds")}

    asyncio.run(_load(server))

    over = {}
    for name, (count_before, within_before) in before.items():
        count, within = histogram(server, name)
        assert count > count_before, f"{name}: the loop was not watched during the load"
        over[name] = ((count - within) - (count_before - within_before), count - count_before)
    held, looks = over["pai_event_loop_held_seconds"]
    late, _ = over["pai_event_loop_lag_seconds"]
    assert held == 0, (f"{held:.0f} of {looks:.0f} looks found the server's loop held over {MAX_LAG * 1000:.0f} ms "
                       f"of CPU while logins and marketplace calls ran ({late:.0f} came that late by the clock)")
