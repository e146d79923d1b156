from pai_hub.store import open_store
from pai_hub.store.users import UserRepository


def test_tokens_never_look_like_command_line_options(tmp_path):
    users = UserRepository(open_store(f"sqlite:///{tmp_path / 'pai.sqlite'}"))
    users.ensure_groups(["default"])
    users.create("amy")
    tokens = [users.create_token("amy") for _ in range(300)]  # ~1 in 64 would start with '-' otherwise
    assert not [t for t in tokens if t.startswith("-")]
    assert len(set(tokens)) == 300 and all(users.resolve(t).username == "amy" for t in tokens[:5])


def _legacy_pbkdf2(password: str, salt: str = "0123456789abcdef", rounds: int = 1000) -> str:
    """A hash of the scheme PAI Hub used before argon2 (what older databases hold)."""
    import hashlib

    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt.encode(), rounds).hex()
    return f"pbkdf2_sha512${rounds}${salt}${digest}"


def _stored_hash(users: UserRepository, username: str) -> str:
    from pai_hub.store.models import User

    with users.store.sessions() as s:
        return s.get(User, username).password_hash


def test_passwords_are_argon2_hashes(tmp_path):
    users = UserRepository(open_store(f"sqlite:///{tmp_path / 'pai.sqlite'}"))
    users.ensure_groups(["default"])
    users.create("bea", "secret-pw")
    assert _stored_hash(users, "bea").startswith("$argon2id$")
    assert users.verify("bea", "secret-pw") and not users.verify("bea", "wrong-pw")
    assert not users.verify("nobody", "secret-pw")


def test_an_earlier_pbkdf2_hash_logs_in_and_is_replaced_by_argon2(tmp_path):
    from pai_hub.store.models import User

    users = UserRepository(open_store(f"sqlite:///{tmp_path / 'pai.sqlite'}"))
    users.ensure_groups(["default"])
    users.create("cid")
    legacy = _legacy_pbkdf2("old-secret")
    with users.store.sessions.begin() as s:
        s.get(User, "cid").password_hash = legacy
    assert not users.verify("cid", "not-it")
    assert _stored_hash(users, "cid") == legacy  # a failed login changes nothing
    assert users.verify("cid", "old-secret")
    assert _stored_hash(users, "cid").startswith("$argon2id$")
    assert users.verify("cid", "old-secret") and not users.verify("cid", "not-it")


def test_cached_answers_from_memory_only(tmp_path):
    users = UserRepository(open_store(f"sqlite:///{tmp_path / 'pai.sqlite'}"))
    users.ensure_groups(["default"])
    users.create("dee")
    token = users.create_token("dee")
    assert users.cached(token) is None  # not looked up yet: the caller must ask the store
    assert users.resolve(token).username == "dee"
    assert users.cached(token).username == "dee"
    users.revoke("dee", token)
    assert users.cached(token) is None and users.resolve(token) is None
