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


def test_create_refuses_names_breaking_the_rule_whatever_calls_it(tmp_path):
    """``pai user add`` and the hub mirror create users through this one method."""
    import pytest

    from pai_hub.store.usernames import InvalidUsername

    users = UserRepository(open_store(f"sqlite:///{tmp_path / 'pai.sqlite'}"))
    users.ensure_groups(["default"])
    for bad in (".", "..", "", "a/b", "a\\b", "nul\x00", "-x", "~x", "a~b", "me", "x" * 65, "ünï"):
        with pytest.raises(InvalidUsername, match=r"^username: "):
            users.create(bad, "secret-pw")
    users.create("ok_name.1@lab-x", "secret-pw")
    assert [u["username"] for u in users.list()] == ["ok_name.1@lab-x"]


def _job(job_id: int, username: str, name: str):
    from pai_hub.store.models import Job

    return Job(id=job_id, framework_name=f"{username}~{name}", username=username, name=name,
               virtual_cluster="default", state="SUCCEEDED", config_yaml="", protocol={}, secrets={},
               submitted_at=float(job_id))


def test_a_deleted_users_jobs_go_to_a_tombstone_and_tokens_die(tmp_path):
    from sqlalchemy import select

    from pai_hub.store.models import Job

    users = UserRepository(open_store(f"sqlite:///{tmp_path / 'pai.sqlite'}"))
    users.ensure_groups(["default"])
    users.create("amy")
    token = users.create_token("amy")
    with users.store.sessions.begin() as s:
        s.add_all([_job(1, "amy", "a"), _job(2, "amy", "b"), _job(3, "amyx", "c")])
    assert users.resolve(token) is not None
    assert users.delete("amy") == "amy~deleted-1"
    assert users.resolve(token) is None
    users.create("amy")
    assert users.resolve(token) is None  # the old token is not the new amy's
    with users.store.sessions.begin() as s:
        s.add(_job(4, "amy", "d"))
    assert users.delete("amy") == "amy~deleted-2"  # a second generation gets its own tombstone
    users.create("amy")
    assert users.delete("amy") is None  # no jobs: no tombstone
    with users.store.sessions() as s:
        owners = {i: u for i, u in s.execute(select(Job.id, Job.username))}
    assert owners == {1: "amy~deleted-1", 2: "amy~deleted-1", 3: "amyx", 4: "amy~deleted-2"}


def test_expired_tokens_are_purged(tmp_path):
    import time

    from pai_hub.store.models import Token

    users = UserRepository(open_store(f"sqlite:///{tmp_path / 'pai.sqlite'}"))
    users.ensure_groups(["default"])
    users.create("bea")
    short = users.create_token("bea", application=False, lifetime=60)
    keep = users.create_token("bea", application=False, lifetime=3600)
    forever = users.create_token("bea")
    assert users.resolve(short) is not None
    assert users.purge_expired_tokens(now=time.time() + 120) == 1
    with users.store.sessions() as s:
        assert s.query(Token).count() == 2
    assert users.resolve(short) is None and users.resolve(keep) and users.resolve(forever)
    # experiments revoke their token by name when they end
    users.create_token("bea", name="experiment 7")
    assert users.revoke_named("bea", "experiment 7") == 1 and users.revoke_named("bea", "experiment 7") == 0
    live, ended = users.create_token("bea", name="experiment live1"), users.create_token("bea", name="experiment old2")
    assert users.purge_experiment_tokens({"live1"}) == 1
    assert users.resolve(live) is not None and users.resolve(ended) is None and users.resolve(forever)
