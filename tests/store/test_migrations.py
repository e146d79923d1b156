from sqlalchemy import inspect

from pai_hub.store import open_store
from pai_hub.store.users import UserRepository


def test_fresh_database_is_migrated_to_head_and_reopens(tmp_path):
    url = f"sqlite:///{tmp_path / 'pai.sqlite'}"
    store = open_store(url)
    tables = set(inspect(store.engine).get_table_names())
    assert {"users", "groups", "memberships", "tokens", "jobs", "job_attempts", "task_attempts", "events",
            "alembic_version"} <= tables
    users = UserRepository(store)
    users.ensure_groups(["default"])
    users.create("zoe", "password1")
    token = users.create_token("zoe")
    store.close()
    again = UserRepository(open_store(url))  # a second open is a no-op migration
    assert again.resolve(token).username == "zoe"
    assert again.verify("zoe", "password1") and not again.verify("zoe", "nope")
    assert token not in (tmp_path / "pai.sqlite").read_bytes().decode("latin-1")
