"""parse(): YAML text → mapping, with one-line errors that name line and column."""

from __future__ import annotations

import pytest

from pai_hub.protocol import InvalidProtocol, ProtocolParseError, load, parse


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("name: a\ntaskRoles: [1,\n", "line 3, column 1"),
        ("name: a\n  bad: indent\n", "line 2, column 6"),
        ("name: a: b\n", "line 1, column 8"),
        ("name: 'unterminated\n", "line 2"),
        ("name: a\n\tb: 1\n", "line 2"),
    ],
)
def test_malformed_yaml_one_line_with_position(text: str, where: str) -> None:
    with pytest.raises(ProtocolParseError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith("invalid YAML at ")
    assert where in message
    assert "\n" not in message and "Traceback" not in message
    assert info.value.errors[0].path == ""


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "~\n"])
def test_empty(text: str) -> None:
    with pytest.raises(ProtocolParseError, match="empty job protocol"):
        parse(text)


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "a list"), ("hello\n", "a scalar")])
def test_not_a_mapping(text: str, kind: str) -> None:
    with pytest.raises(ProtocolParseError, match=kind):
        parse(text)


def test_multi_document_rejected() -> None:
    with pytest.raises(ProtocolParseError) as info:
        parse("name: a\n---\npassword: x\n")
    assert str(info.value) == (
        "invalid YAML at line 2, column 1: found a second document; a job protocol must be a single YAML document"
    )


def test_duplicate_keys_rejected_like_js_yaml() -> None:
    with pytest.raises(ProtocolParseError, match="line 2, column 1: duplicate key 'name'"):
        parse("name: a\nname: b\n")


def test_yaml_12_booleans() -> None:
    assert parse("a: yes\nb: on\nc: true\nd: False\ne: n\n") == {
        "a": "yes",
        "b": "on",
        "c": True,
        "d": False,
        "e": "n",
    }


def test_merge_keys_still_work() -> None:
    assert parse("base: &b {cpu: 1}\nr:\n  <<: *b\n  gpu: 1\n")["r"] == {"cpu": 1, "gpu": 1}


def test_parse_error_is_an_invalid_protocol() -> None:
    with pytest.raises(InvalidProtocol):
        load("{")


def test_non_text_input() -> None:
    with pytest.raises(ProtocolParseError, match="YAML text"):
        parse(b"name: a")  # type: ignore[arg-type]
