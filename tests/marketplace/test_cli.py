"""``pai market`` as a user runs it, against a real server, and the client methods it uses."""

from __future__ import annotations

import yaml

from pai_client.client import PaiClient
from tests.pai_client.test_cli import pai
from tests.server import wait_state

from .conftest import job_template

TEMPLATE = job_template("hello", "echo greeting=<% $parameters.greeting %>", header="parameters:\n  greeting: hi\n")


def env(market, who: str) -> dict[str, str]:
    return {"PAI_URL": market.server.url, "PAI_TOKEN": market.tokens[who]}


def test_publish_list_show_use_wait(market, tmp_path):
    tpl = tmp_path / "hello.yaml"
    tpl.write_text(TEMPLATE)
    r = pai("market", "publish", str(tpl), "--visibility", "public", "--tag", "demo", "--summary", "Says hi",
            env=env(market, "alice"))
    assert (r.returncode, r.stdout.strip()) == (0, "published hello@1"), r.stderr
    r = pai("market", "publish", str(tpl), env=env(market, "alice"))
    assert r.stdout.strip() == "unchanged: hello@1"
    r = pai("market", "list", "--tag", "demo", env=env(market, "bob"))
    assert r.returncode == 0 and r.stdout.splitlines()[0].split()[:3] == ["NAME", "TYPE", "VERSION"]
    assert [line.split()[:4] for line in r.stdout.splitlines()[1:]] == [["hello", "template", "1", "alice"]]
    r = pai("market", "show", "hello", env=env(market, "bob"))
    assert "hello@1  template by alice" in r.stdout and "echo greeting=" in r.stdout

    r = pai("market", "use", "hello", "--param", "greeting=bonjour", "--name", "hello-bob", "--wait",
            env=env(market, "bob"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["submitted bob~hello-bob from hello@1", "SUCCEEDED"]
    r = pai("job", "logs", "hello-bob", env=env(market, "bob"))
    assert r.stdout == "greeting=bonjour\n"
    with market.server.client(market.tokens["bob"]) as c:
        config = yaml.safe_load(c.get("/api/v2/jobs/bob~hello-bob/config").text)
    assert config["extras"]["marketplace"] == [{"item": "hello", "version": 1, "type": "template"}]
    with PaiClient(market.server.url, market.tokens["carol"]) as c:
        item = c.market_item("hello")
        assert (item["useNumber"], item["version"]) == (1, 1)

    # a new version; @1 still gives the old one; the default job name is <template name>_<8 hex>
    tpl.write_text(TEMPLATE.replace("greeting: hi", "greeting: hello"))
    assert pai("market", "publish", str(tpl), env=env(market, "alice")).stdout.strip() == "published hello@2"
    r = pai("market", "use", "hello@1", "--print", env=env(market, "bob"))
    job = yaml.safe_load(r.stdout)
    assert job["parameters"] == {"greeting": "hi"} and job["name"].startswith("hello_") and len(job["name"]) == 14
    r = pai("market", "use", "hello", "--wait", env=env(market, "carol"))
    assert r.returncode == 0 and r.stdout.startswith("submitted carol~hello_") and "from hello@2" in r.stdout
    name = r.stdout.split()[1]
    assert pai("job", "logs", name, env=env(market, "carol")).stdout == "greeting=hello\n"


def test_publish_data_for_a_group_and_use_refusals(market, tmp_path):
    data = tmp_path / "d.yaml"
    data.write_text("type: data\nuri: [https://example.com/d.tgz]\n")
    r = pai("market", "publish", str(data), "--type", "data", "--name", "team-d", "--group", "team",
            env=env(market, "alice"))
    assert r.returncode == 0, r.stderr
    r = pai("market", "show", "team-d", env=env(market, "bob"))
    assert "visibility: groups (team)" in r.stdout and "marketplace: team-d@1" in r.stdout
    r = pai("market", "show", "team-d", env=env(market, "carol"))
    assert r.returncode == 1 and r.stderr.startswith("pai: NoItemError: no item 'team-d' visible to you")
    r = pai("market", "use", "team-d", env=env(market, "bob"))
    assert r.returncode == 1 and "not a template" in r.stderr and "Traceback" not in r.stderr
    r = pai("market", "publish", str(data), "--type", "template", "--name", "bad", env=env(market, "bob"))
    assert r.returncode == 1 and r.stderr.startswith("pai: InvalidProtocolError:")
    assert pai("market", "star", "team-d", env=env(market, "bob")).stdout.strip() == "team-d: starred (1 stars)"
    assert pai("market", "delete", "team-d", env=env(market, "bob")).stderr.startswith("pai: ForbiddenUserError")
    assert pai("market", "delete", "team-d", env=env(market, "alice")).returncode == 0


def test_an_official_example_runs_with_its_commands_replaced(market):
    """The imported examples need their images, data and GPUs; here one is used as OpenPAI's smoke
    test does: fetched from the marketplace, its commands replaced by ones that run on this machine."""
    r = pai("market", "use", "keras-tensorflow-mnist", "--name", "keras-ex", "--print", env=env(market, "bob"))
    doc = yaml.safe_load(r.stdout)
    assert doc["extras"]["marketplace"] == [{"item": "keras-tensorflow-mnist", "version": 1, "type": "template"}]
    for role in doc["taskRoles"].values():
        role["commands"] = ['python3 -c "print(\'trained\')"']
        role["resourcePerInstance"].update(gpu=0, cpu=1, memoryMB=512)
    with market.server.client(market.tokens["bob"]) as c:
        r = c.post("/api/v2/jobs", content=yaml.safe_dump(doc), headers={"Content-Type": "text/yaml"})
        assert r.status_code == 202, r.text
        assert wait_state(c, "bob~keras-ex", {"SUCCEEDED", "FAILED"})["jobStatus"]["state"] == "SUCCEEDED"
