"""Hub tokens on the PAI API (pai_hub/api/hubauth.py, over jupyterhub's HubAuth) against a fake hub
and a real store."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from pai_hub.api.hubauth import HubSettings, HubTokenAuth
from pai_hub.blocking import BlockingPool
from pai_hub.store import open_store
from pai_hub.store.users import GroupRepository, UserRepository

SERVICE_TOKEN = "service-token"


class FakeHub(BaseHTTPRequestHandler):
    tokens: dict = {}    # token → /hub/api/user answer
    users: dict = {}     # name → full model (needs the service token)
    calls: list = []

    def do_GET(self):
        token = self.headers.get("Authorization", "").partition(" ")[2]
        FakeHub.calls.append((self.path, token))
        if self.path == "/hub/api/user" and token in self.tokens:
            return self._send(200, self.tokens[token])
        if self.path.startswith("/hub/api/users/") and token == SERVICE_TOKEN:
            name = self.path.rsplit("/", 1)[1]
            if name in self.users:
                return self._send(200, self.users[name])
        self._send(403, {"status": 403})

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeHub.tokens, FakeHub.users, FakeHub.calls = {}, {}, []
    yield f"http://127.0.0.1:{server.server_address[1]}/hub/api"
    server.shutdown()


@pytest.fixture
def pai(tmp_path, hub):
    store = open_store(f"sqlite:///{tmp_path / 'pai.sqlite'}")
    users = UserRepository(store)
    users.ensure_groups(["default", "research"])
    groups = GroupRepository(store, users)
    groups.sync_virtual_clusters(["default", "research"])
    loop = asyncio.new_event_loop()
    blocking = BlockingPool(2)

    async def make() -> HubTokenAuth:  # its HTTP clients belong to the loop it is made in
        return HubTokenAuth(HubSettings(hub, SERVICE_TOKEN, "pai", 30.0), users, groups,
                            lambda: ["default", "research"], blocking)

    ns = SimpleNamespace(users=users, groups=groups, loop=loop, auth=loop.run_until_complete(make()))
    yield ns
    loop.close()
    blocking.close()


def hub_principal(pai, header):
    """The async look-up, run on the test's one loop."""
    return pai.loop.run_until_complete(pai.auth.principal(header))


def give(token, name, scopes=("access:services!service=pai",), admin=False, groups=()):
    FakeHub.tokens[token] = {"kind": "user", "name": name, "scopes": list(scopes), "groups": list(groups)}
    FakeHub.users[name] = {"kind": "user", "name": name, "admin": admin, "groups": list(groups)}


def test_a_hub_user_is_mirrored_with_groups_vcs_and_admin(pai):
    give("t-alice", "alice", groups=["research", "ml-team", "admingroup"])
    p = hub_principal(pai, "token t-alice")
    assert p.username == "alice" and not p.admin and not p.application
    assert p.virtual_clusters == {"default", "research"}  # group research is named like VC research
    user = pai.users.get("alice")
    assert user["grouplist"] == ["default", "research"]  # 'ml-team' is no PAI group name; 'admingroup' ignored
    give("t-root", "root", scopes=["access:services"], admin=True, groups=["newgroup"])
    root = hub_principal(pai, "Bearer t-root")
    assert root.admin and "admingroup" in pai.users.get("root")["grouplist"]
    assert pai.groups.get("newgroup")["extension"]["acls"]["virtualClusters"] == []


def test_answers_are_cached_and_membership_follows_the_hub(pai):
    give("t-bob", "bob", groups=["research"])
    assert hub_principal(pai, "token t-bob").virtual_clusters == {"default", "research"}
    asked = len(FakeHub.calls)
    assert hub_principal(pai, "token t-bob") is not None
    assert len(FakeHub.calls) == asked  # cached
    give("t-bob2", "bob", groups=[])  # bob left the group; a new token is looked up
    assert hub_principal(pai, "token t-bob2").virtual_clusters == {"default"}


@pytest.mark.parametrize("header", ["token unknown", "Basic dXNlcjp4", "token ", "Digest t-x"])
def test_unknown_tokens_and_other_schemes_are_refused(pai, header):
    assert hub_principal(pai, header) is None


def test_a_token_without_access_to_the_service_is_refused(pai):
    give("t-narrow", "carol", scopes=["read:users:name!user=carol"])
    assert hub_principal(pai, "token t-narrow") is None
    assert pai.users.get("carol") is None


def test_services_are_not_users(pai):
    FakeHub.tokens["t-svc"] = {"kind": "service", "name": "idle-culler", "scopes": ["access:services"]}
    assert hub_principal(pai, "token t-svc") is None


def test_an_unreachable_hub_refuses_without_caching_the_refusal(pai, hub):
    give("t-dan", "dan")
    real = pai.auth.hub.api_url
    pai.auth.hub.api_url = "http://127.0.0.1:9/hub/api"  # nothing listens there
    assert hub_principal(pai, "token t-dan") is None
    pai.auth.hub.api_url = real
    assert hub_principal(pai, "token t-dan").username == "dan"  # asked again, now answered
