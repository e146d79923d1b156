"""``resolve_references`` called directly on a store: what a job's ``marketplace:`` prerequisite
becomes, which version is recorded, and the errors (naming the field) for what cannot be used."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import inspect
from sqlalchemy.sql import text

from pai_hub import protocol
from pai_hub.marketplace import MarketRepository, Viewer, resolve_references
from pai_hub.marketplace.content import InvalidContent, check_prerequisite
from pai_hub.marketplace.examples import example_files, import_examples
from pai_hub.store import open_store
from pai_hub.store.db import alembic_config

ALICE, BOB, CAROL = Viewer("alice", groups=frozenset({"default", "team"})), Viewer("bob"), Viewer("carol")


@pytest.fixture
def repo(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'pai.sqlite'}")
    yield MarketRepository(store)
    store.close()


def publish(repo, viewer, name, type, content, **kw):
    return repo.publish(viewer, name=name, type=type, content=content, **kw)[0]


def job(*prereqs, data=None):
    role = {"instances": 1, "dockerImage": "image", "resourcePerInstance": {"cpu": 1, "memoryMB": 64, "gpu": 0},
            "commands": ["echo <% $data.uri[0] %>" if data else "true"]}
    if data:
        role["data"] = data
    return {"protocolVersion": 2, "name": "j", "type": "job",
            "prerequisites": [{"name": "image", "type": "dockerimage", "uri": "python:3.11"}, *prereqs],
            "taskRoles": {"worker": role}}


def test_reference_is_replaced_by_the_items_prerequisite_and_recorded(repo):
    publish(repo, ALICE, "mnist", "data", "type: data\nuri: [s3://v1]\ndescription: digits\n", visibility="public")
    doc = job({"name": "digits", "type": "data", "marketplace": "mnist"}, data="digits")
    before = copy.deepcopy(doc)
    out, used = resolve_references(doc, "bob", ["default"], repository=repo)
    assert doc == before  # the input is not changed
    assert out["prerequisites"][1] == {"name": "digits", "type": "data", "uri": ["s3://v1"], "description": "digits"}
    assert used == [{"item": "mnist", "version": 1, "type": "data", "prerequisite": "digits"}]
    assert out["extras"]["marketplace"] == used
    plan = protocol.render(protocol.load_dict(out), username="bob")
    assert "echo s3://v1" in plan.task_roles["worker"].entrypoint


def test_latest_vs_pinned_and_later_versions_do_not_change_a_resolved_job(repo):
    publish(repo, ALICE, "mnist", "data", "type: data\nuri: [s3://v1]\n", visibility="public")
    resolved_v1, _ = resolve_references(job({"name": "d", "marketplace": "mnist"}), "bob", [], repository=repo)
    publish(repo, ALICE, "mnist", "data", "type: data\nuri: [s3://v2]\n")
    latest, used = resolve_references(job({"name": "d", "marketplace": "mnist"}), "bob", [], repository=repo)
    pinned, used1 = resolve_references(job({"name": "d", "marketplace": "mnist@1"}), "bob", [], repository=repo)
    assert latest["prerequisites"][1]["uri"] == ["s3://v2"] and used[0]["version"] == 2
    assert pinned["prerequisites"][1]["uri"] == ["s3://v1"] and used1[0]["version"] == 1
    assert resolved_v1["prerequisites"][1]["uri"] == ["s3://v1"]  # a copy: the new version changed nothing


def test_local_keys_override_and_type_defaults_to_the_items(repo):
    publish(repo, ALICE, "setup", "script", "type: script\nuri: git://x\nplugin: cmd\n"
            "callbacks: [{event: containerStart, commands: [echo a]}]\n", visibility="public")
    out, _ = resolve_references(job({"name": "s", "marketplace": "setup", "failurePolicy": "ignore"}),
                                "carol", [], repository=repo)
    p = out["prerequisites"][1]
    assert (p["type"], p["uri"], p["plugin"], p["failurePolicy"]) == ("script", "git://x", "cmd", "ignore")
    protocol.load_dict(out)


def test_dockerimage_reference_becomes_a_valid_image(repo):
    publish(repo, ALICE, "py", "dockerimage", "uri: python:3.12\n", visibility="public")
    doc = job()
    doc["prerequisites"][0] = {"name": "image", "type": "dockerimage", "marketplace": "py"}
    out, _ = resolve_references(doc, "carol", [], repository=repo)
    assert out["prerequisites"][0] == {"name": "image", "type": "dockerimage", "uri": "python:3.12"}
    protocol.load_dict(out)


def test_visibility_applies_to_references(repo):
    publish(repo, ALICE, "secret-data", "data", "type: data\nuri: [s3://p]\n")  # private
    publish(repo, ALICE, "team-data", "data", "type: data\nuri: [s3://t]\n", visibility="groups",
            groups=["team"])
    doc = job({"name": "a", "marketplace": "team-data"}, {"name": "b", "marketplace": "secret-data"})
    with pytest.raises(ValueError) as err:
        resolve_references(doc, "bob", ["default", "team"], repository=repo)
    assert str(err.value) == 'prerequisites[2].marketplace: no item "secret-data" visible to you'
    with pytest.raises(ValueError) as err:
        resolve_references(doc, "carol", ["default"], repository=repo)
    assert 'prerequisites[1].marketplace: no item "team-data" visible to you' in str(err.value)
    assert 'prerequisites[2].marketplace: no item "secret-data" visible to you' in str(err.value)
    resolve_references(doc, "alice", [], repository=repo)  # the author
    resolve_references(doc, "root", [], admin=True, repository=repo)  # an admin
    out, _ = resolve_references(job({"name": "a", "marketplace": "team-data"}), "bob", ["team"], repository=repo)
    assert out["prerequisites"][1]["uri"] == ["s3://t"]


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "x", "marketplace": "nope"}, 'prerequisites[1].marketplace: no item "nope" visible to you'),
    ({"name": "x", "marketplace": "d@9"}, 'prerequisites[1].marketplace: item "d" has no version 9'),
    ({"name": "x", "marketplace": "d@zero"}, "prerequisites[1].marketplace: 'd@zero': the version after '@'"),
    ({"name": "x", "marketplace": ""}, 'prerequisites[1].marketplace: must be "<item>" or "<item>@<version>"'),
    ({"name": "x", "type": "script", "marketplace": "d"}, 'prerequisites[1].type: item "d" is a data item'),
    ({"name": "x", "marketplace": "t"}, 'prerequisites[1].marketplace: item "t" is a template, not a prerequisite'),
    ({"name": "x", "uri": ["y"], "marketplace": "d"}, "prerequisites[1]: give either uri or marketplace"),
])
def test_unusable_references_name_the_field(repo, entry, message):
    publish(repo, ALICE, "d", "data", "type: data\nuri: [s3://d]\n", visibility="public")
    publish(repo, ALICE, "t", "template", _TEMPLATE, visibility="public")
    with pytest.raises(ValueError) as err:
        resolve_references(job(entry), "bob", [], repository=repo)
    assert str(err.value).startswith(message)


_TEMPLATE = """protocolVersion: 2
name: t
type: job
prerequisites: [{name: image, type: dockerimage, uri: busybox}]
taskRoles:
  w: {instances: 1, dockerImage: image, resourcePerInstance: {cpu: 1, memoryMB: 64, gpu: 0}, commands: ["true"]}
"""


def test_jobs_without_references_pass_through(repo):
    doc = job()
    out, used = resolve_references(doc, "bob", [], repository=repo)
    assert out is doc and used == []
    assert resolve_references({"not": "a job"}, "bob", [], repository=repo) == ({"not": "a job"}, [])


def test_templates_may_reference_items_as_their_publisher_sees_them(repo):
    publish(repo, ALICE, "d", "data", "type: data\nuri: [s3://d]\n")  # private to alice
    tpl = _TEMPLATE + "  # uses d\n"
    tpl = tpl.replace("prerequisites: [", "prerequisites: [{name: dd, marketplace: d}, ")

    def resolver(viewer):
        return lambda doc: resolve_references(doc, viewer.username, sorted(viewer.groups), repository=repo)[0]

    publish(repo, ALICE, "t", "template", tpl, resolve=resolver(ALICE))
    with pytest.raises(InvalidContent, match='no item "d" visible to you'):
        publish(repo, BOB, "t2", "template", tpl, resolve=resolver(BOB))


def test_prerequisite_content_checks():
    assert check_prerequisite("data", "my.data", "uri: [a]\n") == {"name": "my_data", "type": "data", "uri": ["a"]}
    with pytest.raises(InvalidContent, match="uri: required field missing"):
        check_prerequisite("dockerimage", "img", "type: dockerimage\n")
    with pytest.raises(InvalidContent, match="unknown field 'extra'"):
        check_prerequisite("dockerimage", "img", "uri: x\nextra: 1\n")
    with pytest.raises(InvalidContent, match="publish it as a template"):
        check_prerequisite("data", "d", _TEMPLATE)
    with pytest.raises(InvalidContent, match="cannot reference another item"):
        check_prerequisite("data", "d", "marketplace: other\n")


def test_every_shipped_example_is_a_valid_template(repo):
    files = example_files()
    assert len(files) == 28
    for _, path in files:
        protocol.load(path.read_text())
    assert import_examples(repo) == 28
    assert import_examples(repo) == 0
    assert {i["name"] for i in repo.list(CAROL, categories=["OFFICIAL_EXAMPLE"])} >= {"pytorch-mnist", "grammar_training"}


def test_migration_0004_matches_the_models_and_downgrades(tmp_path):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from pai_hub.store.models import Base

    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    store = open_store(url)
    with store.engine.connect() as conn:
        diff = [d for d in compare_metadata(MigrationContext.configure(conn), Base.metadata)
                if "market_" in repr(d)]
    assert diff == []
    tables = set(inspect(store.engine).get_table_names())
    assert {"market_items", "market_versions", "market_tags", "market_categories", "market_stars"} <= tables
    command.downgrade(alembic_config(url), "0003")
    assert not any(t.startswith("market_") for t in inspect(store.engine).get_table_names())
    with store.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0003"
    store.close()


_BOMB = "parameters:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))


def test_alias_bomb_template_refused_at_publish(repo):
    with pytest.raises(InvalidContent, match="expands to more than 50000 YAML nodes"):
        publish(repo, ALICE, "bomb", "template", _BOMB + _TEMPLATE)


def test_shared_references_in_json_content_refused_at_publish(repo):
    value: list = ["lol"] * 9
    for _ in range(9):
        value = [value] * 9
    content = {**protocol.parse(_TEMPLATE), "parameters": {"p": value}}
    with pytest.raises(InvalidContent, match="the item's content expands to more than 50000 nodes"):
        publish(repo, ALICE, "bomb", "template", content)


def test_one_large_item_referenced_many_times_is_refused_before_copying(repo):
    publish(repo, ALICE, "big", "data", {"uri": ["x" * 50_000]})
    doc = job(*[{"name": f"d{i}", "marketplace": "big"} for i in range(30)])
    with pytest.raises(ValueError, match=r"prerequisites\[20\]\.marketplace: the marketplace items referenced add "
                                         r"more than 1000000 characters"):
        resolve_references(doc, "alice", ["team"], repository=repo, limits=protocol.Limits(max_expanded_chars=1_000_000))
    resolved, used = resolve_references(doc, "alice", ["team"], repository=repo)  # 1.5 MB: under the default
    assert resolved["prerequisites"][30]["uri"] == ["x" * 50_000]
    assert len(used) == 30
