"""Login on a real ``pai server`` (issue 17): the same answer and time for an unknown user and a
wrong password, failed logins limited per user and per client address (429 + Retry-After), and
bad ``expiration`` values a 400 naming the field."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from pai_hub.api.throttle import LoginThrottle
from tests.server import Server


@pytest.fixture
def srv(tmp_path):
    s = Server(tmp_path / "data", args=("--simulated-gpus", "0", "--node-cpu", "2"))
    s.data_dir.mkdir(parents=True)
    try:
        yield s.start()
    finally:
        s.stop()
        s.kill_tasks()


def login(srv: Server, username: str, password: str, **extra) -> httpx.Response:
    return httpx.post(srv.url + "/api/v2/authn/basic/login", json={"username": username, "password": password, **extra},
                      timeout=30)


def timed(srv: Server, username: str, password: str) -> tuple[httpx.Response, float]:
    t = time.perf_counter()
    r = login(srv, username, password)
    return r, time.perf_counter() - t


def test_an_unknown_user_and_a_wrong_password_look_the_same(srv):
    srv.add_user("lou")
    wrong = [timed(srv, "lou", "not-the-password") for _ in range(4)]
    unknown = [timed(srv, "nobody-here", "not-the-password") for _ in range(4)]
    nopass = [timed(srv, "hubonly", "x")]  # a user with no password (hub-mirrored) likewise
    bodies = {(r.status_code, r.text) for r, _ in wrong + unknown}
    assert len(bodies) == 1, bodies
    status, text = bodies.pop()
    assert status == 400 and "IncorrectPasswordError" in text
    assert nopass[0][0].status_code == 400
    # a hash is checked either way: an unknown name is not answered an order of magnitude faster
    fast, slow = statistics.median(t for _, t in unknown), statistics.median(t for _, t in wrong)
    assert fast > slow / 3, (fast, slow)


def test_failed_logins_are_limited_per_user_then_429_with_retry_after(srv):
    srv.add_user("rita")
    srv.add_user("sam")
    limit = LoginThrottle().per_user
    for _ in range(limit):
        assert login(srv, "rita", "guess").status_code == 400
    r = login(srv, "rita", "secret-pw")  # even the right password, until the window passes
    assert r.status_code == 429, r.text
    assert r.json()["code"] == "TooManyRequestsError" and 1 <= int(r.headers["Retry-After"]) <= 60
    assert login(srv, "sam", "secret-pw").status_code == 200  # another user is not locked out


def test_failed_logins_are_limited_per_client_address(srv):
    limit = LoginThrottle().per_address
    for i in range(limit):
        assert login(srv, f"guess{i}", "guess").status_code == 400
    r = login(srv, "anyone-else", "guess")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("login") / "data", args=("--simulated-gpus", "0", "--node-cpu", "2"))
    s.data_dir.mkdir(parents=True)
    try:
        yield s.start()
    finally:
        s.stop()
        s.kill_tasks()


@pytest.mark.parametrize("value", ["1e400", "-1e400", "NaN", "Infinity", "-1", "59", "604801", "true", "null",
                                   "[]", '"abc"', '"1e400"', "{}", "1" + "0" * 400])
def test_a_bad_expiration_is_a_400_naming_the_field(shared, value):
    body = '{"username": "admin", "password": "whatever", "expiration": ' + value + "}"
    r = httpx.post(shared.url + "/api/v2/authn/basic/login", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith("expiration:"), r.text


def test_a_good_expiration_gives_a_token_of_that_lifetime(srv):
    srv.add_user("eve")
    r = login(srv, "eve", "secret-pw", expiration=120.0)
    assert r.status_code == 200, r.text
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {r.json()['token']}"}) as c:
        [tok] = [t for t in c.get("/api/v2/tokens").json()["details"] if not t["application"]][-1:]
    assert 110_000 <= tok["expiresAt"] - tok["createdAt"] <= 130_000


def test_the_throttle_forgets_after_the_window_and_bounds_its_memory():
    t = LoginThrottle(per_user=2, per_address=100, window=60, max_keys=50)
    t.failed("a", "h", now=0)
    t.failed("a", "h", now=1)
    assert t.retry_after("a", "h", now=2) == 58
    assert t.retry_after("a", "h", now=61) == 0
    for i in range(500):
        t.failed(f"u{i}", f"h{i}", now=100)
    assert len(t._failures) <= 50
