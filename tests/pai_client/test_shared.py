"""One shared async client per event loop, acting per call with each user's token."""

from __future__ import annotations

import asyncio

from pai_client import AsyncPaiClient
from pai_client.shared import as_user, close_shared, shared_client

URL = "http://127.0.0.1:9"


def test_one_client_per_event_loop_each_call_with_its_own_token() -> None:
    async def two_users() -> tuple[AsyncPaiClient, AsyncPaiClient, AsyncPaiClient]:
        clients = shared_client(URL), as_user(URL, "a", "alice"), as_user(URL, "b")
        assert shared_client(URL) is clients[0]  # made once per loop
        return clients

    shared, alice, bob = asyncio.run(two_users())
    assert alice._http is shared._http and bob._http is shared._http  # one connection pool
    assert (alice.token, alice.username, bob.token) == ("a", "alice", "b")
    other_loop, _, _ = asyncio.run(two_users())
    assert other_loop is not shared  # an httpx client belongs to the loop it was made on


def test_a_client_with_its_own_token_is_kept_apart_and_closed_with_the_loop() -> None:
    async def scenario() -> None:
        anonymous, own = shared_client(URL), shared_client(URL, "server-token")
        assert anonymous is not own and own.token == "server-token"
        await close_shared()
        assert own._http.is_closed and anonymous._http.is_closed
        assert shared_client(URL) is not anonymous  # a fresh one after closing

    asyncio.run(scenario())
