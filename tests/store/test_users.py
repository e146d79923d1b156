from pai_hub.store import open_store
from pai_hub.store.users import UserRepository


def test_tokens_never_look_like_command_line_options(tmp_path):
    users = UserRepository(open_store(f"sqlite:///{tmp_path / 'pai.sqlite'}"))
    users.ensure_groups(["default"])
    users.create("amy")
    tokens = [users.create_token("amy") for _ in range(300)]  # ~1 in 64 would start with '-' otherwise
    assert not [t for t in tokens if t.startswith("-")]
    assert len(set(tokens)) == 300 and all(users.resolve(t).username == "amy" for t in tokens[:5])
