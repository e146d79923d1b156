"""<% %> templates: REST-server renderer and runtime secrets renderer."""

from __future__ import annotations

import pytest

from pai_hub.protocol import render_secrets, render_template

CTX = {
    "$parameters": {
        "epochs": 10,
        "lr": 0.01,
        "flag": True,
        "ratio": 1.0,
        "list": ["a", "b"],
        "obj": {"k": 1},
        "zero": 0,
        "none": None,
        "html": "a&b<c>",
    },
    "$data": {"name": "cifar", "uri": ["https://x/1", "https://x/2"]},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("--epochs <% $parameters.epochs %> --lr <%$parameters.lr%>", "--epochs 10 --lr 0.01"),
        ("<% $data.uri[1] %> <% $data.uri.0 %>", "https://x/2 https://x/1"),
        ("<% $parameters.list %>", "a,b"),
        ("<% $parameters.flag %> <% $parameters.ratio %> <% $parameters.zero %>", "true 1 0"),
        ("<% $parameters.obj %>", "[object Object]"),
        ("<% $parameters.html %>", "a&b<c>"),  # never HTML-escaped
        ("pw=<%$secrets.pw%>", "pw=<% $secrets.pw %>"),  # unresolved kept, normalised
        ("<% $parameters.none %>", "<% $parameters.none %>"),
        ("<% $secrets.list[2] %>", "<% $secrets.list.2 %>"),
        ("a <%# $parameters.flag %>b<%/ $parameters.flag %> c", "a b c"),  # sections dropped
        ("<%! comment %>x<%^ y %><%> partial %><%& $parameters.epochs %><%{ $parameters.epochs }%>", "x"),
        ("  \n echo hi \n ", "echo hi"),
        ("<% $data.uri.length %>", "2"),
        ("unterminated <% $parameters.epochs", "unterminated <% $parameters.epochs"),
        ("<%= [[ ]] =%>[[ $parameters.epochs ]] <% x %>", "10 <% x %>"),
    ],
)
def test_server_renderer(template: str, expected: str) -> None:
    assert render_template(template, CTX) == expected


def test_drop_unresolved() -> None:
    assert render_template("a <% $secrets.x %> b", CTX, keep_unresolved=False) == "a  b"


def test_no_strip() -> None:
    assert render_template(" x ", {}, strip=False) == " x "


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("login -p <% $secrets.pw %>", "login -p p&ss<'>"),  # deviation: no HTML escaping
        ("<% $secrets.missing %>|<% $parameters.x %>|", "||"),
        ("<% $secrets.ids[1] %>", "20"),
        ("<% $secrets.nested.list.0.k %>", "v"),
        ("<% $secrets.flag %>", "True"),
    ],
)
def test_runtime_renderer(command: str, expected: str) -> None:
    secrets = {"pw": "p&ss<'>", "ids": [10, 20], "nested": {"list": [{"k": "v"}]}, "flag": True}
    assert render_secrets(command, secrets) == expected


def test_runtime_renderer_without_secrets_file() -> None:
    assert render_secrets("echo <% $secrets.x %>", None) == "echo <% $secrets.x %>"


def test_server_then_runtime() -> None:
    server = render_template("curl -u <% $secrets.user %> <% $data.uri[0] %>", CTX)
    assert server == "curl -u <% $secrets.user %> https://x/1"
    assert render_secrets(server, {"user": "bob"}) == "curl -u bob https://x/1"
