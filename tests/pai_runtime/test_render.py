"""One renderer for secrets and templates: the runtime's, used by the server too.

A task renders its command with :func:`pai_runtime.render.render_command` whether or not the server
package is importable where it runs; the server's :func:`pai_hub.protocol.render_secrets` is the same
function. Both entry points, and both environments, must give the same text for the same input.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import pai_hub.protocol as protocol
import pai_hub.protocol.template as template
from pai_runtime import render

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"user": "bob", "pw": "p&ss<w>rd", "n": 3, "list": [10, 20], "nested": {"a": {"b": [1, 2]}}, 7: "seven"}
COMMANDS = [
    "echo plain",
    "curl -u <% $secrets.user %>:<%$secrets.pw%> https://x",
    "echo <% $secrets.list[1] %>-<% $secrets.list.0 %>-<% $secrets.nested.a.b[1] %>",
    "echo [<% $secrets.missing %>] [<% $secrets.list.9 %>] [<% $other.thing %>]",
    "echo <%& $secrets.pw %> <%{ $secrets.pw }%> <%# $secrets.user %>x<%/ $secrets.user %>",
    "echo <% $secrets.7 %> <% $secrets.list.length %> <% unclosed",
    "<%=[[ ]]=%> [[ $secrets.user ]] <% $secrets.user %>",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_the_server_and_the_runtime_render_alike(command: str) -> None:
    assert protocol.render_secrets is render.render_secrets is template.render_secrets
    assert render.render_command(command, SECRETS) == protocol.render_secrets(command, SECRETS)
    assert render.render_command(command, None) == protocol.render_secrets(command, {})


def test_the_template_grammar_has_one_implementation() -> None:
    for name in ("tokenize", "lookup", "normalize_name", "Tag"):
        assert getattr(template, name) is getattr(render, name), name


def test_a_task_without_the_server_package_renders_the_same() -> None:
    """Inside a task ``pai_hub`` may not be importable; the command must render identically."""
    secrets = {str(k): v for k, v in SECRETS.items()}  # through JSON, as the task's secrets file
    probe = (
        "import json, sys; sys.modules['pai_hub'] = None; "  # importing pai_hub now fails
        "from pai_runtime.render import render_command; "
        f"print(json.dumps([render_command(c, {secrets!r}) for c in {COMMANDS!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [protocol.render_secrets(c, secrets) for c in COMMANDS]


def test_secret_values_are_not_html_escaped() -> None:
    assert render.render_command("pw=<% $secrets.pw %>", SECRETS) == "pw=p&ss<w>rd"
